"""
The event types csvc emits, the wildcards a subscription may name, and the
envelope every sink receives (the shape of an oslo.messaging notification).
"""

import uuid as uuidlib
from datetime import datetime, timezone

INFO = "INFO"
ERROR = "ERROR"

CONTAINER_CREATE_START = "compute.container.create.start"
CONTAINER_CREATE_END = "compute.container.create.end"
CONTAINER_CREATE_ERROR = "compute.container.create.error"
CONTAINER_START = "compute.container.start"
CONTAINER_START_ERROR = "compute.container.start.error"
CONTAINER_STOP = "compute.container.stop"
CONTAINER_EXIT = "compute.container.exit"
CONTAINER_DELETE_START = "compute.container.delete.start"
CONTAINER_DELETE_END = "compute.container.delete.end"
CONTAINER_EXISTS = "compute.container.exists"
INSTANCE_CREATE = "compute.instance.create"
INSTANCE_DELETE = "compute.instance.delete"

#: Every event type emitted, in the order of a container's life.
EVENT_TYPES = (
    CONTAINER_CREATE_START,
    CONTAINER_CREATE_END,
    CONTAINER_CREATE_ERROR,
    CONTAINER_START,
    CONTAINER_START_ERROR,
    CONTAINER_STOP,
    CONTAINER_EXIT,
    CONTAINER_DELETE_START,
    CONTAINER_DELETE_END,
    CONTAINER_EXISTS,
    INSTANCE_CREATE,
    INSTANCE_DELETE,
)


def _wildcards():
    """
    ``*`` and ``prefix.*`` for every proper dotted prefix of a known type:
    ``compute.*``, ``compute.container.*``, ``compute.container.create.*``...
    """
    found = {"*"}
    for event_type in EVENT_TYPES:
        parts = event_type.split(".")
        for n in range(1, len(parts)):
            found.add(".".join(parts[:n]) + ".*")
    return tuple(sorted(found))


WILDCARDS = _wildcards()

#: What a subscription's ``event_types`` may hold.
SUBSCRIBABLE = tuple(EVENT_TYPES) + WILDCARDS


def matches(pattern, event_type):
    """
    Whether a subscription's ``pattern`` (a type, ``*`` or ``prefix.*``)
    selects ``event_type``.
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def iso(value):
    """
    A naive UTC datetime (or None) as the API writes it.
    """
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + "Z"
    return value


def timestamp(seconds):
    """
    Unix seconds as an oslo.messaging timestamp (UTC, microseconds).
    """
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def envelope(event_type, payload, publisher_id, priority, seconds):
    return {
        "event_type": event_type,
        "publisher_id": publisher_id,
        "priority": priority,
        "timestamp": timestamp(seconds),
        "message_id": str(uuidlib.uuid4()),
        "payload": payload,
    }


def container_payload(row, **extra):
    """
    A container's payload: who owns it, what it runs, where, its state and
    times.  Never its output, environment or command (they may hold secrets).
    """
    payload = {
        "project_id": row.get("project_id"),
        "user_id": row.get("user_id"),
        "container_uuid": row.get("uuid"),
        # The id the Docker API shows (None before the engine created it).
        "engine_id": row.get("engine_id"),
        "name": row.get("name"),
        "image": row.get("image"),
        "state": row.get("status"),
        "state_reason": row.get("status_reason"),
        "instance_uuid": row.get("instance_uuid"),
        "exit_code": row.get("exit_code"),
        "memory": row.get("memory"),
        "cpu": row.get("cpu"),
        "created_at": iso(row.get("created_at")),
        "started_at": iso(row.get("started_at")),
        "finished_at": iso(row.get("finished_at")),
    }
    payload.update(extra)
    return payload


def instance_payload(row, project_id=None, **extra):
    payload = {
        "project_id": project_id,
        "instance_uuid": row.get("uuid"),
        "name": row.get("name"),
        "provider": row.get("provider"),
        "state": row.get("status"),
        "capacity": row.get("capacity"),
        "shared": row.get("shared"),
        "created_at": iso(row.get("created_at")),
    }
    payload.update(extra)
    return payload
