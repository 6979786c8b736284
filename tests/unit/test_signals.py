"""
Signal names the API accepts (csvc.compute.service.normalize_signal).
"""

import pytest

from csvc.compute.service import normalize_signal


@pytest.mark.parametrize(
    "given,expected",
    [
        ("TERM", "SIGTERM"),
        ("SIGTERM", "SIGTERM"),
        ("sigterm", "SIGTERM"),
        ("term", "SIGTERM"),
        (" KILL ", "SIGKILL"),
        ("SIGUSR1", "SIGUSR1"),
        ("9", "9"),
        ("1", "1"),
        ("64", "64"),
        (15, "15"),
    ],
)
def test_accepted(given, expected):
    assert normalize_signal(given) == expected


@pytest.mark.parametrize("given", ["0", "65", "NOPE", "SIGNOPE", "", "SIG", "-9", "1.5"])
def test_refused(given):
    with pytest.raises(ValueError):
        normalize_signal(given)
