"""Compile the subset of JSON Schema the events schema uses into a fast yes/no check.

``jsonschema`` spends about 250 µs deciding that one small event is valid,
more than aiohttp spends on the whole request. The events schema only uses
a handful of keywords, so it is compiled here into nested closures that
answer "valid or not" in a few microseconds; ``jsonschema`` still runs on
every body this check refuses, to name the bad fields. The compiler refuses
any keyword it does not implement, so the schema cannot grow a rule that
this check silently ignores, and tests compare both on a corpus.

Example::

    is_valid = compile_schema(schema_dict)            # root $defs resolve "$ref"
    is_valid({"pipeline": "etl_orders", "event": "heartbeat"})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["UnsupportedSchemaError", "compile_schema"]

Check = Callable[[Any], bool]

# Keywords that only describe; they never change validity.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs", "$comment"})


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword the fast check does not implement."""


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def compile_schema(schema: Any, root: Mapping[str, Any] | None = None) -> Check:
    """Return a function telling whether an instance is valid against ``schema``."""
    root = root if root is not None else schema
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, Mapping):
        raise UnsupportedSchemaError(f"a schema must be an object or a boolean, not {schema!r}")
    checks: list[Check] = []
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        checks.append(_keyword(key, value, schema, root))
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)
    return lambda v: all(c(v) for c in frozen)


def _keyword(key: str, value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Check:
    if key == "$ref":
        if not isinstance(value, str) or not value.startswith("#/$defs/"):
            raise UnsupportedSchemaError(f"only local '#/$defs/...' refs are supported: {value!r}")
        return compile_schema(root["$defs"][value.removeprefix("#/$defs/")], root)
    if key == "type":
        return _TYPES[value]
    if key == "enum":
        options = tuple(value)
        if all(isinstance(o, str) for o in options):
            names = frozenset(options)
            return lambda v: isinstance(v, str) and v in names
        return lambda v: any(_same(v, o) for o in options)
    if key == "const":
        return lambda v: _same(v, value)
    if key == "pattern":
        search = re.compile(value).search
        return lambda v: not isinstance(v, str) or search(v) is not None
    if key == "maxLength":
        return lambda v: not isinstance(v, str) or len(v) <= value
    if key == "minimum":
        return lambda v: not _is_number(v) or v >= value
    if key == "maximum":
        return lambda v: not _is_number(v) or v <= value
    if key == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= value
    if key == "maxItems":
        return lambda v: not isinstance(v, list) or len(v) <= value
    if key == "items":
        item = compile_schema(value, root)
        return lambda v: not isinstance(v, list) or all(item(i) for i in v)
    if key == "required":
        required = tuple(value)
        return lambda v: not isinstance(v, dict) or all(n in v for n in required)
    if key == "properties":
        props = {name: compile_schema(sub, root) for name, sub in value.items()}
        return lambda v: (
            not isinstance(v, dict) or all(props[k](x) for k, x in v.items() if k in props)
        )
    if key == "additionalProperties":
        if value is not False:
            raise UnsupportedSchemaError("additionalProperties: only false is supported")
        known = frozenset(schema.get("properties", {}))
        return lambda v: not isinstance(v, dict) or known.issuperset(v)
    if key == "dependentRequired":
        deps = {k: tuple(v) for k, v in value.items()}
        return lambda v: (
            not isinstance(v, dict)
            or all(all(n in v for n in needed) for k, needed in deps.items() if k in v)
        )
    if key == "allOf":
        parts = tuple(compile_schema(s, root) for s in value)
        return lambda v: all(p(v) for p in parts)
    if key == "oneOf":
        parts = tuple(compile_schema(s, root) for s in value)
        return lambda v: sum(1 for p in parts if p(v)) == 1
    if key == "if":
        cond = compile_schema(value, root)
        then = compile_schema(schema.get("then", True), root)
        other = compile_schema(schema.get("else", True), root)
        return lambda v: then(v) if cond(v) else other(v)
    if key in ("then", "else"):
        return lambda v: True  # evaluated by "if"
    raise UnsupportedSchemaError(f"JSON Schema keyword {key!r} is not supported by the fast check")
