"""
The agent's wall: what no member's container may have, checked next to the
engine on the config the engine is about to get, whatever the control plane
asked for (STYLE.md, "Two walls").

Pure functions.  Each takes what the engine will read (the final create
config: ``Config`` fields, ``HostConfig`` and ``NetworkingConfig``; an
update body; an exec spec; a network to connect to) and returns the list of
``Violation``s, empty when it may go.  ``admin`` (the control plane marked
the request as an admin's) lifts the rules policy lifts for an admin; keys
the wall does not know, and keys the engine would read as another one, are
refused for everyone: csvc never builds them.

Docker's engine decodes JSON with Go's ``encoding/json``: an object's keys
match its fields case-insensitively (``privileged`` is ``Privileged``, and
with Go 1.21 some non-ASCII letters fold to ASCII ones), the last of two
spellings wins.  So the wall reads every object the engine decodes into a
struct through ``_fields``: ASCII keys only, folded; two keys that fold
alike, a non-ASCII key or an unknown one are violations in themselves.
The create body's top level is strict too: the engine also reads
``HostConfig``'s fields there (a deprecated wrapper of its API).
"""

from dataclasses import dataclass

from csvc.wire.naming import BUILTIN_NETWORKS, engine_network, engine_volume

#: Violations named in one refusal (the rest are counted).
SHOWN = 5
#: A field name a violation quotes is cut to this many characters.
_NAME_MAX = 64


@dataclass(frozen=True)
class Violation:
    """
    ``field`` (where, as the engine reads it; never a value that may be a
    secret) breaks ``rule``.
    """

    rule: str
    field: str

    def __str__(self):
        return f"{self.field} ({self.rule})"


def describe(violations):
    """
    One line naming the violations (at most ``SHOWN`` of them).
    """
    shown = "; ".join(str(v) for v in violations[:SHOWN])
    if len(violations) > SHOWN:
        shown += f"; and {len(violations) - SHOWN} more"
    return shown


def _quoted(key):
    text = key if len(key) <= _NAME_MAX else key[:_NAME_MAX] + "..."
    return repr(text)


def _fold(key):
    return key.lower()


def _fields(where, obj, known, found):
    """
    ``{canonical name: value}`` of the JSON object ``obj`` as Go decodes it
    into a struct whose fields are ``known``; a violation in ``found`` for
    each key that is not ASCII, not known, or a second spelling of a field.
    None when ``obj`` is not an object (a violation too, unless null).
    """
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        found.append(Violation("malformed", f"{where} is not an object"))
        return None
    names = {_fold(name): name for name in known}
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key.isascii():
            found.append(Violation("unknown_key", f"{where}.{_quoted(str(key))}"))
            continue
        name = names.get(_fold(key))
        if name is None:
            found.append(Violation("unknown_key", f"{where}.{_quoted(key)}"))
            continue
        if name in out:
            found.append(Violation("duplicate_key", f"{where}.{name} spelt twice"))
            continue
        out[name] = value
    return out


def canonical(obj, known):
    """
    ``obj`` (a JSON object the engine decodes into a struct whose fields are
    ``known``) with each key that names a field under that field's name, as
    the engine reads it; any other key as it is (``_fields`` refuses it).
    ValueError naming a field spelt twice.
    """
    names = {_fold(name): name for name in known}
    out = {}
    for key, value in obj.items():
        name = names.get(_fold(key), key) if isinstance(key, str) and key.isascii() else key
        if name in out:
            raise ValueError(f"{_quoted(str(name))} spelt twice")
        out[name] = value
    return out


def _is_set(value):
    return value not in (None, False, 0, "", [], {})


# -- the create config --------------------------------------------------------

#: Docker's container ``Config`` fields (none reaches past the container).
CONFIG = frozenset({
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
})
#: The create body's top level: the ``Config`` fields and these two.
TOP = CONFIG | {"HostConfig", "NetworkingConfig"}

