"""
A container's creation and removal on a Docker engine, run on the engine's
thread pool (``DockerEngine.create``, ``remove_container``): the create body
built from csvc's spec and merged with what the client asked
(``docker_config``), checked by the agent's wall before the engine sees it;
the removal with the container's anonymous volumes and its project's default
network.
"""

from docker import errors as docker_errors

from csvc.agent import docker_config, wall
from csvc.agent.docker_labels import (
    LABEL_AUTO_REMOVE, LABEL_INSTANCE, LABEL_PROJECT, LABEL_UUID, engine_name, is_own_label,
)
from csvc.wire.commands import Refused

#: Docker's durable log driver that keeps full speed (DESIGN.md).
LOG_DRIVER = "local"
#: The agent recovers output after its own restart by reading the engine's
#: log from the start; rotation must not drop what the store may still lack.
#: 8 x 128 MiB is kept per container (the driver compresses rotated files).
LOG_OPTIONS = {"max-size": "128m", "max-file": "8"}


def create(client, spec, port_rules=None, default_networks=None):
    # csvc's own labels (``csvc.*``) are csvc's alone: the agent reads them
    # back (the project, the instance, auto-remove) after its restart.
    labels = {key: value for key, value in (spec.get("labels") or {}).items() if not is_own_label(key)}
    labels[LABEL_UUID] = spec["uuid"]
    labels[LABEL_PROJECT] = spec["project_id"]
    if spec.get("instance_uuid"):
        labels[LABEL_INSTANCE] = spec["instance_uuid"]
    if spec.get("auto_remove"):
        labels[LABEL_AUTO_REMOVE] = "1"
    host = {
        "LogConfig": {"Type": LOG_DRIVER, "Config": dict(LOG_OPTIONS)},
        # csvc removes auto_remove containers itself, once their output is
        # persisted: the engine's AutoRemove could race the output reader.
        "AutoRemove": False,
    }
    if spec.get("memory"):
        host["Memory"] = int(spec["memory"]) * 1024 * 1024
    _config, requested = docker_config.client_options(spec)
    if spec.get("cpu") and not (requested.get("CpuQuota") or requested.get("CpuPeriod")):
        # (A limit given as a CFS quota is the client's own, merged below:
        # the engine refuses NanoCpus beside it.)
        host["NanoCpus"] = int(float(spec["cpu"]) * 1e9)
    interactive = bool(spec.get("interactive"))
    config = {
        "Image": spec["image"],
        "Cmd": spec.get("command") or None,
        "Entrypoint": spec.get("entrypoint"),
        "Env": [f"{k}={v}" for k, v in (spec.get("environment") or {}).items()],
        "WorkingDir": spec.get("workdir") or "",
        "Labels": labels,
        "Tty": bool(spec.get("tty")),
        "OpenStdin": interactive,
        # With StdinOnce the engine closes the container's stdin when the
        # attach that writes it closes its side: how "close stdin" reaches
        # the process (as with `docker run -i`).
        "StdinOnce": interactive if spec.get("stdin_once") is None else bool(spec["stdin_once"]),
        "AttachStdin": interactive,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host,
    }
    # The image's own VOLUME paths get the project's anonymous volumes too.
    image_volumes = (client.api.inspect_image(spec["image"]).get("Config") or {}).get("Volumes") or {}
    if default_networks is None or not docker_config.on_default_network(requested):
        return _create_walled(client, spec, docker_config.merge(config, spec, image_volumes, None, port_rules))
    # The project's own default network, never the engine's bridge; not
    # removed (its last container gone) before the container is made.
    with default_networks.held(client, spec["project_id"]) as network_id:
        return _create_walled(client, spec, docker_config.merge(config, spec, image_volumes, network_id, port_rules))


def _create_walled(client, spec, config):
    walled(client, spec, config)
    result = client.api.create_container_from_config(config, name=engine_name(spec["uuid"]))
    return result["Id"]


#: At most this many containers and networks a create names are looked up
#: to tell whether they are the project's (the others are not).
_LOOKUPS = 4


def walled(client, spec, config):
    """
    Raise ``Refused`` unless the agent's wall lets ``config`` (the final
    create body) go to the engine.
    """
    project = spec["project_id"]

    def project_of(inspect, ident, labels):
        try:
            return labels(inspect(ident)).get(LABEL_PROJECT)
        except docker_errors.NotFound:
            return None

    containers = {
        ident for ident in sorted(wall.joined_containers(config))[:_LOOKUPS]
        if project_of(client.api.inspect_container, ident,
                      lambda attrs: (attrs.get("Config") or {}).get("Labels") or {}) == project
    }
    networks = {
        ref for ref in sorted(wall.network_refs(config, project))[:_LOOKUPS]
        if project_of(client.api.inspect_network, ref, lambda attrs: attrs.get("Labels") or {}) == project
    }
    violations = wall.create_violations(config, project, admin=spec.get("admin") is True,
                                        project_containers=containers, project_networks=networks)
    if violations:
        raise Refused(wall.describe(violations))


def remove(client, uuid, force, volumes, default_networks=None):
    """
    Remove the container (and with ``volumes`` its anonymous volumes; its
    project's default network if it was the last on it);
    ``[(volume, why)]`` for those left.
    """
    name = engine_name(uuid)
    anonymous = []
    project = None
    if volumes or default_networks is not None:
        attrs = client.api.inspect_container(name)
        project = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_PROJECT, "")
    if volumes:
        # Only those csvc named for this container: a named volume it mounts stays.
        anonymous = [
            mount["Name"] for mount in attrs.get("Mounts") or []
            if mount.get("Type") == "volume" and mount.get("Name") == docker_config.engine_volume(
                project, docker_config.anonymous_volume(uuid, mount.get("Destination") or ""))
        ]
    client.api.remove_container(name, force=force)
    left = []
    for volume in anonymous:
        try:
            client.api.remove_volume(volume)
        except docker_errors.APIError as exc:
            # In use by another container (mounted by its name), or gone:
            # Docker's own `rm -v` leaves it too.
            left.append((volume, str(exc.explanation or exc)))
    if default_networks is not None and project:
        default_networks.release(client, project)
    return left
