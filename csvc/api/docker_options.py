"""
A Docker create body's container options, judged: which reach past the
container onto the instance (refused by policy for anyone but an admin),
which csvc honours (kept, validated, as ``docker_config`` and merged into
the engine's create config by the agent), and which it ignores (a warning
in the create answer; nothing unknown reaches the engine).

Pure functions over the body; the API calls ``enforce`` before anything is
stored or sent to an engine.
"""

import posixpath
import re

from csvc import policy
from csvc.wire.naming import project_network
from csvc.api.schemas import BadRequest

#: a named volume, as Docker spells one
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
#: a network's name (csvc's rule; Docker's engine takes almost anything)
NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")

#: SecurityOpt entries that only tighten confinement; anything else may
#: loosen it (unconfined seccomp or AppArmor, SELinux labels disabled or
#: another type, a custom seccomp profile) and is the admin's.
_TIGHTENING = {"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true",
               "apparmor=docker-default", "apparmor:docker-default"}

#: namespace option -> (policy rule, values a member may use)
_NAMESPACES = {
    "NetworkMode": ("container:create:network_mode", {"", "default", "bridge", "none"}),
    "PidMode": ("container:create:pid_mode", {""}),
    "IpcMode": ("container:create:ipc_mode", {"", "private", "shareable", "none"}),
    "UTSMode": ("container:create:uts_mode", {""}),
    "UsernsMode": ("container:create:userns_mode", {""}),
}


def _is_set(value):
    return value not in (None, False, 0, "", [], {})


def _host(body):
    host = body.get("HostConfig")
    return host if isinstance(host, dict) else {}


def _bind_source(entry):
    """
    The source of a ``Binds`` entry (``src:dst[:opts]``), or None.
    """
    if not isinstance(entry, str):
        return None
    parts = entry.split(":")
    return parts[0] if len(parts) >= 2 else None


def refusals(body, resolved=()):
    """
    The host-escaping options a create body sets: a list of ``(rule,
    option)``, ``option`` naming the field (and value) as the client sent it.
    Tolerates malformed values: type errors are ``honoured``'s to report.
    ``resolved``: namespace fields whose ``container:<id>`` names a container
    of the caller's project on the same instance (allowed).
    """
    host = _host(body)
    found = []
    if host.get("Privileged") is True:
        found.append(("container:create:privileged", "HostConfig.Privileged"))
    if _is_set(host.get("CapAdd")):
        found.append(("container:create:cap_add", "HostConfig.CapAdd"))
    if _is_set(host.get("Devices")):
        found.append(("container:create:devices", "HostConfig.Devices"))
    if _is_set(host.get("DeviceRequests")):
        found.append(("container:create:device_requests", "HostConfig.DeviceRequests"))
    if _is_set(host.get("DeviceCgroupRules")):
        found.append(("container:create:devices", "HostConfig.DeviceCgroupRules"))
    for entry in host.get("SecurityOpt") or []:
        if not isinstance(entry, str) or entry.strip() not in _TIGHTENING:
            shown = entry if isinstance(entry, str) and len(entry) <= 80 else "(custom profile)"
            found.append(("container:create:security_opt", f"HostConfig.SecurityOpt {shown}"))
    binds = host.get("Binds")
    for entry in binds if isinstance(binds, list) else []:
        source = _bind_source(entry)
        if source is not None and source.startswith("/"):
            found.append(("container:create:host_bind", f"HostConfig.Binds {source}"))
    mounts = host.get("Mounts")
    for mount in mounts if isinstance(mounts, list) else []:
        if not isinstance(mount, dict):
            continue
        if str(mount.get("Type", "")).lower() == "bind":
            found.append(("container:create:host_bind", f"HostConfig.Mounts bind {mount.get('Source', '')}"))
        driver = (mount.get("VolumeOptions") or {}).get("DriverConfig") or {}
        if isinstance(driver, dict):
            if driver.get("Name") not in (None, "", "local"):
                found.append(("container:create:volume_driver", f"HostConfig.Mounts volume driver {driver['Name']}"))
            elif _is_set(driver.get("Options")):
                # The local driver's options mount host paths and devices.
                found.append(("container:create:volume_driver", "HostConfig.Mounts volume driver options"))
    for field, (rule, _allowed) in _NAMESPACES.items():
        value = host.get(field)
        if field in resolved:
            continue
        if isinstance(value, str) and (value == "host" or value.startswith("container:")):
            found.append((rule, f"HostConfig.{field} {value}"))
    if _is_set(host.get("Sysctls")):
        found.append(("container:create:sysctls", "HostConfig.Sysctls"))
    ulimits = host.get("Ulimits")
    for item in ulimits if isinstance(ulimits, list) else []:
        if isinstance(item, dict) and item.get("Name") in ULIMITS_RAISING:
            found.append(("container:create:ulimits", f"HostConfig.Ulimits {item['Name']}"))
    if _is_set(host.get("CgroupParent")):
        found.append(("container:create:cgroup_parent", "HostConfig.CgroupParent"))
    if host.get("VolumeDriver") not in (None, "", "local"):
        found.append(("container:create:volume_driver", f"HostConfig.VolumeDriver {host['VolumeDriver']}"))
    if host.get("Runtime") not in (None, "", "runc"):
        found.append(("container:create:runtime", f"HostConfig.Runtime {host['Runtime']}"))
    return found


