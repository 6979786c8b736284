"""
Settings of the control plane and ``csvc-manage``: command line over config
file (TOML, the same names as the options) over defaults.
"""

import os
import tomllib

DEFAULTS = {
    "data-dir": "./var",
    "database": None,  # SQLite in the data dir
    "api": "tcp:8780:interface=127.0.0.1",
    "agents": "tcp:8781:interface=127.0.0.1",
    "provider": "local",
    "instances": 1,
    "instance-capacity": 10,
    "heartbeat-interval": 5.0,
    # attach relay: bytes per second, None = off
    "relay-rate": None,
    "session-rate": None,
    "allowed-origins": "",
}

INTEGERS = {"instances", "instance-capacity"}
FLOATS = {"heartbeat-interval"}
PROVIDERS = ("local", "static")


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
    if settings["provider"] not in PROVIDERS:
        raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}, not {settings['provider']!r}")
    if settings["instance-capacity"] < 1:
        raise ConfigError("instance-capacity must be at least 1")
    if settings["instances"] < 0:
        raise ConfigError("instances must not be negative")
    if not settings["database"]:
        data_dir = os.path.abspath(settings["data-dir"])
        settings["database"] = f"sqlite:///{os.path.join(data_dir, 'csvc.sqlite')}"
    return settings
