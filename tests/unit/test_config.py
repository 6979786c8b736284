"""
Settings: command line over config file over defaults; bad values named.
"""

import pytest
from twisted.python import usage

from csvc import config
from csvc.agent import service as agent_service
from csvc.server import Options


def test_defaults(tmp_path):
    settings = config.resolve({"data-dir": str(tmp_path)})
    assert settings["api"] == "tcp:8780:interface=127.0.0.1"
    assert settings["agents"] == "tcp:8781:interface=127.0.0.1"
    assert settings["provider"] == "local"
    assert settings["instances"] == 1
    assert settings["instance-capacity"] == 10
    assert settings["database"] == f"sqlite:///{tmp_path}/csvc.sqlite"


def test_config_file_then_command_line(tmp_path):
    path = tmp_path / "csvc.toml"
    path.write_text(
        'data-dir = "/srv/csvc"\n'
        'api = "tcp:9000"\n'
        "instance-capacity = 3\n"
        'database = "postgresql://u:p@db/csvc"\n'
    )
    options = Options()
    options.parseOptions(["--config", str(path), "--api", "tcp:9100"])
    settings = options.settings
    assert settings["api"] == "tcp:9100"
    assert settings["data-dir"] == "/srv/csvc"
    assert settings["instance-capacity"] == 3
    assert settings["database"] == "postgresql://u:p@db/csvc"


def test_config_file_may_use_a_csvc_table(tmp_path):
    path = tmp_path / "csvc.toml"
    path.write_text('[csvc]\nprovider = "static"\n')
    assert config.resolve({}, str(path))["provider"] == "static"


@pytest.mark.parametrize(
    "text, message",
    [
        ("bogus = 1\n", "unknown setting(s) bogus"),
        ("instances = 'many'\n", "instances must be an integer"),
        ("provider = 'nova9'\n", "provider must be one of"),
        ("instance-capacity = 0\n", "instance-capacity must be at least 1"),
        ("orphan-action = 'delete'\n", "orphan-action must be one of log, remove, not 'delete'"),
        ("output-cache = -2\n", "output-cache must be MiB (0 or more) or -1 (no limit), not -2"),
        ("output-cache = '1G'\n", "output-cache must be an integer, not '1G'"),
        ("api = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_named(tmp_path, text, message):
    path = tmp_path / "csvc.toml"
    path.write_text(text)
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(["--config", str(path)])
    assert message in str(raised.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(["--config", str(tmp_path / "nope.toml")])
    assert "cannot read config file" in str(raised.value)


def test_agent_options(monkeypatch):
    monkeypatch.delenv("CSVC_ENROLL_TOKEN", raising=False)
    with pytest.raises(usage.UsageError) as raised:
        agent_service.Options().parseOptions([])
    assert "--enroll-token" in str(raised.value)
    options = agent_service.Options()
    options.parseOptions(["--enroll-token", "t", "--capacity", "4", "--connect", "tcp:10.0.0.1:8781"])
    assert options["capacity"] == 4
    with pytest.raises(usage.UsageError) as raised:
        agent_service.Options().parseOptions(["--enroll-token", "t", "--engine", "rkt"])
    assert "rkt" in str(raised.value)


def test_instance_life_cycle_settings():
    settings = config.resolve({"instance-grace": "2", "instance-wait": "30"})
    assert settings["instance-grace"] == 2.0 and settings["instance-wait"] == 30.0
    assert config.resolve({})["instance-grace"] == 300.0
    assert config.resolve({})["agent-restart-delay"] == 1.0
    with pytest.raises(config.ConfigError):
        config.resolve({"instance-grace": "-1"})


def test_instance_size_settings(tmp_path):
    assert (config.resolve({})["instance-memory"], config.resolve({})["instance-cpus"]) == (None, None)
    path = tmp_path / "csvc.toml"
    path.write_text('instance-memory = 2048\ninstance-cpus = 1.5\n')
    settings = config.resolve({}, str(path))
    assert (settings["instance-memory"], settings["instance-cpus"]) == (2048, 1.5)
    settings = config.resolve({"instance-memory": "512", "instance-cpus": "4"}, str(path))
    assert (settings["instance-memory"], settings["instance-cpus"]) == (512, 4.0)
    with pytest.raises(config.ConfigError, match="instance-memory must be a whole number of MiB, not '2G'"):
        config.resolve({"instance-memory": "2G"})
    with pytest.raises(config.ConfigError, match="instance-cpus must be more than 0"):
        config.resolve({"instance-cpus": "0"})


def test_a_local_instance_defaults_to_this_machines_size():
    from csvc.providers.local import LocalProvider, machine_size

    memory, cpus = machine_size()
    assert memory > 0 and cpus >= 1
    from twisted.internet.task import Clock

    provider = LocalProvider(None, None, 0, 10, Clock(), memory=None, cpus=2)
    assert (provider.memory, provider.cpus) == (memory, 2.0)


def test_webhook_allow_internal_setting(tmp_path):
    assert config.resolve({})["webhook-allow-internal"] == ()
    path = tmp_path / "csvc.toml"
    path.write_text('webhook-allow-internal = ["127.0.0.0/8", "::1/128"]\n')
    assert [str(n) for n in config.resolve({}, str(path))["webhook-allow-internal"]] == ["127.0.0.0/8", "::1/128"]
    settings = config.resolve({"webhook-allow-internal": "10.0.0.0/8, 192.168.0.0/16"}, str(path))
    assert [str(n) for n in settings["webhook-allow-internal"]] == ["10.0.0.0/8", "192.168.0.0/16"]
    with pytest.raises(config.ConfigError, match="webhook-allow-internal: 'intranet' is not an IP network"):
        config.resolve({"webhook-allow-internal": "intranet"})