def enforce(body, identity, resolved=()):
    """
    Raise ``Forbidden`` (403) naming the first host-escaping option the
    identity may not use, and the policy rule that says so.
    """
    for rule, option in refusals(body, resolved):
        try:
            policy.enforce(rule, identity)
        except policy.Forbidden as exc:
            raise policy.Forbidden(f"{option} is not allowed: {exc}") from None


def namespace_targets(body):
    """
    ``{field: ident}`` for each namespace option (``NetworkMode``,
    ``PidMode``, ``IpcMode``) that joins another container's namespace
    (``container:<ident>``).
    """
    host = _host(body)
    found = {}
    for field in JOINABLE:
        value = host.get(field)
        if isinstance(value, str) and value.startswith("container:") and value[len("container:"):]:
            found[field] = value[len("container:"):]
    return found


#: The namespaces a member's container may share with another container of
#: its project on the same instance.
JOINABLE = ("NetworkMode", "PidMode", "IpcMode")


# -- honoured options ------------------------------------------------------


def _string(field, value):
    if not isinstance(value, str):
        raise BadRequest(f"{field}: must be a string")
    return value


def _integer(field, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field}: must be an integer")
    return value


def _at_least(minimum):
    """
    An integer no lower than ``minimum`` (the engine hands a negative limit
    to runc, whose failure would be a 500).
    """

    def check(field, value):
        _integer(field, value)
        if value < minimum:
            raise BadRequest(f"{field}: must be {minimum} or more, not {value}")
        return value

    return check


_non_negative = _at_least(0)


def _between(low, high):
    """
    0 (the engine's default) or an integer from ``low`` to ``high``: the
    kernel's bounds, which the engine leaves to runc (whose refusal at
    start would be a 500).
    """

    def check(field, value):
        _integer(field, value)
        if value != 0 and not low <= value <= high:
            raise BadRequest(f"{field}: 0 (the default) or from {low} to {high}, not {value}")
        return value

    return check


def _mount_target(field, target):
    """
    An absolute path in the container other than its root (the engine
    refuses ``/`` when it creates the container, as a 500).
    """
    if not isinstance(target, str) or not target.startswith("/"):
        raise BadRequest(f"{field}: each mount needs an absolute Target")
    if posixpath.normpath(target) in ("/", "//"):
        raise BadRequest(f"{field}: a mount cannot be over the container's root ({target!r})")
    return target
#: -1: unlimited
_limit_or_unlimited = _at_least(-1)


def _boolean(field, value):
    if not isinstance(value, bool):
        raise BadRequest(f"{field}: must be true or false")
    return value


def _object(field, value):
    if not isinstance(value, dict):
        raise BadRequest(f"{field}: must be an object")
    return value


def _strings(field, value):
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadRequest(f"{field}: must be a list of strings")
    return value


def _string_or_strings(field, value):
    if isinstance(value, str):
        return value
    return _strings(field, value)


