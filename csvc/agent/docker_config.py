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

from csvc.agent import wall
from csvc.wire.commands import InvalidSpec
from csvc.wire.naming import (  # noqa: F401 (the agent's code reads them here too)
    ANONYMOUS_VOLUME,
    BRIDGE_PREFIX,
    BUILTIN_NETWORKS,
    DEFAULT_MODES,
    anonymous_targets,
    anonymous_volume,
    bridge_name,
    default_network,
    engine_network,
    engine_volume,
    mounted_targets,
    network_driver_options,
    on_default_network,
    project_network,
    unscoped,
)
from csvc.wire.port_rules import PortRefused, check_publish_all, rebuild

#: Set by csvc itself; a client's value never replaces them.
_OWN_CONFIG = {"Image", "Labels", "HostConfig"}
_OWN_HOST = {"LogConfig", "AutoRemove"}


def client_options(spec):
    """
    ``(Config, HostConfig)``: the client's options of ``spec["docker_config"]``
    keyed as the engine reads them (``wall.canonical``), so that what csvc
    keeps, scopes or rebuilds (its labels, ``Binds``, ``PortBindings``...)
    is found however the keys are spelt.  InvalidSpec naming a field spelt
    twice.
    """
    options = spec.get("docker_config") or {}
    try:
        return (wall.canonical(options.get("Config") or {}, wall.CONFIG),
                wall.canonical(options.get("HostConfig") or {}, wall.HOST))
    except ValueError as exc:
        raise InvalidSpec(f"docker options: {exc}") from None


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
    client_config, client_host = client_options(spec)
    merged = dict(config)
    for field, value in client_config.items():
        if field not in _OWN_CONFIG:
            merged[field] = value
    host = dict(config.get("HostConfig") or {})
    for field, value in client_host.items():
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