#: HostConfig fields a member may set freely (values the engine checks).
HOST_FREE = frozenset({
    "PortBindings", "RestartPolicy", "AutoRemove", "ConsoleSize", "CapDrop", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "GroupAdd", "PublishAllPorts", "ReadonlyRootfs", "Tmpfs", "ShmSize", "Init",
    # (Resources)
    "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
    "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit", "Ulimits",
})
#: HostConfig fields that reach past the container, each with its rule (as
#: the control plane's policy names them): a member's must be unset
#: (null, false, 0, empty).
HOST_ESCAPES = {
    "Privileged": "privileged",
    "CapAdd": "cap_add",
    "Devices": "devices",
    "DeviceCgroupRules": "devices",
    "DeviceRequests": "device_requests",
    "Sysctls": "sysctls",
    "CgroupParent": "cgroup_parent",
}
#: Docker's other HostConfig fields, which csvc does not offer a member: a
#: member's must be unset (``VolumesFrom`` mounts another container's
#: volumes, ``Links`` reads its environment, ``ContainerIDFile`` writes a
#: file on the host...); ``MaskedPaths`` and ``ReadonlyPaths`` absent or
#: null (empty, they unmask /proc).
HOST_ADMIN = frozenset({
    "ContainerIDFile", "VolumesFrom", "Annotations", "CgroupnsMode", "Cgroup", "Links", "OomScoreAdj",
    "StorageOpt", "Isolation", "MaskedPaths", "ReadonlyPaths",
    "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime", "KernelMemory", "KernelMemoryTCP",
    "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
})
#: Of ``HOST_ADMIN``, those whose empty value is not the engine's default.
_EMPTY_IS_SET = frozenset({"MaskedPaths", "ReadonlyPaths"})
#: HostConfig fields whose values the wall reads (below).
HOST_CHECKED = frozenset({
    "Binds", "Mounts", "LogConfig", "SecurityOpt", "VolumeDriver", "Runtime",
    "NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode",
})
HOST = HOST_FREE | frozenset(HOST_ESCAPES) | HOST_ADMIN | HOST_CHECKED

#: SecurityOpt entries that only tighten confinement (anything else may
#: loosen it: an unconfined profile, labels off, writable cgroups...).
TIGHTENING = frozenset({
    "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true",
    "apparmor=docker-default", "apparmor:docker-default",
})
#: The log drivers and their options csvc's containers use (its output
#: capture reads that log).
LOG_DRIVERS = frozenset({"local"})
LOG_OPTIONS = frozenset({"max-size", "max-file", "compress"})
#: Runtimes a member's container may run under.
RUNTIMES = frozenset({"", "runc"})

#: namespace field -> (rule, values a member may use besides another
#: container's of the same project where ``JOINABLE``)
NAMESPACES = {
    "NetworkMode": ("network_mode", BUILTIN_NETWORKS),
    "PidMode": ("pid_mode", frozenset({""})),
    "IpcMode": ("ipc_mode", frozenset({"", "private", "shareable", "none"})),
    "UTSMode": ("uts_mode", frozenset({""})),
    "UsernsMode": ("userns_mode", frozenset({""})),
}
#: The namespaces a member's container may share with another container of
#: its project on this engine.
JOINABLE = ("NetworkMode", "PidMode", "IpcMode")

MOUNT = frozenset({
    "Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions",
    "ImageOptions", "ClusterOptions",
})
#: Mount types a member may use (``bind``, ``npipe``, ``image``, ``cluster``
#: are not).
MEMBER_MOUNTS = frozenset({"volume", "tmpfs"})
VOLUME_OPTIONS = frozenset({"NoCopy", "Labels", "Subpath", "DriverConfig"})
DRIVER_CONFIG = frozenset({"Name", "Options"})
TMPFS_OPTIONS = frozenset({"SizeBytes", "Mode", "Options"})

NETWORKING = frozenset({"EndpointsConfig"})
ENDPOINT = frozenset({
    "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "GwPriority", "NetworkID", "EndpointID",
    "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
    "DNSNames",
})
#: Endpoint settings a member may give (``Links`` on the default bridge
#: reads another container's environment).
ENDPOINT_FREE = frozenset({"Aliases", "IPAMConfig", "MacAddress", "DNSNames", "GwPriority"})


def _host(config):
    """
    The create body's ``HostConfig`` fields (violations of its reading
    discarded: ``create_violations`` reports them).
    """
    top = _fields("config", config, TOP, []) or {}
    return _fields("HostConfig", top.get("HostConfig"), HOST, []) or {}


def joined_containers(config):
    """
    The containers whose namespaces ``config`` joins (``container:<X>`` in
    ``NetworkMode``, ``PidMode``, ``IpcMode``): ``{X}``, for the engine to
    tell which are the project's.
    """
    host = _host(config)
    out = set()
    for field in JOINABLE:
        value = host.get(field)
        if isinstance(value, str) and value.startswith("container:") and value[len("container:"):]:
            out.add(value[len("container:"):])
    return out


def _project_network(project_id, name):
    prefix = engine_network(project_id, "")
    return isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix)


def network_refs(config, project_id):
    """
    The networks ``config`` puts the container on (``NetworkMode``,
    ``NetworkingConfig.EndpointsConfig``) that are neither the engine's
    own nor named as the project's: for the engine to tell which are the
    project's all the same (its default network, named by its id).
    """
    top = _fields("config", config, TOP, []) or {}
    networking = _fields("NetworkingConfig", top.get("NetworkingConfig"), NETWORKING, []) or {}
    endpoints = networking.get("EndpointsConfig")
    refs = set(endpoints) if isinstance(endpoints, dict) else set()
    mode = _host(config).get("NetworkMode")
    if isinstance(mode, str) and mode != "host" and not mode.startswith("container:"):
        refs.add(mode)
    return {ref for ref in refs if ref not in BUILTIN_NETWORKS and not _project_network(project_id, ref)}


