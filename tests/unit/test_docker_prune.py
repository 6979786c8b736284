"""
csvc/api/docker/filters.py: the filters of ``docker container prune`` (``until``,
``label``, ``label!``), ``docker volume prune`` (``all`` too) and ``docker
network ls`` as Docker reads them.
"""

from datetime import datetime, timezone

import pytest

from csvc.api.docker.filters import (
    labels_match, network_matches, parse_until, prune_filters, prune_filters_any, unix_rfc3339, volume_prune_filters,
)
from csvc.api.schemas import BadRequest

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("1.5h", NOW - 5400),
        ("90s", NOW - 90),
        ("2026-11-26T09:00:00Z", datetime(2026, 11, 26, 9, tzinfo=timezone.utc).timestamp()),
        ("2026-11-26T10:00:00+01:00", datetime(2026, 11, 26, 9, tzinfo=timezone.utc).timestamp()),
        ("2026-11-26T09:00:00", datetime(2026, 11, 26, 9, tzinfo=timezone.utc).timestamp()),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=timezone.utc).timestamp()),
    ],
)
def test_until_reads_unix_times_rfc3339_and_durations(value, expected):
    assert parse_until(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "-5m", "10x", "", "2026-13-01"])
def test_until_names_what_it_cannot_read(value):
    with pytest.raises(BadRequest) as bad:
        parse_until(value, now=NOW)
    assert repr(value) in str(bad.value)


def test_prune_filters_in_both_encodings():
    until, labels, not_labels = prune_filters('{"label": {"a=b": true, "c": false}, "label!": ["d"]}')
    assert (until, labels, not_labels) == (None, ["a=b"], ["d"])
    until, _labels, _not = prune_filters('{"until": ["1700000000"]}')
    assert until == 1_700_000_000.0
    assert prune_filters("") == (None, [], [])


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "is not JSON"),
        ("[]", "must be a JSON object"),
        ('{"status": ["exited"]}', "invalid filter 'status'"),
        ('{"until": ["1", "2"]}', "only one value"),
        ('{"label": "a"}', "filter label: must be a list of strings"),
        ('{"label": [1]}', "filter label: must be a list of strings"),
    ],
)
def test_prune_filters_refuse_what_docker_would_not_take(text, message):
    with pytest.raises(BadRequest) as bad:
        prune_filters(text)
    assert message in str(bad.value)


def test_labels_match_as_docker_does():
    labels = {"a": "b", "keep": "yes"}
    assert labels_match(labels, [], [])
    assert labels_match(labels, ["a"], [])
    assert labels_match(labels, ["a=b", "keep"], [])
    assert not labels_match(labels, ["a=c"], [])
    assert not labels_match(labels, ["missing"], [])
    # label!: left out when every one of them matches.
    assert not labels_match(labels, [], ["keep"])
    assert labels_match(labels, [], ["keep", "missing"])
    assert labels_match(labels, [], ["keep=no"])


def test_volume_prune_filters():
    assert volume_prune_filters("") == (False, [], [])
    assert volume_prune_filters('{"all": ["true"], "label!": {"keep": true}}') == (True, [], ["keep"])
    assert volume_prune_filters('{"all": ["0"], "label": ["a=b"]}') == (False, ["a=b"], [])
    refused = [('{"all": ["maybe"]}', "filter all: ['maybe']"), ('{"dangling": ["true"]}', "invalid filter 'dangling'")]
    for text, message in refused:
        with pytest.raises(BadRequest) as bad:
            volume_prune_filters(text)
        assert message in str(bad.value)


def test_prunes_that_remove_nothing_still_read_their_filters():
    prune_filters_any('{"dangling": {"true": true}, "until": ["10m"]}')
    with pytest.raises(BadRequest) as bad:
        prune_filters_any('{"until": ["soon"]}')
    assert "'soon'" in str(bad.value)
    with pytest.raises(BadRequest):
        prune_filters_any("{")


def test_network_created_times_as_docker_writes_them():
    assert unix_rfc3339("2026-11-27T05:29:25.953759854Z") == pytest.approx(1795757365.953759)
    assert unix_rfc3339("2026-11-27T06:29:25+01:00") == 1795757365
    assert unix_rfc3339("") == 0 and unix_rfc3339("yesterday") == 0


def test_network_list_filters():
    network = {"Name": "backend", "Id": "abc123", "Driver": "bridge", "Scope": "local", "Labels": {"tier": "data"}}
    assert network_matches(network, {})
    assert network_matches(network, {"name": ["nope", "back"], "id": ["abc"], "type": ["custom"]})
    assert not network_matches(network, {"type": ["builtin"]})
    assert network_matches(network, {"label": ["tier=data", "tier"]})
    assert not network_matches(network, {"label": ["tier=data", "zone"]})
    assert not network_matches(dict(network, Name="bridge"), {"type": ["custom"]})
