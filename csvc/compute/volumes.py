"""
A project's named volumes on the engines: the engine's volume is
``csvc-<project>-<name>`` (``csvc.agent.docker_config.engine_volume``), the
client sees ``<name>``; one project never reaches another's.

A volume lives on one instance's engine.  These calls reach the first active,
connected instance the project may use (its own, then the shared ones, in
creation order): with several instances, a volume that a container created
implicitly on another instance is not seen here.
"""

from twisted.internet.defer import inlineCallbacks

from csvc.wire import commands
from csvc.wire.naming import engine_volume, unscoped
from csvc.agents.hub import InstanceUnavailable

LABEL_PROJECT = "csvc.project"


@inlineCallbacks
def project_instance(store, hub, project_id, what):
    """
    The uuid of the first active, connected instance the project may use
    (its own, then the shared ones, in creation order): where its ``what``
    (volumes, networks) live.
    """
    connected = hub.connected_instances()
    instances = yield store.list_instances()
    usable = [
        i for i in instances
        if i["status"] == "active" and i["uuid"] in connected
        and (i.get("project_id") == project_id or (i.get("project_id") is None and i.get("shared")))
    ]
    usable.sort(key=lambda i: (i.get("project_id") is None, i["created_at"], i["uuid"]))
    if not usable:
        raise InstanceUnavailable(f"no active instance of this project is connected to hold {what}")
    return usable[0]["uuid"]


class ProjectVolumes:
    def __init__(self, store, hub):
        self._store = store
        self._hub = hub

    def _instance(self, project_id):
        return project_instance(self._store, self._hub, project_id, "volumes")

    def _shown(self, project_id, volume):
        return dict(volume, Name=unscoped(project_id, volume.get("Name", "")))

    @inlineCallbacks
    def list(self, project_id):
        instance = yield self._instance(project_id)
        result = yield self._hub.call(instance, commands.ListVolumes, prefix=engine_volume(project_id, ""))
        return [self._shown(project_id, v) for v in result["volumes"]]

    @inlineCallbacks
    def create(self, project_id, name, labels):
        instance = yield self._instance(project_id)
        labels = dict(labels or {}, **{LABEL_PROJECT: project_id})
        result = yield self._hub.call(
            instance, commands.CreateVolume, name=engine_volume(project_id, name), labels=labels
        )
        return self._shown(project_id, result["volume"])

    @inlineCallbacks
    def inspect(self, project_id, name):
        instance = yield self._instance(project_id)
        result = yield self._hub.call(instance, commands.InspectVolume, name=engine_volume(project_id, name))
        return self._shown(project_id, result["volume"])

    @inlineCallbacks
    def remove(self, project_id, name, force=False):
        instance = yield self._instance(project_id)
        yield self._hub.call(instance, commands.RemoveVolume, name=engine_volume(project_id, name), force=force)
