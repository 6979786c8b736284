"""
A Docker client's honoured create options (``spec["docker_config"]``, as
``csvc.api.docker_options`` validated them) merged into the engine's create
config.  csvc's own fields always win: its labels, its log driver, its
handling of AutoRemove, the engine name.  Named volumes and networks are
scoped to the project: the engine's volume or network is
``csvc-<project>-<name>``; on a project's network the container is known
by its name in the project as well as by its aliases.  So are anonymous
ones (``Config.Volumes``, an image's ``VOLUME``): csvc names them itself,
as the project's, with Docker's label for anonymous volumes, so that the
project lists and prunes them and ``docker rm -v`` / ``--rm`` remove them
(the engine would name them at random, outside every project).

A container on the engine's default network (``NetworkMode`` "", "default"
or "bridge") goes on its project's own default network instead
(``default_network``, made on demand by the agent): projects never share a
network, and the engine's isolation between bridge networks keeps them
apart.  Every network csvc makes has a bridge named ``csvcbr<hash>``
(``bridge_name``), so that the instance's firewall matches them all by one
interface pattern (``csvcbr+``).  Published ports are rebuilt under the
operator's rules (``port_rules``).
"""

import hashlib
import posixpath
import re

from csvc.agent.commands import InvalidSpec
from csvc.agent.port_rules import PortRefused, check_publish_all, rebuild

#: Set by csvc itself; a client's value never replaces them.
_OWN_CONFIG = {"Image", "Labels", "HostConfig"}
_OWN_HOST = {"LogConfig", "AutoRemove"}
#: The label Docker gives the volumes it makes for a container's anonymous
#: mounts (what a volume prune removes without ``all``).
ANONYMOUS_VOLUME = "com.docker.volume.anonymous"


def engine_volume(project_id, name):
    """
    The engine's name for a project's named volume: ``csvc-<project>-<name>``,
    the project spelled without ``-`` so that no two projects' names meet
    (a digest of it when it has characters beyond ``[a-zA-Z0-9_.]``).
    """
    if not re.fullmatch(r"[a-zA-Z0-9_.]{1,64}", project_id):
        project_id = "h" + hashlib.sha256(project_id.encode("utf-8")).hexdigest()[:32]
    return f"csvc-{project_id}-{name}"


def unscoped(project_id, name):
    """
    The name a project sees for the engine's ``name`` (``engine_volume``'s
    inverse); a name not the project's is left as it is.
    """
    prefix = engine_volume(project_id, "")
    return name[len(prefix):] if name.startswith(prefix) else name


#: The engine's own networks a container may be on (not the project's).
BUILTIN_NETWORKS = frozenset({"", "default", "bridge", "none"})


def engine_network(project_id, name):
    """
    The engine's name for a project's network: scoped as its volumes are.
    """
    return engine_volume(project_id, name)


#: The ``NetworkMode`` values that mean the engine's default network.
DEFAULT_MODES = frozenset({"", "default", "bridge"})
#: The bridges of csvc's networks are named this and a digest (15
#: characters at most: Linux's interface names).
BRIDGE_PREFIX = "csvcbr"


def default_network(project_id):
    """
    The engine's name for a project's default network: outside the
    ``csvc-<project>-`` names of its own networks (a user network's name
    could never spell it, and a listing of the project's networks by that
    prefix does not count it).
    """
    return "csvc_default-" + engine_volume(project_id, "")[len("csvc-"):-1]


def bridge_name(network):
    """
    The Linux bridge of csvc's engine network ``network``.
    """
    return BRIDGE_PREFIX + hashlib.sha256(network.encode("utf-8")).hexdigest()[:15 - len(BRIDGE_PREFIX)]


def network_driver_options(network):
    """
    The bridge driver's options of a network csvc makes: its bridge's name,
    containers on it reaching one another.
    """
    return {"com.docker.network.bridge.name": bridge_name(network),
            "com.docker.network.bridge.enable_icc": "true"}


def on_default_network(host):
    """
    Whether a HostConfig puts the container on the engine's default network.
    """
    return host.get("NetworkMode") is None or host.get("NetworkMode") in DEFAULT_MODES


def project_network(mode):
    """
    The project's network a ``NetworkMode`` names, or None (the engine's own,
    another container's: ``container:<id>``).
    """
    if not isinstance(mode, str) or mode in BUILTIN_NETWORKS or mode == "host" or mode.startswith("container:"):
        return None
    return mode


def anonymous_volume(container_uuid, target):
    """
    The name of a container's anonymous volume at ``target``, as its project
    sees it: 64 hex digits as Docker's, the same for that container and path
    every time (so that the control plane can show it without asking).
    """
    return hashlib.sha256(f"{container_uuid}:{posixpath.normpath(target)}".encode("utf-8")).hexdigest()


