"""
The OpenAPI 3.1 document of the native API (``GET /v1/openapi.json``), built
from the schemas the API checks requests with (``csvc.api.schemas``) and one
table of operations: each route, its answers and what they carry.
"""

from copy import deepcopy

from csvc.api.schemas import INSTANCE_REGISTER
from csvc.api.schemas import CONTAINER_CREATE, EXEC_CREATE, NAME_PATTERN, QUERY, QUOTA_UPDATE, SUBSCRIPTION_CREATE
from csvc.compute.states import STATES
from csvc.store.quotas import RESOURCES

_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}

#: components/schemas: what the API answers (requests reuse ``schemas``)
SCHEMAS = {
    "ContainerCreate": CONTAINER_CREATE,
    "ExecCreate": EXEC_CREATE,
    "QuotaUpdate": QUOTA_UPDATE,
    "InstanceRegister": INSTANCE_REGISTER,
    "SubscriptionCreate": SUBSCRIPTION_CREATE,
    "Subscription": {
        "type": "object",
        "additionalProperties": False,
        "required": ["uuid", "project_id", "url", "event_types", "created_at"],
        "properties": {
            "uuid": {"type": "string"},
            "project_id": {"type": "string"},
            "url": {"type": "string"},
            "event_types": {"type": "array", "items": {"type": "string"}},
            "created_at": _TIME,
        },
    },
    "SubscriptionList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["subscriptions"],
        "properties": {"subscriptions": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}}},
    },
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "title", "message", "request_id"],
                "properties": {
                    "code": {"type": "integer", "minimum": 400, "maximum": 599},
                    "title": {"type": "string"},
                    "message": {"type": "string"},
                    "request_id": {"type": "string", "pattern": "^req-"},
                },
            }
        },
    },
    "Versions": {
        "type": "object",
        "required": ["versions"],
        "properties": {
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "status", "version", "links"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string"},
                        "version": {"type": "string"},
                        "links": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["rel", "href"],
                                "properties": {"rel": {"type": "string"}, "href": {"type": "string"}},
                            },
                        },
                    },
                },
            }
        },
    },
    "Container": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "uuid", "name", "project_id", "user_id", "image", "command", "environment", "workdir", "labels",
            "tty", "interactive", "memory", "cpu", "auto_remove", "status", "status_reason", "exit_code",
            "instance", "created_at", "started_at", "finished_at",
        ],
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "project_id": {"type": "string"},
            "user_id": {"type": ["string", "null"]},
            "image": {"type": "string"},
            "command": {"type": ["array", "null"], "items": {"type": "string"}},
            "environment": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            "workdir": {"type": ["string", "null"]},
            "labels": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            "tty": {"type": "boolean"},
            "interactive": {"type": "boolean"},
            "memory": {"type": ["integer", "null"], "description": "MiB"},
            "cpu": {"type": ["number", "null"]},
            "auto_remove": {"type": "boolean"},
            "status": {"type": "string", "enum": list(STATES)},
            "status_reason": {"type": ["string", "null"]},
            "exit_code": {"type": ["integer", "null"]},
            "instance": {"type": ["string", "null"], "description": "the instance it is placed on"},
            "created_at": _TIME,
            "started_at": _MAYBE_TIME,
            "finished_at": _MAYBE_TIME,
        },
    },
    "ContainerList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["containers"],
        "properties": {"containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}}},
    },
    "WaitResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["exit_code", "status", "status_reason"],
        "properties": {
            "exit_code": {"type": ["integer", "null"]},
            "status": {"type": "string", "enum": list(STATES)},
            "status_reason": {"type": ["string", "null"]},
        },
    },
    "AttachURL": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "expires_at"],
        "properties": {
            "url": {"type": "string", "pattern": "^wss?://", "description": "one-time; GET it with a WebSocket upgrade"},
            "expires_at": _TIME,
        },
    },
    "ExecResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["exec_id", "output", "exit_code"],
        "properties": {
            "exec_id": {"type": "string"},
            "output": {"type": "string", "description": "stdout and stderr in arrival order, as UTF-8"},
            "exit_code": {"type": ["integer", "null"]},
        },
    },
    "ExecSession": {
        "type": "object",
        "additionalProperties": False,
        "required": ["exec_id", "url", "expires_at"],
        "properties": {
            "exec_id": {"type": "string"},
            "url": {"type": "string", "pattern": "^wss?://"},
            "expires_at": _TIME,
        },
    },
    "Instance": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "uuid", "name", "provider", "status", "connected", "capacity", "memory", "cpus", "usage", "containers",
            "hostname", "engine", "shared", "created_at", "last_seen_at",
        ],
        "properties": {
            "uuid": {"type": "string"},
            "name": {"type": "string"},
            "provider": {"type": "string"},
            "status": {"type": "string"},
            "connected": {
                "type": "boolean",
                "description": "its agent is connected now (status is what the store last knew: after a restart "
                               "an instance is active before its agent registers again)",
            },
            "capacity": {"type": "integer", "description": "containers it may hold"},
            "memory": {"type": ["integer", "null"], "description": "its memory in MiB (null: not known, not limited)"},
            "cpus": {"type": ["number", "null"], "description": "its cores (null: not known, not limited)"},
            "usage": {
                "type": "object",
                "description": "what its containers use: how many it holds, how many are live, and the memory "
                               "(MiB) and cores the live ones asked for (a container without limits counts 0)",
                "required": ["containers", "live", "memory", "cpus"],
                "properties": {
                    "containers": {"type": "integer"},
                    "live": {"type": "integer"},
                    "memory": {"type": "integer"},
                    "cpus": {"type": "number"},
                },
            },
            "containers": {"type": "integer"},
            "hostname": {"type": ["string", "null"]},
            "engine": {"type": ["string", "null"]},
            "shared": {"type": "boolean"},
            "project_id": {"type": ["string", "null"], "description": "the project it was created for, if any"},
            "created_at": _TIME,
            "last_seen_at": _MAYBE_TIME,
        },
    },
    "InstanceDetail": {
        "allOf": [{"$ref": "#/components/schemas/Instance"}],
        "required": ["container_list"],
        "properties": {
            "container_list": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["uuid", "name", "project_id", "status", "status_reason"],
                    "properties": {
                        "uuid": {"type": "string"},
                        "name": {"type": "string"},
                        "project_id": {"type": "string"},
                        "status": {"type": "string"},
                        "status_reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
    "InstanceEnrolled": {
        "allOf": [{"$ref": "#/components/schemas/Instance"}],
        "required": ["enroll_token"],
        "properties": {"enroll_token": {"type": "string", "description": "what its agent presents; shown once"}},
    },
    "InstanceList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}},
    },
    "Quota": {
        "type": "object",
        "additionalProperties": False,
        "required": list(RESOURCES),
        "properties": {r: {"type": "integer", "minimum": -1, "description": "-1: unlimited"} for r in RESOURCES},
    },
    "QuotaUsage": {
        "type": "object",
        "additionalProperties": False,
        "required": list(RESOURCES),
        "properties": {
            r: {
                "type": "object",
                "additionalProperties": False,
                "required": ["limit", "in_use"],
                "properties": {
                    "limit": {"type": "integer", "minimum": -1},
                    # networks: null when no instance of the project is connected to count them
                    "in_use": {"type": ["number", "null"] if r == "networks" else "number", "minimum": 0},
                },
            }
            for r in RESOURCES
        },
    },
}

#: Why each error status can happen.
ERRORS = {
    400: "the query, path or body breaks its schema (the message names the field and the rule)",
    401: "the X-Auth-Token or X-Auth-Project-Id header is missing or not valid",
    403: "policy does not allow it, or a quota would be exceeded",
    404: "no such container (or image, instance, exec) in this project",
    409: "the container's state does not allow it, or the name is in use",
    413: "the body is larger than 1 MiB",
    502: "the container engine refused",
    503: "the identity service, or the container's instance, cannot be reached; or no instance has room",
}

_IDENT = {
    "name": "ident",
    "in": "path",
    "required": True,
    "description": "a container's uuid or name",
    "schema": {"type": "string", "pattern": NAME_PATTERN},
}
_PROJECT = {
    "name": "project",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
}
_EXEC_ID = {"name": "exec_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN}}
_SUBSCRIPTION = {
    "name": "subscription",
    "in": "path",
    "required": True,
    "description": "a subscription's uuid",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"}}

_AUTH = (401, 503)
_ONE = (400, 404) + _AUTH
_ACTION = _ONE + (409, 502)
_WEBSOCKET = "Upgrade to a WebSocket (the attach channel protocol); without the upgrade headers the answer is 400."

#: (path, method, handler, summary, request body schema, {status: body schema name or None}, errors, public)
OPERATIONS = [
    ("/", "get", "versions", "API versions", None, {200: "Versions"}, (), True),
    ("/v1/openapi.json", "get", "openapi_document", "This document", None, {200: "object"}, (), True),
    ("/v1/containers", "get", "list_containers", "List the project's containers", None,
     {200: "ContainerList"}, (400, 403) + _AUTH, False),
    ("/v1/containers", "post", "create_container", "Create (and with run=true start) a container", "ContainerCreate",
     {202: "Container"}, (400, 403, 404, 409, 413, 502) + _AUTH, False),
    ("/v1/containers/{ident}", "get", "show_container", "Show a container", None,
     {200: "Container"}, _ONE, False),
    ("/v1/containers/{ident}", "delete", "delete_container",
     "Delete a container: 204 once it is gone; 202 with it in status deleting when its instance's agent is not "
     "connected (the removal finishes when the agent connects again)", None,
     {204: None, 202: "Container"}, _ACTION + (403,), False),
    ("/v1/containers/{ident}/start", "post", "start_container", "Start", None, {202: "Container"}, _ACTION, False),
    ("/v1/containers/{ident}/stop", "post", "stop_container", "Stop (SIGTERM, then SIGKILL after timeout)", None,
     {202: "Container"}, _ACTION, False),
    ("/v1/containers/{ident}/kill", "post", "kill_container", "Send a signal", None,
     {202: "Container"}, _ACTION, False),
    ("/v1/containers/{ident}/restart", "post", "restart_container", "Restart", None,
     {202: "Container"}, _ACTION, False),
    ("/v1/containers/{ident}/wait", "post", "wait_container", "Wait until the container is no longer running", None,
     {200: "WaitResult"}, _ONE, False),
    ("/v1/containers/{ident}/logs", "get", "container_logs",
     "Output, as the engine's multiplexed stream (8-byte frame headers); follow=true streams until it exits", None,
     {200: "binary"}, _ONE, False),
    ("/v1/containers/{ident}/attach", "get", "attach_container",
     "A one-time attach URL (with a WebSocket upgrade instead: attach now)", None,
     {200: "AttachURL"}, (400, 403, 404, 409) + _AUTH, False),
    ("/v1/containers/{ident}/exec", "post", "exec_container",
     "Run a command: 200 with its output once it exited, or (interactive) 201 with a one-time attach URL",
     "ExecCreate", {200: "ExecResult", 201: "ExecSession"}, _ACTION + (413,), False),
    ("/v1/containers/{ident}/exec/{exec_id}/attach", "get", "exec_attach", "Start an interactive exec. " + _WEBSOCKET,
     None, {}, _ACTION + (403,), False),
    ("/v1/attach/{token}", "get", "attach_with_token", "Redeem a one-time attach URL. " + _WEBSOCKET, None,
     {}, (400, 401, 403, 404, 409, 503), True),
    ("/v1/subscriptions", "post", "create_subscription",
     "Subscribe a webhook to the project's notifications (csvc.notify)", "SubscriptionCreate",
     {201: "Subscription"}, (400, 403, 413) + _AUTH, False),
    ("/v1/subscriptions", "get", "list_subscriptions", "List the project's webhook subscriptions", None,
     {200: "SubscriptionList"}, (400, 403) + _AUTH, False),
    ("/v1/subscriptions/{subscription}", "delete", "delete_subscription", "Unsubscribe a webhook", None,
     {204: None}, (400, 403, 404) + _AUTH, False),
    ("/v1/instances", "get", "list_instances", "List the instances (admin)", None,
     {200: "InstanceList"}, (403,) + _AUTH, False),
    ("/v1/instances", "post", "register_instance",
     "Register an existing host (admin); the answer carries its agent's enrollment token", "InstanceRegister",
     {201: "InstanceEnrolled"}, (400, 403, 409, 413) + _AUTH, False),
    ("/v1/instances/{ident}", "get", "show_instance", "An instance and its containers (admin)", None,
     {200: "InstanceDetail"}, (403,) + _ONE, False),
    ("/v1/instances/{ident}", "delete", "delete_instance",
     "Drain and remove an instance (admin); 409 while it holds containers unless force", None,
     {204: None}, (403, 409) + _ONE, False),
    ("/v1/quotas/{project}", "get", "show_quota", "A project's limits", None, {200: "Quota"}, (400, 403) + _AUTH, False),
    ("/v1/quotas/{project}", "put", "update_quota", "Set limits (admin); null restores a default", "QuotaUpdate",
     {200: "Quota"}, (400, 403, 413) + _AUTH, False),
    ("/v1/quotas/{project}", "delete", "delete_quota", "Back to the defaults (admin)", None,
     {204: None}, (400, 403) + _AUTH, False),
    ("/v1/quotas/{project}/usage", "get", "quota_usage", "Each resource's limit and use", None,
     {200: "QuotaUsage"}, (400, 403) + _AUTH, False),
]

_PATH_PARAMETERS = {"subscription": _SUBSCRIPTION, "ident": _IDENT, "project": _PROJECT, "exec_id": _EXEC_ID, "token": _TOKEN}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _query_parameters(handler):
    parameters = []
    for name, schema in QUERY.get(handler, {}).items():
        schema = deepcopy(schema)
        description = schema.pop("description", None)
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _success(status, body):
    if body is None:
        return {"description": "done; no content"}
    if body == "binary":
        return {
            "description": "the output",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    if body == "object":
        return {"description": "the document", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {"description": body, "content": {"application/json": {"schema": _ref(body)}}}


def _operation(path, handler, summary, body, answers, errors, public):
    operation = {"operationId": handler, "summary": summary, "responses": {}}
    parameters = [_PATH_PARAMETERS[part[1:-1]] for part in path.split("/") if part.startswith("{")]
    parameters += _query_parameters(handler)
    if parameters:
        operation["parameters"] = deepcopy(parameters)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    for status, answer in answers.items():
        operation["responses"][str(status)] = _success(status, answer)
    for status in sorted(set(errors)):
        operation["responses"][str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if public:
        operation["security"] = []
    return operation


def document():
    """
    The OpenAPI document of the native API, as a dict.
    """
    paths = {}
    for path, method, handler, summary, body, answers, errors, public in OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(path, handler, summary, body, answers, errors, public)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "csvc native API",
            "version": "1.0",
            "description": "Containers on a cloud's instances, modelled on OpenStack Zun's API. "
            "Every request is checked against its schema: unknown fields and query parameters are a 400.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "project": {"type": "apiKey", "in": "header", "name": "X-Auth-Project-Id"},
            },
        },
        "security": [{"token": [], "project": []}],
    }
