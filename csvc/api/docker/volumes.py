"""
The Docker Engine API's volume routes: a project's named volumes (the
engine's ``csvc-<project>-<name>``, shown as ``<name>``).

Limitation: a volume lives on one engine, and these routes reach only the
first active instance the project may use; on a deployment of several
instances a container placed elsewhere gets its own, separate volume of the
same name.
"""

import uuid as uuidlib

from twisted.internet.defer import inlineCallbacks

from csvc import policy
from csvc.wire import naming as agent_docker_config
from csvc.wire.commands import Conflict, NoSuchVolume
from csvc.api import docker_options
from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qbool, qstr, version_tuple
from csvc.api.docker.filters import labels_match, volume_prune_filters
from csvc.api.schemas import BadRequest


class VolumeRoutes(DockerRoutes):
    """
    ``/volumes/...``.
    """

    def _volume_name(self, name):
        if not name or not docker_options.VOLUME_NAME.fullmatch(name):
            raise BadRequest(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        return name

    @app.route("/volumes", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def volumes(self, request, identity):
        """
        The project's volumes on the first active instance it may use.
        """
        policy.enforce("volume:list", identity)
        listed = yield self._volumes.list(identity.project_id)
        return 200, {"Volumes": listed, "Warnings": []}

    @app.route("/volumes/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_create(self, request, identity):
        """
        Create on the first active instance the project may use (the
        instance its next container is most likely placed on).
        """
        body = self._read_body(request, "POST /volumes/create")
        policy.enforce("volume:create", identity)
        if body.get("Driver") not in (None, "", "local") or body.get("DriverOpts"):
            policy.enforce("container:create:volume_driver", identity)
            raise BadRequest("only the local volume driver without options is supported")
        name = body.get("Name") or uuidlib.uuid4().hex + uuidlib.uuid4().hex
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise BadRequest("Labels: must be an object of strings")
        volume = yield self._volumes.create(identity.project_id, self._volume_name(name), labels)
        return 201, volume

    @app.route("/volumes/prune", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_prune(self, request, identity):
        """
        ``docker volume prune``: remove the project's volumes no container
        uses.  From API 1.42 on, as Docker, only anonymous ones (those csvc
        made for anonymous mounts, labelled as Docker labels them) unless
        the filter ``all`` is true; ``label`` / ``label!`` as for containers.
        """
        policy.enforce("volume:delete", identity)
        every, labels, not_labels = volume_prune_filters(qstr(request, "filters"))
        if version_tuple(self._version(request)) < (1, 42):
            every = True
        listed = yield self._volumes.list(identity.project_id)
        deleted = []
        for volume in listed:
            volume_labels = volume.get("Labels") or {}
            if not every and agent_docker_config.ANONYMOUS_VOLUME not in volume_labels:
                continue
            if not labels_match(volume_labels, labels, not_labels):
                continue
            try:
                yield self._volumes.remove(identity.project_id, volume["Name"])
            except (Conflict, NoSuchVolume):
                # In use (or gone meanwhile): Docker leaves it too.
                continue
            deleted.append(volume["Name"])
        return 200, {"VolumesDeleted": deleted, "SpaceReclaimed": 0}

    @app.route("/volumes/<name>", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_inspect(self, request, identity, name):
        policy.enforce("volume:get", identity)
        try:
            volume = yield self._volumes.inspect(identity.project_id, self._volume_name(name))
        except NoSuchVolume:
            raise DockerError(404, f"get {name}: no such volume") from None
        return 200, volume

    @app.route("/volumes/<name>", methods=["DELETE"])
    @docker_endpoint()
    @inlineCallbacks
    def volume_remove(self, request, identity, name):
        policy.enforce("volume:delete", identity)
        try:
            yield self._volumes.remove(identity.project_id, self._volume_name(name), qbool(request, "force"))
        except NoSuchVolume:
            raise DockerError(404, f"get {name}: no such volume") from None
        except Conflict:
            raise DockerError(409, f"remove {name}: volume is in use") from None
        return 204, None
