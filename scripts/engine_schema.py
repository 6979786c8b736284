#!/usr/bin/env python3
"""
Write ``csvc/api/engine_schema.json``: the shapes of the Docker Engine API's
request bodies, taken from the engine's own OpenAPI description
(``api/swagger.yaml`` of Debian's ``golang-github-docker-docker-dev``, API
1.41), with ``$ref`` and ``allOf`` resolved and descriptions left out.

    .venv/bin/python scripts/engine_schema.py [SWAGGER] > csvc/api/engine_schema.json

A shape is ``{"t": TYPE}`` with, for objects, ``"p"`` (the canonical
property names and their shapes) and ``"a"`` (the shape of every other key's
value when the object is a map; absent otherwise), for arrays ``"i"`` (the
items' shape).  ``tests/unit/test_engine_schema.py`` checks that the
committed file is what this script writes from the installed swagger.yaml.
"""

import json
import sys

import yaml

SWAGGER = "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml"


def shape(schema, definitions, seen=()):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return {"t": "any"}
        return shape(definitions[name], definitions, seen + (name,))
    if "allOf" in schema:
        merged = {"t": "object", "p": {}}
        for part in schema["allOf"]:
            sub = shape(part, definitions, seen)
            merged["p"].update(sub.get("p", {}))
            if "a" in sub:
                merged["a"] = sub["a"]
        return merged
    kind = schema.get("type")
    if kind == "object" and schema.get("enum") == [{}]:
        return {"t": "object", "p": {}}  # Go's struct{}: an empty object, whatever was sent
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        out = {"t": "object", "p": {name: shape(sub, definitions, seen)
                                    for name, sub in sorted((schema.get("properties") or {}).items())}}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["a"] = shape(extra, definitions, seen)
        elif extra is True or (not out["p"] and extra is None):
            out["a"] = {"t": "any"}
        return out
    if kind == "array":
        return {"t": "array", "i": shape(schema.get("items") or {}, definitions, seen)}
    if kind in ("string", "integer", "boolean", "number"):
        return {"t": kind}
    return {"t": "any"}


def bodies(spec):
    out = {}
    for path, operations in sorted(spec["paths"].items()):
        for method, operation in sorted(operations.items()):
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters") or []:
                if parameter.get("in") == "body" and "schema" in parameter:
                    out[f"{method.upper()} {path}"] = shape(parameter["schema"], spec["definitions"])
    return out


def main(argv):
    with open(argv[1] if len(argv) > 1 else SWAGGER, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    document = {"api_version": spec["info"]["version"], "bodies": bodies(spec)}
    sys.stdout.write(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv)
