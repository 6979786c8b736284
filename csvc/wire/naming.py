"""
The names csvc gives things on an engine, which both sides must agree on:
a project's volumes and networks (``csvc-<project>-<name>``), its default
network and the bridges of csvc's networks, the anonymous volumes of a
container, and which ``NetworkMode`` names a network of the project's.
Pure functions.
"""

import hashlib
import posixpath
import re

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
