"""
Request bodies and query values, checked before anything is stored.
"""

import re

import jsonschema

from csvc.notify import events as _notify_events

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
        _no_nul(document, "")
        return
    error = errors[0]
    if error.validator == "additionalProperties" and not error.absolute_path:
        unknown = sorted(set(document) - set(schema["properties"]))
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    if error.validator == "pattern":
        raise BadRequest(f"{_where(error)}: {error.instance!r} is not valid (must match {error.validator_value})")
    raise BadRequest(f"{_where(error)}: {error.message}")


def _no_nul(value, path):
    """
    Raise ``BadRequest`` for a NUL character in any string or key: nothing
    on an instance takes one (runc refuses an environment or a user with
    one when the container starts).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"field '{path}': must not contain a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                raise BadRequest(f"field '{where[:120]}': a key must not contain a NUL character")
            _no_nul(item, where[:120])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{path}.{i}")


def _bool(default):
    return {"type": "boolean", "default": default}


_TIMEOUT = {
    "type": "integer",
    "minimum": 0,
    "maximum": 3600,
    "default": 10,
    "description": "seconds to wait for the process to exit before it is killed",
}

#: The query parameters of each native route, keyed by the handler's name in
#: ``NativeAPI``; each a JSON Schema of its value.  ``csvc.api.native.endpoint``
#: refuses any other parameter (400 naming it) and ``csvc.api.openapi``
#: documents these.  A route not listed takes none.
QUERY = {
    "list_containers": {"all_projects": _bool(False)},
    "list_subscriptions": {"all_projects": _bool(False)},
    "delete_subscription": {"all_projects": _bool(False)},
    "show_container": {"all_projects": _bool(False)},
    "delete_container": {"force": _bool(False), "all_projects": _bool(False)},
    "stop_container": {"timeout": _TIMEOUT},
    "restart_container": {"timeout": _TIMEOUT},
    "kill_container": {
        "signal": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "default": "SIGKILL",
            "description": "a signal name (SIGTERM, TERM) or number (1-64)",
        }
    },
    "container_logs": {
        "stdout": _bool(True),
        "stderr": _bool(True),
        "since": {
            "type": "integer",
            "minimum": 0,
            "maximum": 2**53,
            "default": 0,
            "description": "only chunks after this sequence number",
        },
        "tail": {
            "anyOf": [{"type": "string", "enum": ["all"]}, {"type": "integer", "minimum": 0, "maximum": 2**53}],
            "default": "all",
            "description": "'all', or how many of the last lines",
        },
        "follow": _bool(False),
    },
    "attach_container": {
        "stdin": _bool(False),
        "stdout": _bool(True),
        "stderr": _bool(True),
        "logs": _bool(False),
    },
    "delete_instance": {"force": _bool(False)},
}


def _query_value(text, schema):
    """
    A query value as the JSON value its schema expects: a boolean or an
    integer when it reads as one, else the text itself.
    """
    branches = schema.get("anyOf", [schema])
    types = {b.get("type") for b in branches}
    lowered = text.strip().lower()
    if "boolean" in types and lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    if "integer" in types and re.fullmatch(r"-?[0-9]{1,20}", text.strip()):
        return int(text.strip())
    return text


def read_query(request, parameters):
    """
    The request's query as a dict of typed values (defaults filled in),
    checked against ``parameters`` (a ``QUERY`` entry): unknown or repeated
    parameters, values of the wrong type and values out of bounds are a
    ``BadRequest`` naming the parameter and the rule.
    """
    given = {}
    for raw, values in request.args.items():
        given[raw.decode("utf-8", "replace")] = values
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        allowed = ", ".join(sorted(parameters)) or "none"
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)} (this route takes: {allowed})")
    query = {name: schema.get("default") for name, schema in parameters.items()}
    for name, values in given.items():
        if len(values) > 1:
            raise BadRequest(f"query parameter '{name}': given {len(values)} times; give it at most once")
        text = values[0].decode("utf-8", "replace")
        schema = parameters[name]
        value = _query_value(text, schema)
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            if "anyOf" in schema or error.validator == "type":
                rule = schema["description"] if "anyOf" in schema else f"must be {_describe(schema)}"
                raise BadRequest(f"query parameter '{name}': {text!r} is not valid ({rule})")
            rule = _RULES.get(error.validator, "{message}").format(value=error.validator_value, message=error.message)
            raise BadRequest(f"query parameter '{name}': {rule}")
        query[name] = value
    return query


_RULES = {
    "minimum": "must be at least {value}",
    "maximum": "must be at most {value}",
    "minLength": "must be at least {value} character(s) long",
    "maxLength": "must be at most {value} characters long",
}


def _describe(schema):
    if schema.get("type") == "boolean":
        return "a boolean: true or false"
    if schema.get("type") == "integer":
        return "an integer"
    return "a string"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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

#: ``POST /v1/instances`` (admin): an existing host joins the map.
INSTANCE_REGISTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "capacity": {"type": "integer", "minimum": 1, "maximum": 100000},
        "shared": {"type": "boolean"},
        "project_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}

QUOTA_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "containers": _LIMIT,
        "memory": _LIMIT,
        "cpu": _LIMIT,
        "attach_sessions": _LIMIT,
        "networks": _LIMIT,
        "output": _LIMIT,
    },
}

#: ``POST /v1/subscriptions``: a webhook for some of the project's events;
#: each event type a known one (``csvc.notify.events``) or a ``prefix.*``
#: wildcard of them (``compute.container.*``), or ``*``.
SUBSCRIPTION_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "event_types"],
    "properties": {
        "url": {"type": "string", "maxLength": 2048, "pattern": r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$"},
        "event_types": {
            "type": "array",
            "minItems": 1,
            "maxItems": 32,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(_notify_events.SUBSCRIBABLE)},
        },
    },
}
