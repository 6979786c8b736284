"""
Docker request bodies read as the engine would read them, and rebuilt.

The engine decodes JSON with Go's ``encoding/json``, which matches a key to
a field case-insensitively (``type`` is ``Type``; so is ``tYpE``, and Go
folds the long s and the Kelvin sign into ``s`` and ``k``).  A check that
reads ``body["Type"]`` while the engine reads ``type`` is a hole, so no
check here reads the client's dict: ``canonical`` walks a body along the
Engine API's own schema (``engine_schema.json``, written from the engine's
``api/swagger.yaml`` by ``scripts/engine_schema.py``) and builds a new value
with only the schema's fields, each under its canonical name, each of the
schema's type.  What the schema does not name is dropped and reported;
two keys that name the same field are a 400.  Everything after this (policy,
validation, what reaches the agent and the engine) reads the rebuilt value.

Pure functions; the depth of the walk is the schema's, whatever was sent.
"""

import json
import os

from csvc.api.schemas import BadRequest

_SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "engine_schema.json")

with open(_SCHEMA_FILE, encoding="utf-8") as _f:
    _DOCUMENT = json.load(_f)

#: The Engine API version the schema describes.
API_VERSION = _DOCUMENT["api_version"]
#: ``"METHOD /path"`` (as in swagger.yaml) -> the shape of its body
BODIES = _DOCUMENT["bodies"]

#: Longest field path named in a warning or an error (paths include keys
#: of maps, which the client chooses).
_SHOWN = 120


def fold(key):
    """
    A key as Go's ``encoding/json`` compares it to a field's name: case
    folded, with the two non-ASCII runes Go folds into ASCII letters.
    """
    return key.replace("\u017f", "s").replace("\u212a", "k").lower()


def _shown(path):
    return path if len(path) <= _SHOWN else path[:_SHOWN] + "..."


def _join(path, key):
    return f"{path}.{key}" if path else key


class _Walk:
    def __init__(self):
        self.dropped = []

    def value(self, shape, value, path):
        kind = shape["t"]
        if kind == "object":
            return self.object(shape, value, path)
        if kind == "array":
            if not isinstance(value, list):
                raise BadRequest(f"{_shown(path)}: must be a list")
            return [self.item(shape["i"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind == "string":
            if not isinstance(value, str):
                raise BadRequest(f"{_shown(path)}: must be a string")
            if "\x00" in value:
                # Nothing in the engine takes one: runc refuses it at start
                # (a 500), a path with one fails the engine's lstat.
                raise BadRequest(f"{_shown(path)}: must not contain a NUL character")
            return value
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRequest(f"{_shown(path)}: must be an integer")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"{_shown(path)}: must be a number")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise BadRequest(f"{_shown(path)}: must be true or false")
            return value
        # A field the schema does not type: nothing csvc can rebuild.
        self.dropped.append(_shown(path))
        return None

    def item(self, shape, value, path):
        if value is None:
            raise BadRequest(f"{_shown(path)}: must not be null")
        return self.value(shape, value, path)

    def object(self, shape, value, path):
        if not isinstance(value, dict):
            raise BadRequest(f"{_shown(path) or 'the body'}: must be an object")
        fields = shape.get("p") or {}
        names = {fold(name): name for name in fields}
        extra = shape.get("a")
        out, given = {}, {}
        for key, sub in value.items():
            if "\x00" in key:
                raise BadRequest(f"{_shown(_join(path, key))}: a key must not contain a NUL character")
            name = names.get(fold(key))
            if name is None:
                if extra is None:
                    # (shortened: the client chose the key, and it goes into
                    # the create's answer or a log line)
                    self.dropped.append(_shown(_join(path, key)))
                elif sub is None:
                    out[key] = None  # a map's null: Docker's "nothing" (a port exposed, not bound)
                else:
                    item = self.value(extra, sub, _join(path, key))
                    if item is not None:
                        out[key] = item
                continue
            if name in given:
                raise BadRequest(f"{_shown(_join(path, given[name]))} and {_shown(_join(path, key))}: the same "
                                 f"field ({name}) given twice, spelt differently")
            given[name] = key
            if sub is None:
                continue  # Go leaves the field at its zero value
            item = self.value(fields[name], sub, _join(path, name))
            if item is not None:
                out[name] = item
        return out


def canonical(operation, body):
    """
    ``(rebuilt, dropped)``: ``body`` (a decoded JSON value) rebuilt along the
    schema of ``operation``'s body (``"POST /containers/create"``), and the
    paths of the fields it had that the schema does not name (dropped).  A
    value of the wrong type, or a field given twice in two spellings, is a
    ``BadRequest`` naming it.
    """
    walk = _Walk()
    rebuilt = walk.value(BODIES[operation], body, "")
    return rebuilt, walk.dropped


def decode(raw):
    """
    A request body's JSON (bytes), decoded: a 400 for what is not JSON, for
    a key given twice in one object (Go keeps the last one, Python too, but
    a body that says two things is refused rather than read one way), and
    for nesting deeper than a parser's stack.
    """
    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise BadRequest(f"{_shown(key)}: given twice in one object")
            out[key] = value
        return out

    try:
        return json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
