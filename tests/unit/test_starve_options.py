"""
The operator's bounds against starving tenants: read, checked, wired.
"""

import ipaddress

import pytest

from csvc import config


def test_defaults_and_given_values():
    settings = config.resolve({})
    assert (settings["stop-timeout-max"], settings["exec-output-max"], settings["registry-allow-private"]) == (
        600, 1, ())
    settings = config.resolve({"stop-timeout-max": "30", "exec-output-max": "4",
                               "registry-allow-private": "127.0.0.0/8, ::1"})
    assert settings["stop-timeout-max"] == 30 and settings["exec-output-max"] == 4
    assert settings["registry-allow-private"] == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize("given, words", [
    ({"stop-timeout-max": "0"}, "stop-timeout-max must be at least 1"),
    ({"stop-timeout-max": "ten"}, "stop-timeout-max must be an integer"),
    ({"exec-output-max": "0"}, "exec-output-max must be at least 1"),
    ({"registry-allow-private": "10.0.0.0/33"}, "registry-allow-private"),
])
def test_bad_values_are_refused(given, words):
    with pytest.raises(config.ConfigError) as bad:
        config.resolve(given)
    assert words in str(bad.value)
