"""
The Docker Engine API's ``filters`` as Docker reads them: container lists,
network lists, and the prunes of containers, networks and volumes
(``until``, ``label``, ``label!``, ``all``).
"""

import re
from datetime import datetime, timezone

from csvc.api import docker_events
from csvc.api.schemas import BadRequest
from csvc.compute.networks import RESERVED as RESERVED_NETWORKS
from csvc.api.docker.views import DOCKER_STATUS, full_image


def prune_filters(text):
    """
    ``(until, labels, not_labels)`` of a prune's ``filters``: ``until`` a
    Unix time (None: no limit), the others lists of ``key`` or
    ``key=value``.
    """
    filters = docker_events.parse_filters(text, ("until", "label", "label!"), "container prunes")
    until = filters.get("until", [])
    if len(until) > 1:
        raise BadRequest("filter until: only one value is allowed")
    return (parse_until(until[0]) if until else None), filters.get("label", []), filters.get("label!", [])


def volume_prune_filters(text):
    """
    ``(all, labels, not_labels)`` of a volume prune's ``filters``.
    """
    filters = docker_events.parse_filters(text, ("all", "label", "label!"), "volume prunes")
    every = filters.get("all", [])
    if any(w not in ("true", "1", "false", "0") for w in every):
        raise BadRequest(f"filter all: {every!r} is not true or false")
    return any(w in ("true", "1") for w in every), filters.get("label", []), filters.get("label!", [])


def prune_filters_any(text):
    """
    The filters of a prune that removes nothing, read all the same so that
    a malformed one is still a 400 naming it.
    """
    for value in docker_events.parse_filters(text, None).get("until", []):
        parse_until(value)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: One term of a Go duration (``1h30m`` has two).
_GO_TERM = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_GO_DURATION = re.compile(f"(?:{_GO_TERM.pattern})+")


def parse_until(value, now=None):
    """
    Docker's ``until``: a Unix time (``1700000000``, fractions allowed),
    an RFC 3339 time or date (UTC when it names no offset), or a Go
    duration before now (``10m``, ``1h30m``).
    """
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if _GO_DURATION.fullmatch(value):
        return now - sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_TERM.findall(value))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"filter until: {value!r} is neither a Unix time, an RFC 3339 time nor a duration such as 10m"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def label_matches(labels, item):
    name, sep, value = item.partition("=")
    return name in labels and (not sep or labels[name] == value)


def labels_match(labels, wanted, unwanted):
    """
    Docker's rule: every ``label`` matches, and not every ``label!`` does.
    """
    if not all(label_matches(labels, item) for item in wanted):
        return False
    return not (unwanted and all(label_matches(labels, item) for item in unwanted))


#: The filters ``GET /networks`` understands.
NETWORK_FILTERS = ("name", "id", "label", "driver", "type", "scope")


def network_matches(network, filters):
    """
    Docker's network list filters: ``name`` and ``id`` match a part of
    each (``id`` its start), ``label`` as for containers, ``type`` custom or
    builtin, ``scope`` local (all of csvc's).
    """
    checks = {
        "name": lambda w: w in network["Name"],
        "id": lambda w: network["Id"].startswith(w),
        "label": lambda w: label_matches(network.get("Labels") or {}, w),
        "driver": lambda w: network.get("Driver") == w,
        "type": lambda w: (w == "builtin") == (network["Name"] in RESERVED_NETWORKS),
        "scope": lambda w: network.get("Scope", "local") == w,
    }
    # Each label must match; of the other filters' values, any one.
    return all((all if key == "label" else any)(checks[key](w) for w in wanted) for key, wanted in filters.items())


def unix_rfc3339(text):
    """
    A Unix time from an RFC 3339 time as Docker writes one (nanoseconds and
    all); 0 for none.
    """
    if not text:
        return 0
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return 0
    base, fraction, zone = match.groups()
    when = datetime.fromisoformat(base + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone))
    return when.timestamp()


#: The filters ``GET /containers/json`` understands.
LIST_FILTERS = ("label", "status", "name", "id", "ancestor")


def list_filters(text):
    """
    The filters of a container list: ``parse_filters`` with
    ``LIST_FILTERS``, each ``name`` compiled once with RE2 (linear time; a
    400 naming the filter when invalid).
    """
    filters = docker_events.parse_filters(text, LIST_FILTERS, "container lists")
    if "name" in filters:
        filters["name"] = [docker_events.name_pattern(w) for w in filters["name"]]
    return filters


def container_matches(row, filters):
    """
    ``filters`` from ``list_filters``.
    """
    for key, wanted in filters.items():
        if key == "label":
            if not labels_match(row["labels"] or {}, wanted, ()):
                return False
        elif key == "status":
            if DOCKER_STATUS.get(row["status"], row["status"]) not in wanted:
                return False
        elif key == "name":
            # Docker matches its names, which start with "/" (``^/web``);
            # csvc's own form without it matches too (``^web``).
            names = ("/" + row["name"], row["name"])
            if not any(pattern.search(name) for pattern in wanted for name in names):
                return False
        elif key == "id":
            ids = [row["uuid"], row["engine_id"] or ""]
            if not any(i.startswith(w) for w in wanted for i in ids):
                return False
        elif key == "ancestor":
            if not any(full_image(w) == row["image"] for w in wanted):
                return False
    return True
