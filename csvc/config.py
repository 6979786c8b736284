"""
Settings of the control plane and ``csvc-manage``: command line over config
file (TOML, the same names as the options) over defaults.
"""

import os
import tomllib

from csvc import fastpath
from csvc.compute.defaults import Confinement
from csvc.compute.images import PublicImages
from csvc.notify.destinations import parse_networks
from csvc.providers.netns import parse_network

DEFAULTS = {
    "data-dir": "./var",
    "database": None,  # SQLite in the data dir
    # where container output goes: "files" (append-only files under
    # <data-dir>/output, positions in the database) or "db" (rows in the
    # database, for control planes that share no disk)
    "output-store": "files",
    # MiB of each container's newest output left in the page cache once
    # written to its file (older pages are dropped); -1 = leave it all to
    # the kernel
    "output-cache": 32,
    # MiB of output each container keeps: past it, its oldest output is
    # dropped (whole chunks) and logs start with a marker saying how much;
    # -1 = unlimited
    "output-retention-mib": 1024,
    "api": "tcp:8780:interface=127.0.0.1",
    "agents": "tcp:8781:interface=127.0.0.1",
    # a csvc-manage tls directory: the agent port speaks TLS, agents present
    # a client certificate of its CA; None = as the agents endpoint says
    "agents-tls-dir": None,
    "provider": "local",
    "instances": 1,
    "instance-capacity": 10,
    # each local agent in its own network namespace on this IPv4 network
    # (the service at its first address, over a bridge); None = off
    "instance-netns": None,
    # each local instance's memory (MiB) and cores; None = this machine's
    "instance-memory": None,
    "instance-cpus": None,
    # seconds an instance created for a project may stay empty before it is removed
    "instance-grace": 300.0,
    # seconds a create waits for the agent of an instance created for it
    "instance-wait": 60.0,
    # seconds before the local provider restarts an agent that died
    "agent-restart-delay": 1.0,
    "heartbeat-interval": 5.0,
    # engine containers made for an instance that the store has no row of,
    # found when its agent registers: "log" them, or "remove" them
    "orphan-action": "log",
    # attach relay: bytes per second, None = off
    "relay-rate": None,
    "session-rate": None,
    "allowed-origins": "",
    # seconds without traffic either way before an attach is closed; 0 = never
    "attach-idle-timeout": 3600,
    # authentication: "token" (csvc-manage token create) or "keystone"
    "auth": "token",
    "keystone-url": None,
    "keystone-username": None,
    "keystone-password": None,
    "keystone-project": None,
    "keystone-user-domain": "Default",
    "keystone-project-domain": "Default",
    "auth-cache-ttl": 60.0,
    # the project (id, or name in keystone-admin-project-domain) where a
    # Keystone admin role makes an admin; None = only system-scoped admins
    "keystone-admin-project": None,
    "keystone-admin-project-domain": "Default",
    # Keystone validations at once, and waiting for one (past it: 503)
    "keystone-validations": 4,
    "keystone-validation-queue": 64,
    # MiB a Docker archive upload (PUT /containers/{id}/archive) may carry;
    # every other request body is refused past 1 MiB
    "api-max-upload": 1024,
    # private internals of Twisted and autobahn for speed (csvc.fastpath):
    # on, off, or auto (on with the releases it was tested with); None =
    # $CSVC_FAST_PATH, else auto
    "fast-path": None,
    # seconds a new agent connection has to register before it is dropped
    "agent-register-timeout": 10.0,
    # each project's limits unless set through /v1/quotas; -1 = unlimited
    "quota-containers": 100,
    "quota-memory": 65536,  # MiB
    "quota-cpu": 64,
    "quota-attach-sessions": 50,
    "quota-networks": 8,
    "quota-output": 10240,  # MiB of output a project's containers keep together
    # notifications (csvc.notify): the JSON-lines log, None = <data-dir>/
    # notifications.jsonl, "off" = none; compute.container.exists every so
    # many seconds, 0 = never; webhook delivery
    "notifications-log": None,
    "notifications-exists-interval": 3600.0,
    "notifications-webhook-attempts": 5,
    "notifications-webhook-timeout": 10.0,
    "notifications-webhook-queue": 1000,
    # internal networks webhooks may go to after all (CIDRs, comma-separated
    # or a list): none by default, so no loopback, link-local, private...
    "webhook-allow-internal": "",
    # the longest grace (seconds) a stop or restart gives before the kill; a
    # tenant's longer t is clamped to it
    "stop-timeout-max": 600,
    # MiB a non-interactive exec's answer collects (past it a 413)
    "exec-output-max": 1,
    # safe defaults of every container (csvc.compute.defaults): a member's
    # pids limit at most this (0: none), MiB of memory for a container made
    # without a limit (0: none), NET_RAW dropped, no-new-privileges
    "default-pids-limit": 4096,
    "default-memory": 512,
    "drop-net-raw": "on",
    "no-new-privileges": "on",
    # internal networks (CIDRs) image pulls may reach after all: none by
    # default, so no registry on loopback, link-local, private...
    "registry-allow-private": "",
    # images every project may use besides its own (csvc.compute.images):
    # references and prefixes ending in *, comma-separated; "" = the images
    # no project pulled through csvc (the operator's)
    "public-images": "",
    # provider "nova" (csvc.providers.nova): a clouds.yaml cloud, or the
    # Keystone credentials; what servers are made of; the agents' endpoint
    # as the servers reach it; seconds to wait for ACTIVE or for a deletion
    "nova-cloud": None,
    "nova-auth-url": None,
    "nova-username": None,
    "nova-password": None,
    "nova-project": None,
    "nova-user-domain": "Default",
    "nova-project-domain": "Default",
    "nova-flavor": None,
    "nova-image": None,
    "nova-network": None,
    "nova-key": None,
    "nova-agent-connect": None,
    "nova-agent-package": "csvc",
    "nova-timeout": 300.0,
}

