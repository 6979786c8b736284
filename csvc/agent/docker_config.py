"""
A Docker client's honoured create options (``spec["docker_config"]``, as
``csvc.api.docker_options`` validated them) merged into the engine's create
config.  csvc's own fields always win: its labels, its log driver, its
handling of AutoRemove, the engine name.  Named volumes are scoped to the
project: the engine's volume is ``csvc-<project>-<name>``.
"""

import hashlib
import re

#: Set by csvc itself; a client's value never replaces them.
_OWN_CONFIG = {"Image", "Labels", "HostConfig"}
_OWN_HOST = {"LogConfig", "AutoRemove"}


def engine_volume(project_id, name):
    """
    The engine's name for a project's named volume: ``csvc-<project>-<name>``,
    the project spelled without ``-`` so that no two projects' names meet
    (a digest of it when it has characters beyond ``[a-zA-Z0-9_.]``).
    """
    if not re.fullmatch(r"[a-zA-Z0-9_.]{1,64}", project_id):
        project_id = "h" + hashlib.sha256(project_id.encode("utf-8")).hexdigest()[:32]
    return f"csvc-{project_id}-{name}"


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


def merge(config, spec):
    """
    ``config`` (the engine create config csvc built from ``spec``) with the
    client's options of ``spec["docker_config"]`` merged in; a new dict.
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
        host[field] = value
    merged["HostConfig"] = host
    return merged