def _project_volume(project_id, name):
    prefix = engine_volume(project_id, "")
    return isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix)


def _namespaces(host, project_id, project_containers, project_networks, found):
    for field, (rule, allowed) in NAMESPACES.items():
        value = host.get(field)
        if value is None or value in allowed:
            continue
        if not isinstance(value, str):
            found.append(Violation("malformed", f"HostConfig.{field} is not a string"))
            continue
        if field in JOINABLE and value.startswith("container:"):
            if value[len("container:"):] in project_containers:
                continue
            found.append(Violation(rule, f"HostConfig.{field} joins a container not of the project on this engine"))
            continue
        if field == "NetworkMode" and value != "host" and (
                _project_network(project_id, value) or value in project_networks):
            continue
        shown = "host" if value == "host" else _quoted(value)
        found.append(Violation(rule, f"HostConfig.{field} {shown}"))


def _binds(binds, project_id, found):
    if binds is None:
        return
    if not isinstance(binds, list):
        found.append(Violation("malformed", "HostConfig.Binds is not a list"))
        return
    for entry in binds:
        if not isinstance(entry, str):
            found.append(Violation("malformed", "HostConfig.Binds has an entry that is not a string"))
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            found.append(Violation("malformed", f"HostConfig.Binds entry {_quoted(entry)}"))
        elif parts[0].startswith("/"):
            found.append(Violation("host_bind", f"HostConfig.Binds {_quoted(parts[0])}"))
        elif not _project_volume(project_id, parts[0]):
            found.append(Violation("volume", f"HostConfig.Binds {_quoted(parts[0])} is not the project's volume"))


def _volume_options(where, options, found, admin):
    options = _fields(where, options, VOLUME_OPTIONS, found)
    if not options or admin:
        return
    driver = _fields(f"{where}.DriverConfig", options.get("DriverConfig"), DRIVER_CONFIG, found)
    if not driver:
        return
    if driver.get("Name") not in (None, "", "local"):
        found.append(Violation("volume_driver", f"{where}.DriverConfig.Name {_quoted(str(driver['Name']))}"))
    if _is_set(driver.get("Options")):
        # The local driver's options mount host paths and devices.
        found.append(Violation("volume_driver", f"{where}.DriverConfig.Options"))


def _mounts(mounts, project_id, admin, found):
    if mounts is None:
        return
    if not isinstance(mounts, list):
        found.append(Violation("malformed", "HostConfig.Mounts is not a list"))
        return
    for i, mount in enumerate(mounts):
        where = f"HostConfig.Mounts[{i}]"
        mount = _fields(where, mount, MOUNT, found)
        if mount is None:
            continue
        _volume_options(f"{where}.VolumeOptions", mount.get("VolumeOptions"), found, admin)
        _fields(f"{where}.TmpfsOptions", mount.get("TmpfsOptions"), TMPFS_OPTIONS, found)
        if admin:
            continue
        kind = mount.get("Type")
        if kind not in MEMBER_MOUNTS and kind not in (None, ""):
            rule = "host_bind" if kind in ("bind", "npipe") else "mount_type"
            found.append(Violation(rule, f"{where}.Type {_quoted(str(kind))}"))
        for field in ("BindOptions", "ImageOptions", "ClusterOptions"):
            if mount.get(field) is not None:
                found.append(Violation("mount_type", f"{where}.{field}"))
        source = mount.get("Source")
        if kind in (None, "", "volume") and source not in (None, "") and not _project_volume(project_id, source):
            found.append(Violation("volume", f"{where}.Source {_quoted(str(source))} is not the project's volume"))


def _log_config(value, found):
    log = _fields("HostConfig.LogConfig", value, {"Type", "Config"}, found)
    if not log:
        return
    if log.get("Type") not in LOG_DRIVERS:
        found.append(Violation("log_driver", f"HostConfig.LogConfig.Type {_quoted(str(log.get('Type')))}"))
    options = log.get("Config")
    if options is not None and not isinstance(options, dict):
        found.append(Violation("malformed", "HostConfig.LogConfig.Config is not an object"))
    for key in options or {}:
        if key not in LOG_OPTIONS:
            found.append(Violation("log_driver", f"HostConfig.LogConfig.Config {_quoted(str(key))}"))


