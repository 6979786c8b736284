"""
Request body validation (csvc.api.schemas).
"""

import pytest

from csvc.api.schemas import CONTAINER_CREATE, BadRequest, validate


@pytest.mark.parametrize(
    "document",
    [
        {"image": "busybox"},
        {"image": "busybox:1.36"},
        {"image": "library/busybox:latest"},
        {"image": "registry.example.com:5000/team/app_x:v1.2-rc"},
        {"image": "alpine@sha256:" + "a" * 64},
        {
            "image": "busybox",
            "command": ["sh", "-c", "echo hi"],
            "environment": {"A": "1", "EMPTY": ""},
            "name": "web-1",
            "workdir": "/srv",
            "labels": {"team": "x"},
            "tty": True,
            "interactive": False,
            "memory": 64,
            "cpu": 0.5,
            "instance": "i-1",
            "auto_remove": True,
            "run": False,
        },
        {"image": "busybox", "environment": {f"V{i}": "x" for i in range(256)}},
    ],
)
def test_valid_documents_pass(document):
    assert validate(document, CONTAINER_CREATE) is None


def refusal(document):
    with pytest.raises(BadRequest) as caught:
        validate(document, CONTAINER_CREATE)
    return str(caught.value)


def test_unknown_field():
    message = refusal({"image": "busybox", "colour": "blue", "aardvark": 1})
    assert "unknown field" in message
    assert "aardvark, colour" in message


def test_missing_image():
    message = refusal({"command": ["ls"]})
    assert "'image'" in message
    assert "required" in message


@pytest.mark.parametrize("image", ["UPPER", "a b", "busybox:", ":tag", "busy//box", "-x", "a@sha256:xyz"])
def test_bad_image_reference(image):
    message = refusal({"image": image})
    assert "field 'image'" in message
    assert repr(image) in message


def test_empty_image():
    assert "field 'image'" in refusal({"image": ""})


def test_image_not_a_string():
    assert "field 'image'" in refusal({"image": 5})


def test_command_not_a_list():
    message = refusal({"image": "busybox", "command": "ls -l"})
    assert "field 'command'" in message


def test_command_item_not_a_string():
    message = refusal({"image": "busybox", "command": ["ls", 3]})
    assert "field 'command.1'" in message


def test_environment_value_not_a_string():
    message = refusal({"image": "busybox", "environment": {"A": "1", "PORT": 80}})
    assert "field 'environment.PORT'" in message


def test_environment_name_with_equals():
    message = refusal({"image": "busybox", "environment": {"A=B": "1"}})
    assert "environment" in message


def test_too_many_environment_entries():
    message = refusal({"image": "busybox", "environment": {f"V{i}": "x" for i in range(257)}})
    assert "field 'environment'" in message


@pytest.mark.parametrize("memory", [-1, 0, 5])
def test_memory_too_small(memory):
    assert "field 'memory'" in refusal({"image": "busybox", "memory": memory})


def test_memory_not_an_integer():
    assert "field 'memory'" in refusal({"image": "busybox", "memory": 6.5})


def test_body_not_an_object():
    assert "the body" in refusal(["busybox"])


def test_relative_workdir():
    assert "field 'workdir'" in refusal({"image": "busybox", "workdir": "srv"})