#: A health check runs as an exec through the instance's engine: no more
#: often than this (nanoseconds; 0 is "the image's, or the default").
HEALTH_PERIOD_MIN = 1_000_000_000


def _healthcheck(field, value):
    """
    ``Config.Healthcheck``, its periods bounded: a check every millisecond
    would keep the instance's engine (shared by every project) busy.
    """
    for name in ("Interval", "Timeout", "StartPeriod"):
        period = value.get(name, 0)
        if period and not HEALTH_PERIOD_MIN <= period:
            raise BadRequest(f"{field}.{name}: at least 1s ({HEALTH_PERIOD_MIN} ns), or 0 for the default")
    retries = value.get("Retries", 0)
    if not 0 <= retries <= 1000:
        raise BadRequest(f"{field}.Retries: between 0 and 1000")
    return value


def _restart_policy(field, value):
    _object(field, value)
    name = value.get("Name") or ""
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise BadRequest(f"{field}: invalid restart policy {name!r}")
    retries = value.get("MaximumRetryCount") or 0
    _integer(f"{field}.MaximumRetryCount", retries)
    return {"Name": name, "MaximumRetryCount": retries}


#: The resource limits Docker knows (``docker run --ulimit``'s names).
ULIMITS = frozenset({"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                     "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})
#: Those that lift a process above its neighbours on the instance: an admin's.
ULIMITS_RAISING = frozenset({"memlock", "nice", "rtprio", "rttime"})


