"""
What the engine itself says about the containers csvc made for members:
the check every attack ends with.
"""

import docker

#: HostConfig namespace fields a container may share with the host (CgroupnsMode
#: is the engine's own default on cgroup v1, which no member can set)
_NAMESPACES = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode")


def escapes(attrs):
    """
    The ways an engine container (its inspect, ``attrs``) reaches past
    itself onto the instance: a list of words, empty when it does not.
    """
    host = attrs.get("HostConfig") or {}
    found = []
    if host.get("Privileged"):
        found.append("privileged")
    if host.get("CapAdd"):
        found.append(f"capabilities {host['CapAdd']}")
    if host.get("Devices") or host.get("DeviceRequests") or host.get("DeviceCgroupRules"):
        found.append("devices")
    for field in _NAMESPACES:
        value = host.get(field) or ""
        if value == "host":
            found.append(f"{field} host")
    for mount in attrs.get("Mounts") or []:
        if mount.get("Type") == "bind":
            found.append(f"bind of {mount.get('Source')}")
        elif mount.get("Type") == "volume" and mount.get("Driver") not in (None, "", "local"):
            found.append(f"volume driver {mount.get('Driver')}")
    for option in host.get("SecurityOpt") or []:
        if "unconfined" in option or option.startswith("label") or option == "no-new-privileges=false":
            found.append(f"security option {option}")
    return found


def escaping_member_containers(admin_projects=()):
    """
    ``{engine id: escapes}`` of every csvc container on the engine whose
    project is not one of ``admin_projects`` and that escapes.
    """
    engine = docker.from_env()
    try:
        found = {}
        for container in engine.containers.list(all=True, filters={"label": "csvc.project"}):
            if container.labels.get("csvc.project") in admin_projects:
                continue
            problems = escapes(container.attrs)
            if problems:
                found[container.id] = problems
        return found
    finally:
        engine.close()


def volume_escapes(name):
    """
    How an engine volume (by name) reaches the host: its local driver's
    options (a bind of a host path, a device), else an empty list.
    """
    engine = docker.from_env()
    try:
        try:
            volume = engine.volumes.get(name)
        except docker.errors.NotFound:
            return []
        options = volume.attrs.get("Options") or {}
        return [f"{k}={v}" for k, v in options.items()] if options else []
    finally:
        engine.close()