def _security_opt(value, found):
    if value is None:
        return
    if not isinstance(value, list):
        found.append(Violation("malformed", "HostConfig.SecurityOpt is not a list"))
        return
    for entry in value:
        if entry not in TIGHTENING:
            shown = _quoted(entry) if isinstance(entry, str) and len(entry) <= 80 else "(custom profile)"
            found.append(Violation("security_opt", f"HostConfig.SecurityOpt {shown}"))


def _networking(value, project_id, project_networks, admin, found):
    networking = _fields("NetworkingConfig", value, NETWORKING, found)
    if not networking:
        return
    endpoints = networking.get("EndpointsConfig")
    if endpoints is None:
        return
    if not isinstance(endpoints, dict):
        found.append(Violation("malformed", "NetworkingConfig.EndpointsConfig is not an object"))
        return
    for network, settings in endpoints.items():
        where = f"NetworkingConfig.EndpointsConfig[{_quoted(network)}]"
        settings = _fields(where, settings, ENDPOINT, found)
        if admin:
            continue
        if network not in BUILTIN_NETWORKS and network not in project_networks \
                and not _project_network(project_id, network):
            found.append(Violation("network", f"{where} is not the project's network"))
        for field, setting in (settings or {}).items():
            if field not in ENDPOINT_FREE and setting is not None:
                found.append(Violation("network", f"{where}.{field}"))


def create_violations(config, project_id, admin=False, project_containers=frozenset(),
                      project_networks=frozenset()):
    """
    What in ``config`` (the body of the engine's container create) the
    container of ``project_id`` may not have.  ``project_containers``: the
    ``joined_containers`` that are the project's, on this engine;
    ``project_networks``: the ``network_refs`` that are.
    """
    found = []
    top = _fields("config", config, TOP, found)
    if top is None:
        return found
    host = _fields("HostConfig", top.get("HostConfig"), HOST, found)
    if host is None:
        return found
    _log_config(host.get("LogConfig"), found)
    _networking(top.get("NetworkingConfig"), project_id, project_networks, admin, found)
    _mounts(host.get("Mounts"), project_id, admin, found)
    if admin:
        return found
    for field, rule in HOST_ESCAPES.items():
        if _is_set(host.get(field)):
            found.append(Violation(rule, f"HostConfig.{field}"))
    for field in sorted(HOST_ADMIN):
        value = host.get(field)
        if _is_set(value) or (field in _EMPTY_IS_SET and value is not None):
            found.append(Violation("host_option", f"HostConfig.{field}"))
    _binds(host.get("Binds"), project_id, found)
    _security_opt(host.get("SecurityOpt"), found)
    _namespaces(host, project_id, project_containers, project_networks, found)
    if host.get("VolumeDriver") not in (None, "", "local"):
        found.append(Violation("volume_driver", f"HostConfig.VolumeDriver {_quoted(str(host['VolumeDriver']))}"))
    if host.get("Runtime") is not None and host["Runtime"] not in RUNTIMES:
        found.append(Violation("runtime", f"HostConfig.Runtime {_quoted(str(host['Runtime']))}"))
    return found


# -- update, exec, network connect ------------------------------------------

#: What the agent lets an update change: resources and the restart policy.
UPDATE = frozenset({
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
    "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "RestartPolicy",
})


def update_violations(update):
    """
    What in an update body (Docker's ``POST /containers/{id}/update``) is
    not a resource limit or restart policy: refused for everyone.
    """
    found = []
    fields = _fields("update", update, UPDATE, found)
    if fields:
        _fields("update.RestartPolicy", fields.get("RestartPolicy"), {"Name", "MaximumRetryCount"}, found)
        for field, value in fields.items():
            if field not in ("RestartPolicy", "CpusetCpus", "CpusetMems") and value is not None \
                    and (isinstance(value, bool) or not isinstance(value, int)):
                found.append(Violation("malformed", f"update.{field} is not an integer"))
    return found


#: The keys of an exec spec (csvc's own, read by the agent as they are).
EXEC = frozenset({"command", "tty", "interactive", "environment", "workdir", "user", "privileged", "admin"})


def exec_violations(spec):
    """
    What in an exec spec the agent will not run: a privileged exec (unless
    the spec is an admin's), a key it does not know.  Any user is fine.
    """
    if not isinstance(spec, dict):
        return [Violation("malformed", "exec spec is not an object")]
    found = [Violation("unknown_key", f"exec.{_quoted(str(key))}") for key in spec if key not in EXEC]
    if spec.get("privileged") and spec.get("admin") is not True:
        found.append(Violation("privileged", "exec.privileged"))
    return found


def connect_violations(network, project_id):
    """
    A container of ``project_id`` may be connected to its project's networks
    only (the engine's own are where it was created, never connected to).
    """
    if _project_network(project_id, network):
        return []
    return [Violation("network", f"network {_quoted(str(network))} is not the project's")]