def _ulimits(field, value):
    if not isinstance(value, list):
        raise BadRequest(f"{field}: must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise BadRequest(f"{field}: each entry needs a Name")
        if item["Name"] not in ULIMITS:
            raise BadRequest(f"{field}: {item['Name'][:40]!r} is not a resource limit (one of "
                             f"{', '.join(sorted(ULIMITS))})")
        out.append({
            "Name": item["Name"],
            "Soft": _integer(f"{field}.Soft", item.get("Soft", 0)),
            "Hard": _integer(f"{field}.Hard", item.get("Hard", 0)),
        })
    return out


def _tmpfs(field, value):
    _object(field, value)
    for path, options in value.items():
        if not path.startswith("/") or not isinstance(options, str):
            raise BadRequest(f"{field}: maps absolute paths to option strings")
        _mount_target(field, path)
    return value


def _port_bindings(field, value):
    _object(field, value)
    for port, bindings in value.items():
        if bindings is None:
            continue
        if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
            raise BadRequest(f"{field}.{port}: must be a list of {{HostIp, HostPort}}")
    return value


def _binds(field, value):
    _strings(field, value)
    for entry in value:
        parts = entry.split(":")
        if len(parts) < 2 or not parts[1].startswith("/"):
            raise BadRequest(f"{field}: {entry!r} is not of the form volume:/path[:options]")
        _mount_target(field, parts[1])
        if not parts[0].startswith("/") and not VOLUME_NAME.fullmatch(parts[0]):
            raise BadRequest(f"{field}: {parts[0]!r} is not a valid volume name")
    return value


#: The fields of a mount of each type that csvc passes on (the engine
#: refuses another type's options).
_MOUNT_FIELDS = {
    "volume": ("Type", "Source", "Target", "ReadOnly", "VolumeOptions"),
    "tmpfs": ("Type", "Target", "ReadOnly", "TmpfsOptions"),
    "bind": ("Type", "Source", "Target", "ReadOnly", "BindOptions", "Consistency"),
}


def _mounts(field, value):
    """
    ``HostConfig.Mounts`` (already in canonical spelling, ``engine_body``),
    each mount rebuilt from the fields its type takes.
    """
    if not isinstance(value, list):
        raise BadRequest(f"{field}: must be a list")
    out = []
    for mount in value:
        if not isinstance(mount, dict):
            raise BadRequest(f"{field}: each mount must be an object")
        kind = mount.get("Type") or "volume"
        _mount_target(field, mount.get("Target"))
        if kind not in _MOUNT_FIELDS:
            raise BadRequest(f"{field}: mounts of type {kind!r} are not supported")
        if kind == "volume":
            source = mount.get("Source") or ""
            if source and not VOLUME_NAME.fullmatch(source):
                raise BadRequest(f"{field}: {source!r} is not a valid volume name")
        elif kind == "tmpfs" and mount.get("Source"):
            raise BadRequest(f"{field}: a tmpfs mount has no Source")
        for other in set(mount) - set(_MOUNT_FIELDS[kind]):
            if _is_set(mount[other]):
                raise BadRequest(f"{field}: {other} does not apply to a mount of type {kind}")
        rebuilt = {name: mount[name] for name in _MOUNT_FIELDS[kind] if name in mount}
        rebuilt["Type"] = kind
        out.append(rebuilt)
    return out


def _mode(field, value):
    return _string(field, value)


#: Config fields kept in ``docker_config`` (the others csvc has columns for)
CONFIG = {
    "Hostname": _string,
    "Domainname": _string,
    "User": _string,
    "ExposedPorts": _object,
    "Healthcheck": lambda f, v: _healthcheck(f, _object(f, v)),
    "StopSignal": _string,
    "StopTimeout": _integer,
    "Volumes": _object,
    "NetworkDisabled": _boolean,
}

#: Config fields csvc reads itself (columns) or that mean nothing to a
#: container's creation: never a warning.
CONFIG_CONSUMED = {
    "Image", "Cmd", "Entrypoint", "Env", "WorkingDir", "Labels", "Tty", "OpenStdin", "StdinOnce",
    "AttachStdin", "AttachStdout", "AttachStderr", "HostConfig", "NetworkingConfig", "ArgsEscaped",
    "Shell", "OnBuild", "Platform",
}

#: HostConfig fields kept in ``docker_config``
HOST = {
    "RestartPolicy": _restart_policy,
    "Memory": _non_negative,
    "MemorySwap": _limit_or_unlimited,
    "MemoryReservation": _non_negative,
    "MemorySwappiness": _integer,
    "NanoCpus": _non_negative,
    # (the kernel's bounds of cgroup v1 cpu.shares and cpu.cfs_period_us)
    "CpuShares": _between(2, 262144),
    "CpuPeriod": _between(1000, 1000000),
    "CpuQuota": _limit_or_unlimited,
    "CpusetCpus": _string,
    "CpusetMems": _string,
    "PidsLimit": _integer,
    "Ulimits": _ulimits,
    "OomKillDisable": _boolean,
    "Tmpfs": _tmpfs,
    "ShmSize": _integer,
    "ReadonlyRootfs": _boolean,
    "ExtraHosts": _strings,
    "Dns": _strings,
    "DnsOptions": _strings,
    "DnsSearch": _strings,
    "Init": _boolean,
    "PortBindings": _port_bindings,
    "PublishAllPorts": _boolean,
    "Binds": _binds,
    "Mounts": _mounts,
    "CapDrop": _strings,
    "GroupAdd": _strings,
    "SecurityOpt": _strings,
    "NetworkMode": _mode,
    "PidMode": _mode,
    "IpcMode": _mode,
    "UTSMode": _mode,
    "UsernsMode": _mode,
    # Admin-only (``refusals``); honoured when allowed.
    "Privileged": _boolean,
    "CapAdd": _strings,
    "Devices": lambda f, v: v if isinstance(v, list) else _strings(f, v),
    "DeviceRequests": lambda f, v: v if isinstance(v, list) else _strings(f, v),
    "DeviceCgroupRules": _strings,
    "Sysctls": _object,
    "CgroupParent": _string,
    "VolumeDriver": _string,
    "Runtime": _string,
}

#: HostConfig fields csvc handles itself: never a warning.
HOST_CONSUMED = {"AutoRemove", "LogConfig", "ConsoleSize"}


def _namespace_values(host):
    for field, (_rule, allowed) in _NAMESPACES.items():
        value = host.get(field)
        if isinstance(value, str) and value not in allowed and value != "host" \
                and not value.startswith("container:"):
            if field == "NetworkMode":
                if NETWORK_NAME.fullmatch(value):
                    continue  # a network of the project's
                raise BadRequest(f"HostConfig.NetworkMode: invalid network name {value!r}")
            raise BadRequest(f"HostConfig.{field}: {value!r} is not supported")


def _networking(body, network, warnings):
    """
    The ``NetworkingConfig`` csvc keeps: the project's ``network`` (the
    container's NetworkMode) and the container's aliases on it, or None
    (no network of the project's).  As Docker's engine
    before API 1.44, a container is created on one network: others are
    connected to after.
    """
    networking = body.get("NetworkingConfig")
    if networking is None:
        networking = {}
    if not isinstance(networking, dict):
        raise BadRequest("NetworkingConfig must be an object")
    endpoints = networking.get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise BadRequest("NetworkingConfig.EndpointsConfig must be an object")
    others = sorted(set(endpoints) - {"bridge", "default", network})
    if others:
        raise BadRequest(f"NetworkingConfig.EndpointsConfig: a container is created on one network, its "
                         f"HostConfig.NetworkMode ({network or 'bridge'}); connect it to {', '.join(others)} "
                         "after it is created")
    if not network:
        return None
    endpoint = endpoints.get(network) or {}
    if not isinstance(endpoint, dict):
        raise BadRequest(f"NetworkingConfig.EndpointsConfig.{network} must be an object")
    for field, value in endpoint.items():
        if field != "Aliases" and _is_set(value):
            warnings.append(f"NetworkingConfig.EndpointsConfig.{network}.{field} is not supported by csvc "
                            "and was ignored")
    aliases = network_aliases(f"NetworkingConfig.EndpointsConfig.{network}.Aliases", endpoint.get("Aliases"))
    return {"EndpointsConfig": {network: {"Aliases": aliases}}}


#: A name on a network (Docker's DNS answers for it there).
_ALIAS = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")


def network_aliases(field, value):
    """
    A container's aliases on a network, validated: a list of DNS-like names.
    """
    aliases = _strings(field, value or [])
    for alias in aliases:
        if not _ALIAS.fullmatch(alias):
            raise BadRequest(f"{field}: invalid alias {alias!r}")
    return aliases


def honoured(body):
    """
    ``(docker_config, warnings)``: the options csvc passes to the engine,
    validated (400 naming the field otherwise), as ``{"Config": {...},
    "HostConfig": {...}}`` (None when there are none), and a warning for
    each set option csvc ignores.
    """
    host = body.get("HostConfig")
    if host is None:
        host = {}
    if not isinstance(host, dict):
        raise BadRequest("HostConfig must be an object")
    config, host_config, warnings = {}, {}, []
    for field, value in body.items():
        if field in CONFIG:
            # "" is the engine's default, as the CLI sends it.
            if value is not None and value != "":
                config[field] = CONFIG[field](field, value)
        elif field not in CONFIG_CONSUMED and _is_set(value):
            warnings.append(f"{field} is not supported by csvc and was ignored")
    for field, value in host.items():
        if field in HOST:
            if value is not None:
                host_config[field] = HOST[field](f"HostConfig.{field}", value)
        elif field not in HOST_CONSUMED and _is_set(value):
            warnings.append(f"HostConfig.{field} is not supported by csvc and was ignored")
    _namespace_values(host_config)
    log_config = log_options(host.get("LogConfig"))
    if log_config is not None:
        host_config["LogConfig"] = log_config
    networking = _networking(body, project_network(host_config.get("NetworkMode")), warnings)
    if host_config.get("OomKillDisable") and not host_config.get("Memory"):
        # Without a limit, the instance's kernel would kill others (the agent).
        raise BadRequest("HostConfig.OomKillDisable needs a memory limit (HostConfig.Memory)")
    restart = (host_config.get("RestartPolicy") or {}).get("Name") or "no"
    if host.get("AutoRemove") and restart != "no":
        raise BadRequest("conflicting options: cannot specify both --restart and --rm")
    if not config and not host_config:
        return None, warnings
    kept = {"Config": config, "HostConfig": host_config}
    if networking is not None:
        kept["NetworkingConfig"] = networking
    return kept, warnings


# -- LogConfig -------------------------------------------------------------

#: The log drivers a client may name: the engine's ``local`` driver, which
#: csvc's output capture reads (``json-file`` is taken as a synonym: the
#: engine still runs ``local``).
LOG_DRIVERS = ("", "json-file", "local")

#: Bounds of the options a client may give its container's engine log.
LOG_MAX_SIZE = (1024 * 1024, 1024 * 1024 * 1024)
LOG_MAX_FILE = (1, 16)

_SIZE = re.compile(r"([0-9]+)([kmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def log_options(value):
    """
    A create's ``LogConfig`` validated: None when it says nothing (csvc's
    defaults), else ``{"Type", "Config"}`` with only ``max-size`` and
    ``max-file`` within bounds; a 400 naming what is wrong otherwise.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("HostConfig.LogConfig: must be an object")
    kind = value.get("Type") or ""
    if not isinstance(kind, str) or kind not in LOG_DRIVERS:
        raise BadRequest(
            f"HostConfig.LogConfig.Type {kind!r} is not supported: csvc reads a container's output from the "
            "engine's local log driver; use local (or json-file) with max-size and max-file"
        )
    options = value.get("Config") or {}
    if not isinstance(options, dict):
        raise BadRequest("HostConfig.LogConfig.Config: must be an object of strings")
    for name in options:
        if name not in ("max-size", "max-file"):
            raise BadRequest(f"HostConfig.LogConfig.Config {name!r} is not supported: only max-size and max-file are")
    config = {}
    if "max-size" in options:
        text = str(options["max-size"]).strip()
        match = _SIZE.fullmatch(text)
        size = int(match.group(1)) * _UNITS[match.group(2).lower()] if match else None
        if size is None or not LOG_MAX_SIZE[0] <= size <= LOG_MAX_SIZE[1]:
            raise BadRequest(f"HostConfig.LogConfig.Config max-size {text!r}: must be between 1m and 1g")
        config["max-size"] = text
    if "max-file" in options:
        text = str(options["max-file"]).strip()
        if not text.isdigit() or not LOG_MAX_FILE[0] <= int(text) <= LOG_MAX_FILE[1]:
            raise BadRequest(f"HostConfig.LogConfig.Config max-file {text!r}: must be between 1 and 16")
        config["max-file"] = text
    if not kind and not config:
        return None
    # Without a driver named, inspect reports csvc's default as it always has.
    return {"Type": kind or "json-file", "Config": config}


# -- update ----------------------------------------------------------------

#: What ``POST /containers/{id}/update`` may change.
UPDATE = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
          "CpusetCpus", "PidsLimit", "RestartPolicy")


def swap_within(changes, memory, swap):
    """
    An update's ``changes`` checked against the container's ``memory`` and
    ``swap`` limits in bytes (0: none): memory and swap together
    (``MemorySwap``) no lower than the memory limit, else a 400 naming them
    (the engine hands such limits to runc, whose failure would be a 500).
    """
    if "Memory" not in changes and "MemorySwap" not in changes:
        return changes
    memory = changes.get("Memory") or memory
    swap = changes.get("MemorySwap") or swap
    if memory > 0 and swap > 0 and swap < memory:
        if "MemorySwap" in changes:
            raise BadRequest(f"MemorySwap: {swap} is lower than the memory limit ({memory}): it is memory and swap "
                             "together, so no lower than Memory")
        raise BadRequest(f"Memory: {memory} is higher than the container's MemorySwap ({swap}): update MemorySwap "
                         "at the same time")
    return changes


def update_fields(body):
    """
    The fields of an update body that change something, validated (a 400
    naming the field otherwise); a set field csvc cannot update is a 400
    naming it.  Zero and empty values mean "unchanged", as with Docker (the
    CLI sends every field).
    """
    changes = {}
    for field, value in body.items():
        if field in UPDATE:
            if field == "RestartPolicy":
                if isinstance(value, dict) and not value.get("Name"):
                    continue
            elif field == "PidsLimit":
                if value is None:
                    continue
            elif not _is_set(value):
                continue
            changes[field] = HOST[field](field, value)
        elif _is_set(value):
            raise BadRequest(f"{field} cannot be updated by csvc: only {', '.join(UPDATE)} can")
    if not changes:
        raise BadRequest("you must provide one or more flags when using this command")
    return changes
