"""Compile the subset of JSON Schema the events schema uses into one fast Python function.

``jsonschema`` spends about 250 µs deciding that one small event is valid,
more than aiohttp spends on the whole request. The events schema uses only a
handful of keywords, so it is translated here into Python source (one
boolean expression per schema, one function per ``$defs`` entry) and
compiled once; that answers "valid or not" in a few microseconds.
``jsonschema`` still runs on every body this check refuses, to name the bad
fields. The compiler refuses any keyword it does not implement, so the
schema cannot grow a rule that this check silently ignores, and the tests
compare both on a corpus of good and bad events.

Instances are what ``json.loads`` returns (dict, list, str, int, float,
bool, None), so exact ``type(...) is`` tests are used.

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
_TYPES = {
    "object": "type({x}) is dict",
    "array": "type({x}) is list",
    "string": "type({x}) is str",
    "number": "type({x}) in _NUM",
    "integer": "(type({x}) is int or (type({x}) is float and {x}.is_integer()))",
    "boolean": "type({x}) is bool",
    "null": "{x} is None",
}


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword the fast check does not implement."""


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.ns: dict[str, Any] = {"_NUM": (int, float)}
        self.functions: list[str] = []
        self.refs: dict[str, str] = {}

    def const(self, value: Any) -> str:
        name = f"_c{len(self.ns)}"
        self.ns[name] = value
        return name

    def function(self, schema: Any, name: str | None = None) -> str:
        name = name or f"_f{len(self.functions)}_{len(self.ns)}"
        self.ns.setdefault(name, None)  # reserve the name
        body = self.expr(schema, "v")
        self.functions.append(f"def {name}(v):\n    return {body}\n")
        return name

    def ref(self, ref: Any) -> str:
        if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
            raise UnsupportedSchemaError(f"only local '#/$defs/...' refs are supported: {ref!r}")
        if ref not in self.refs:
            key = ref.removeprefix("#/$defs/")
            self.refs[ref] = name = f"_ref_{re.sub(r'[^A-Za-z0-9_]', '_', key)}"
            self.function(self.root["$defs"][key], name)
        return self.refs[ref]

    def expr(self, schema: Any, x: str) -> str:
        if schema is True:
            return "True"
        if schema is False:
            return "False"
        if not isinstance(schema, Mapping):
            raise UnsupportedSchemaError(f"a schema must be an object or boolean: {schema!r}")
        parts = [
            self.keyword(k, v, schema, x)
            for k, v in schema.items()
            if k not in _ANNOTATIONS and k not in ("then", "else")
        ]
        return "(" + " and ".join(parts) + ")" if parts else "True"

    def keyword(self, key: str, value: Any, schema: Mapping[str, Any], x: str) -> str:
        is_str, is_dict, is_list = f"type({x}) is str", f"type({x}) is dict", f"type({x}) is list"
        if key == "$ref":
            return f"{self.ref(value)}({x})"
        if key == "type":
            if value not in _TYPES:
                raise UnsupportedSchemaError(f"type {value!r} is not supported")
            return _TYPES[value].format(x=x)
        if key == "enum":
            if not all(isinstance(o, str) for o in value):
                raise UnsupportedSchemaError("enum: only strings are supported")
            return f"({is_str} and {x} in {self.const(frozenset(value))})"
        if key == "const":
            if not isinstance(value, str):
                raise UnsupportedSchemaError("const: only strings are supported")
            return f"({is_str} and {x} == {value!r})"
        if key == "pattern":
            search = self.const(re.compile(value).search)
            return f"(not {is_str} or {search}({x}) is not None)"
        if key == "maxLength":
            return f"(not {is_str} or len({x}) <= {int(value)})"
        if key in ("minimum", "maximum"):
            op = ">=" if key == "minimum" else "<="
            return f"(type({x}) not in _NUM or {x} {op} {self.const(value)})"
        if key in ("minItems", "maxItems"):
            op = ">=" if key == "minItems" else "<="
            return f"(not {is_list} or len({x}) {op} {int(value)})"
        if key == "items":
            item = self.function(value)
            return f"(not {is_list} or all({item}(i) for i in {x}))"
        if key == "required":
            needed = " and ".join(f"{k!r} in {x}" for k in value) or "True"
            return f"(not {is_dict} or ({needed}))"
        if key == "properties":
            props = [
                f"({k!r} not in {x} or {self.expr(sub, f'{x}[{k!r}]')})" for k, sub in value.items()
            ]
            return f"(not {is_dict} or ({' and '.join(props) or 'True'}))"
        if key == "additionalProperties":
            if value is not False:
                raise UnsupportedSchemaError("additionalProperties: only false is supported")
            known = self.const(frozenset(schema.get("properties", {})))
            return f"(not {is_dict} or {known}.issuperset({x}))"
        if key == "dependentRequired":
            deps = [
                f"({k!r} not in {x} or ({' and '.join(f'{n!r} in {x}' for n in needed)}))"
                for k, needed in value.items()
            ]
            return f"(not {is_dict} or ({' and '.join(deps) or 'True'}))"
        if key == "allOf":
            return "(" + " and ".join(self.expr(s, x) for s in value) + ")"
        if key == "oneOf":
            return "((" + ") + (".join(self.expr(s, x) for s in value) + ")) == 1"
        if key == "if":
            then = self.expr(schema.get("then", True), x)
            other = self.expr(schema.get("else", True), x)
            return f"(({then}) if {self.expr(value, x)} else ({other}))"
        raise UnsupportedSchemaError(f"JSON Schema keyword {key!r} is not supported")


def compile_schema(schema: Any, root: Mapping[str, Any] | None = None) -> Check:
    """Return a function telling whether a JSON value is valid against ``schema``."""
    compiler = _Compiler(root if root is not None else schema)
    entry = compiler.function(schema, "_check")
    source = "\n".join(compiler.functions)
    namespace = dict(compiler.ns)
    exec(compile(source, "<events schema fast check>", "exec"), namespace)  # noqa: S102
    check: Check = namespace[entry]
    return check
