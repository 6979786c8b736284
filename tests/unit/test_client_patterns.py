"""
Client patterns (Docker's ``name`` filter) run in linear time with RE2, on
bounded input; an invalid or oversized pattern is a 400 naming the filter.
"""

import pytest

from csvc.api import docker_events
from csvc.api.docker.filters import container_matches, list_filters
from csvc.api.schemas import BadRequest


def row(name):
    return {"name": name, "labels": {}, "status": "running", "uuid": "u" * 36, "engine_id": "e" * 64,
            "image": "busybox:latest"}


def test_catastrophic_pattern_answers_correctly_on_a_long_name():
    # With Python's backtracking re this takes 2^n steps; RE2 is linear.
    name = "a" * 5000 + "!"
    filters = list_filters('{"name": ["(a+)+$"]}')
    assert not container_matches(row(name), filters)
    assert container_matches(row("a" * 5000), filters)


def test_name_filter_keeps_dockers_semantics():
    filters = list_filters('{"name": ["^/web", "db$"]}')
    assert container_matches(row("web-1"), filters)
    assert container_matches(row("my-db"), filters)
    assert not container_matches(row("api"), filters)
    assert container_matches(row("x-web-y"), list_filters('{"name": ["web"]}'))
    assert container_matches(row("web-1"), list_filters('{"name": ["^web"]}'))
    assert not container_matches(row("web-1"), list_filters('{"name": ["^/web-1x"]}'))


@pytest.mark.parametrize("pattern, words", [
    ("(", "missing )"),
    ("(?<=a)b", "invalid perl operator"),
    ("a{2000}", "invalid repetition size"),
])
def test_invalid_pattern_is_a_400_naming_the_filter(pattern, words):
    with pytest.raises(BadRequest) as bad:
        list_filters('{"name": [%s]}' % __import__("json").dumps(pattern))
    assert "filter name" in str(bad.value) and words in str(bad.value)


def test_pattern_length_and_filter_values_are_bounded():
    with pytest.raises(BadRequest) as bad:
        docker_events.name_pattern("a" * (docker_events.MAX_PATTERN + 1))
    assert f"longer than {docker_events.MAX_PATTERN}" in str(bad.value)
    assert docker_events.name_pattern("a" * docker_events.MAX_PATTERN).search("a" * docker_events.MAX_PATTERN)
    many = '{"name": [%s]}' % ",".join(['"a"'] * (docker_events.MAX_FILTER_VALUES + 1))
    with pytest.raises(BadRequest) as bad:
        list_filters(many)
    assert f"more than {docker_events.MAX_FILTER_VALUES}" in str(bad.value)
    with pytest.raises(BadRequest) as bad:
        docker_events.parse_filters('{"image": ["%s"]}' % ("x" * (docker_events.MAX_FILTER_VALUE + 1)))
    assert "filter image" in str(bad.value)