#: quota setting -> the resource it limits
QUOTAS = {
    "quota-containers": "containers",
    "quota-memory": "memory",
    "quota-cpu": "cpu",
    "quota-attach-sessions": "attach_sessions",
    "quota-networks": "networks",
    "quota-output": "output",
}

INTEGERS = {"instances", "instance-capacity", "output-cache", "output-retention-mib", "stop-timeout-max",
            "exec-output-max", "default-pids-limit", "default-memory", *QUOTAS}
#: on/off settings
SWITCHES = ("drop-net-raw", "no-new-privileges")
FLOATS = {"heartbeat-interval", "auth-cache-ttl", "instance-grace", "instance-wait", "agent-restart-delay",
          "nova-timeout"}
# The front door: Keystone's validations, request bodies, agent registration.
INTEGERS |= {"keystone-validations", "keystone-validation-queue", "api-max-upload"}
FLOATS |= {"agent-register-timeout"}
AUTH_MODES = ("token", "keystone")
KEYSTONE_REQUIRED = ("keystone-url", "keystone-username", "keystone-password", "keystone-project")
OUTPUT_STORES = ("files", "db")
ORPHAN_ACTIONS = ("log", "remove")
PROVIDERS = ("local", "static", "nova")
NOVA_AUTH = ("nova-auth-url", "nova-username", "nova-password", "nova-project")
NOVA_REQUIRED = ("nova-flavor", "nova-image", "nova-network", "nova-agent-connect")


class ConfigError(ValueError):
    pass


def load_config_file(path):
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Accept both top-level keys and a [csvc] table.
    table = document.get("csvc", document)
    unknown = sorted(set(table) - set(DEFAULTS) - {"csvc"})
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return {k: v for k, v in table.items() if k in DEFAULTS}


