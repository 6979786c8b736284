"""
Request bodies and query values, checked before anything is stored.
"""

import re

import jsonschema

#: Docker's reference grammar, loosely: [host[:port]/]path[:tag][@digest]
IMAGE_PATTERN = (
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+:[a-f0-9]{32,})?$"
)
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$"
ENV_NAME_PATTERN = r"^[^=\x00]+$"

CONTAINER_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": IMAGE_PATTERN},
        "command": {
            "type": "array",
            "maxItems": 1024,
            "items": {"type": "string", "maxLength": 65536},
        },
        "environment": {
            "type": "object",
            "maxProperties": 256,
            "propertyNames": {"pattern": ENV_NAME_PATTERN, "maxLength": 1024},
            "additionalProperties": {"type": "string", "maxLength": 65536},
        },
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "workdir": {"type": "string", "pattern": "^/", "maxLength": 4096},
        "labels": {
            "type": "object",
            "maxProperties": 256,
            "propertyNames": {"minLength": 1, "maxLength": 1024},
            "additionalProperties": {"type": "string", "maxLength": 4096},
        },
        "tty": {"type": "boolean"},
        "interactive": {"type": "boolean"},
        "memory": {"type": "integer", "minimum": 6, "maximum": 1048576},
        "cpu": {"type": "number", "exclusiveMinimum": 0, "maximum": 1024},
        "instance": {"type": "string", "minLength": 1, "maxLength": 255},
        "auto_remove": {"type": "boolean"},
        "run": {"type": "boolean"},
    },
}


class BadRequest(Exception):
    pass


def _where(error):
    path = ".".join(str(p) for p in error.absolute_path)
    return f"field '{path}'" if path else "the body"


def validate(document, schema):
    """
    Raise ``BadRequest`` naming the first field that breaks the schema.
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    if error.validator == "additionalProperties" and not error.absolute_path:
        unknown = sorted(set(document) - set(schema["properties"]))
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    if error.validator == "pattern":
        raise BadRequest(f"{_where(error)}: {error.instance!r} is not valid (must match {error.validator_value})")
    raise BadRequest(f"{_where(error)}: {error.message}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def query_bool(request, name, default=False):
    values = request.args.get(name.encode())
    if not values:
        return default
    text = values[0].decode("utf-8", "replace").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"query parameter '{name}': {text!r} is not a boolean (use true or false)")


def query_int(request, name, default=None, minimum=None, maximum=None):
    values = request.args.get(name.encode())
    if not values:
        return default
    text = values[0].decode("utf-8", "replace").strip()
    if not re.fullmatch(r"-?[0-9]+", text):
        raise BadRequest(f"query parameter '{name}': {text!r} is not an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise BadRequest(f"query parameter '{name}': must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"query parameter '{name}': must be at most {maximum}")
    return value


def query_str(request, name, default=None):
    values = request.args.get(name.encode())
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


EXEC_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["command"],
    "properties": {
        "command": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1024,
            "items": {"type": "string", "maxLength": 65536},
        },
        "tty": {"type": "boolean"},
        "interactive": {"type": "boolean"},
        "environment": CONTAINER_CREATE["properties"]["environment"],
        "workdir": {"type": "string", "pattern": "^/", "maxLength": 4096},
        "user": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\x00:]+(:[^\x00:]+)?$"},
    },
}

#: A limit: a whole number, -1 for unlimited; null restores the default.
_LIMIT = {"type": ["integer", "null"], "minimum": -1}

QUOTA_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "containers": _LIMIT,
        "memory": _LIMIT,
        "cpu": _LIMIT,
        "attach_sessions": _LIMIT,
    },
}