def mounted_targets(host):
    """
    The container paths a HostConfig already mounts something at.
    """
    targets = set()
    for entry in host.get("Binds") or []:
        parts = entry.split(":")
        if len(parts) > 1:
            targets.add(posixpath.normpath(parts[1]))
    for mount in host.get("Mounts") or []:
        if mount.get("Target"):
            targets.add(posixpath.normpath(mount["Target"]))
    targets.update(posixpath.normpath(target) for target in host.get("Tmpfs") or {})
    return targets


def anonymous_targets(volumes, host):
    """
    The paths of ``volumes`` (``Config.Volumes``' keys, an image's) that get
    an anonymous volume: those ``host`` mounts nothing at, each once, in order.
    """
    taken = mounted_targets(host)
    out = []
    for target in volumes or ():
        target = posixpath.normpath(target)
        if target not in taken:
            taken.add(target)
            out.append(target)
    return out


def _scoped_binds(project_id, binds):
    out = []
    for entry in binds:
        source, sep, rest = entry.partition(":")
        if not source.startswith("/"):
            source = engine_volume(project_id, source)
        out.append(source + sep + rest)
    return out


def _scoped_mounts(project_id, mounts):
    out = []
    for mount in mounts:
        mount = dict(mount)
        if (mount.get("Type") or "volume") == "volume" and mount.get("Source"):
            mount["Source"] = engine_volume(project_id, mount["Source"])
        out.append(mount)
    return out


def merge(config, spec, image_volumes=(), default_network_id=None, port_rules=None):
    """
    ``config`` (the engine create config csvc built from ``spec``) with the
    client's options of ``spec["docker_config"]`` merged in, and a volume of
    the project's for each anonymous mount (``Config.Volumes``, then
    ``image_volumes``: the image's own ``VOLUME`` paths); a new dict.  A
    container of the engine's default network goes on
    ``default_network_id`` (its project's default network), known there by
    its name; with ``port_rules`` its published ports are checked and
    rebuilt (InvalidSpec naming a refused one).
    """
    docker_config = spec.get("docker_config") or {}
    merged = dict(config)
    for field, value in (docker_config.get("Config") or {}).items():
        if field not in _OWN_CONFIG:
            merged[field] = value
    host = dict(config.get("HostConfig") or {})
    for field, value in (docker_config.get("HostConfig") or {}).items():
        if field == "LogConfig" and "LogConfig" in host:
            # The driver stays csvc's (its output capture reads that log);
            # the client's max-size and max-file (bounded by the API) apply.
            own = host["LogConfig"]
            host["LogConfig"] = {"Type": own["Type"],
                                 "Config": dict(own.get("Config") or {}, **(value.get("Config") or {}))}
            continue
        if field in _OWN_HOST:
            continue
        if field == "Binds":
            value = _scoped_binds(spec["project_id"], value)
        elif field == "Mounts":
            value = _scoped_mounts(spec["project_id"], value)
        elif field == "PortBindings" and port_rules is not None:
            try:
                value = rebuild(value, port_rules)
            except PortRefused as exc:
                raise InvalidSpec(str(exc)) from None
        elif field == "PublishAllPorts" and port_rules is not None:
            try:
                check_publish_all(value, port_rules)
            except PortRefused as exc:
                raise InvalidSpec(str(exc)) from None
        host[field] = value
    targets = anonymous_targets(list(merged.get("Volumes") or {}) + list(image_volumes), host)
    if targets:
        host["Mounts"] = list(host.get("Mounts") or []) + [
            {"Type": "volume", "Target": target,
             "Source": engine_volume(spec["project_id"], anonymous_volume(spec["uuid"], target)),
             "VolumeOptions": {"Labels": {ANONYMOUS_VOLUME: ""}}}
            for target in targets
        ]
    network = project_network(host.get("NetworkMode"))
    if network is not None:
        host["NetworkMode"] = engine_network(spec["project_id"], network)
        endpoint = ((docker_config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).get(network) or {}
        aliases = [spec["name"]] if spec.get("name") else []
        aliases += [a for a in endpoint.get("Aliases") or [] if a not in aliases]
        merged["NetworkingConfig"] = {"EndpointsConfig": {host["NetworkMode"]: {"Aliases": aliases}}}
    elif default_network_id and on_default_network(host):
        host["NetworkMode"] = default_network_id
        aliases = [spec["name"]] if spec.get("name") else []
        merged["NetworkingConfig"] = {"EndpointsConfig": {default_network_id: {"Aliases": aliases}}}
    merged["HostConfig"] = host
    return merged