def resolve(command_line, config_path=None):
    """
    The effective settings: values given on the command line (not None) win
    over the config file, which wins over ``DEFAULTS``.
    """
    settings = dict(DEFAULTS)
    if config_path:
        settings.update(load_config_file(config_path))
    settings.update({k: v for k, v in command_line.items() if v is not None and k in DEFAULTS})
    for key in INTEGERS:
        try:
            settings[key] = int(settings[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, not {settings[key]!r}") from None
    for key in FLOATS:
        try:
            settings[key] = float(settings[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, not {settings[key]!r}") from None
    try:
        settings["attach-idle-timeout"] = float(settings["attach-idle-timeout"])
    except (TypeError, ValueError):
        raise ConfigError("attach-idle-timeout must be a number of seconds") from None
    if settings["attach-idle-timeout"] < 0:
        raise ConfigError("attach-idle-timeout must not be negative")
    for key in ("relay-rate", "session-rate"):
        if settings[key] is not None:
            try:
                settings[key] = int(settings[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be a whole number of bytes per second") from None
            if settings[key] < 1:
                raise ConfigError(f"{key} must be at least 1 byte per second")
    origins = settings["allowed-origins"]
    if isinstance(origins, str):
        origins = [o.strip() for o in origins.split(",") if o.strip()]
    settings["allowed-origins"] = tuple(origins)
    if settings["output-store"] not in OUTPUT_STORES:
        raise ConfigError(
            f"output-store must be one of {', '.join(OUTPUT_STORES)}, not {settings['output-store']!r}"
        )
    if settings["output-cache"] < -1:
        raise ConfigError(f"output-cache must be MiB (0 or more) or -1 (no limit), not {settings['output-cache']}")
    if settings["output-retention-mib"] < -1:
        raise ConfigError(
            f"output-retention-mib must be MiB (0 or more) or -1 (unlimited), not {settings['output-retention-mib']}"
        )
    if settings["orphan-action"] not in ORPHAN_ACTIONS:
        raise ConfigError(
            f"orphan-action must be one of {', '.join(ORPHAN_ACTIONS)}, not {settings['orphan-action']!r}"
        )
    if settings["provider"] not in PROVIDERS:
        raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}, not {settings['provider']!r}")
    if settings["provider"] == "nova":
        _check_nova(settings)
    settings["fast-path"] = settings["fast-path"] or fastpath.default_mode()
    if settings["fast-path"] not in fastpath.MODES:
        raise ConfigError(f"fast-path must be one of {', '.join(fastpath.MODES)}, not {settings['fast-path']!r}")
    if settings["auth"] not in AUTH_MODES:
        raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}, not {settings['auth']!r}")
    if settings["auth"] == "keystone":
        missing = [key for key in KEYSTONE_REQUIRED if not settings[key]]
        if missing:
            raise ConfigError(f"auth keystone needs {', '.join(missing)}")
    if settings["auth-cache-ttl"] < 0:
        raise ConfigError("auth-cache-ttl must not be negative")
    for key, minimum in (("keystone-validations", 1), ("keystone-validation-queue", 0), ("api-max-upload", 1)):
        if settings[key] < minimum:
            raise ConfigError(f"{key} must be at least {minimum}")
    if settings["agent-register-timeout"] <= 0:
        raise ConfigError("agent-register-timeout must be more than 0 seconds")
    if settings["instance-capacity"] < 1:
        raise ConfigError("instance-capacity must be at least 1")
    if settings["instance-netns"]:
        try:
            settings["instance-netns"] = parse_network(settings["instance-netns"])
        except ValueError as exc:
            raise ConfigError(f"instance-netns: {exc}") from None
    else:
        settings["instance-netns"] = None
    for key, kind, minimum in (("instance-memory", int, 1), ("instance-cpus", float, 0.001)):
        if settings[key] is None or settings[key] == "":
            settings[key] = None
            continue
        try:
            settings[key] = kind(settings[key])
        except (TypeError, ValueError):
            unit = "a whole number of MiB" if kind is int else "a number of cores"
            raise ConfigError(f"{key} must be {unit}, not {settings[key]!r}") from None
        if settings[key] < minimum:
            raise ConfigError(f"{key} must be more than 0")
    if settings["instances"] < 0:
        raise ConfigError("instances must not be negative")
    for key in ("instance-grace", "instance-wait", "agent-restart-delay"):
        if settings[key] < 0:
            raise ConfigError(f"{key} must not be negative")
    for key in QUOTAS:
        if settings[key] < -1:
            raise ConfigError(f"{key} must be at least 0, or -1 for unlimited")
    _resolve_notifications(settings)
    if not settings["database"]:
        data_dir = os.path.abspath(settings["data-dir"])
        settings["database"] = f"sqlite:///{os.path.join(data_dir, 'csvc.sqlite')}"
    return settings


def _check_nova(settings):
    missing = [key for key in NOVA_REQUIRED if not settings[key]]
    if not settings["nova-cloud"]:
        missing += [key for key in NOVA_AUTH if not settings[key]]
    if missing:
        raise ConfigError(f"provider nova needs {', '.join(missing)} (or nova-cloud for the credentials)")
    if settings["nova-timeout"] <= 0:
        raise ConfigError("nova-timeout must be more than 0 seconds")


def _resolve_notifications(settings):
    for key, kind, minimum in (
        ("notifications-exists-interval", float, 0),
        ("notifications-webhook-attempts", int, 1),
        ("notifications-webhook-timeout", float, 0.001),
        ("notifications-webhook-queue", int, 1),
    ):
        try:
            settings[key] = kind(settings[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, not {settings[key]!r}") from None
        if settings[key] < minimum:
            raise ConfigError(f"{key} must be at least {minimum}")
    try:
        settings["webhook-allow-internal"] = parse_networks(settings["webhook-allow-internal"])
    except ValueError as exc:
        raise ConfigError(f"webhook-allow-internal: {exc}") from None
    try:
        settings["registry-allow-private"] = parse_networks(settings["registry-allow-private"])
    except ValueError as exc:
        raise ConfigError(f"registry-allow-private: {exc}") from None
    try:
        settings["public-images"] = PublicImages.parse(settings["public-images"]).patterns
    except ValueError as exc:
        raise ConfigError(f"public-images: {exc}") from None
    for key in ("stop-timeout-max", "exec-output-max"):
        if settings[key] < 1:
            raise ConfigError(f"{key} must be at least 1")
    for key in ("default-pids-limit", "default-memory"):
        if settings[key] < 0:
            raise ConfigError(f"{key} must be 0 (none) or more")
    for key in SWITCHES:
        value = settings[key]
        if isinstance(value, bool):
            value = "on" if value else "off"
        if str(value).lower() not in ("on", "off"):
            raise ConfigError(f"{key} must be on or off, not {value!r}")
        settings[key] = str(value).lower()
    log = settings["notifications-log"]
    if log is None or log == "":
        log = os.path.join(os.path.abspath(settings["data-dir"]), "notifications.jsonl")
    elif str(log).lower() in ("off", "none"):
        log = None
    settings["notifications-log"] = log


def confinement(settings):
    """
    The safe defaults of every container (``csvc.compute.defaults``).
    """
    return Confinement(pids_limit=settings["default-pids-limit"], memory_mib=settings["default-memory"],
                       drop_net_raw=settings["drop-net-raw"] == "on",
                       no_new_privileges=settings["no-new-privileges"] == "on")


def quota_defaults(settings):
    """
    The default limits of every project, by resource.
    """
    return {resource: settings.get(key, DEFAULTS[key]) for key, resource in QUOTAS.items()}
