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
# What a type-specific keyword (pattern, minimum, items, ...) applies to, and the
# ``type`` values under which that guard is already known to hold.
_GUARDS = {
    "str": ("type({x}) is str", frozenset({"string"})),
    "dict": ("type({x}) is dict", frozenset({"object"})),
    "list": ("type({x}) is list", frozenset({"array"})),
    "num": ("type({x}) in _NUM", frozenset({"number", "integer"})),
}


def _always(value: Any) -> bool:
    return True


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword the fast check does not implement."""


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.ns: dict[str, Any] = {"_NUM": (int, float), "_always": _always}
        self.functions: list[str] = []
        self.refs: dict[str, str] = {}
        self.tables: list[str] = []

    def const(self, value: Any) -> str:
        name = f"_c{len(self.ns)}"
        self.ns[name] = value
        return name

    def function(self, schema: Any, name: str | None = None, known: str | None = None) -> str:
        name = name or f"_f{len(self.functions)}_{len(self.ns)}"
        self.ns.setdefault(name, None)  # reserve the name
        body = self.expr(schema, "v", known)
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

    def expr(self, schema: Any, x: str, known: str | None = None) -> str:
        """Return a boolean expression; ``known`` is a ``type`` already checked for ``x``."""
        if schema is True:
            return "True"
        if schema is False:
            return "False"
        if not isinstance(schema, Mapping):
            raise UnsupportedSchemaError(f"a schema must be an object or boolean: {schema!r}")
        if isinstance(schema.get("type"), str):
            known = schema["type"]  # checked first (dict order), so later keywords may rely on it
            schema = {"type": known, **schema}
        parts = [
            self.keyword(k, v, schema, x, known)
            for k, v in schema.items()
            if k not in _ANNOTATIONS and k not in ("then", "else")
        ]
        parts = [p for p in parts if p != "True"]
        return "(" + " and ".join(parts) + ")" if parts else "True"

    def dispatch(self, branches: Any, x: str) -> str | None:
        """Compile ``allOf`` [if field == const then ...] on an object as one dict lookup.

        Such branches (one per event kind) otherwise test every constant in
        turn; with distinct string constants at most one ``then`` applies.
        """
        cases = [_switch_case(b) for b in branches]
        fields = {c[0] for c in cases if c is not None}
        values = [c[1] for c in cases if c is not None]
        if None in cases or len(fields) != 1 or len(set(values)) != len(values):
            return None
        (field,) = fields
        table = self.const(
            {
                v: self.function(b.get("then", True), known="object")
                for v, b in zip(values, branches, strict=True)
            }
        )
        self.tables.append(table)  # function names now, the functions once compiled
        return f"(type({x}.get({field!r})) is not str or {table}.get({x}[{field!r}], _always)({x}))"

    @staticmethod
    def when(kind: str, test: str, x: str, known: str | None) -> str:
        """Apply ``test`` to instances of ``kind`` only; no guard when ``known`` settles it."""
        guard, holds = _GUARDS[kind]
        if known in holds:
            return test
        if known is not None and known in _TYPES:
            return "True"  # another type: the keyword does not apply
        return f"(not {guard.format(x=x)} or {test})"

    def keyword(
        self, key: str, value: Any, schema: Mapping[str, Any], x: str, known: str | None
    ) -> str:
        is_str = "True" if known == "string" else f"type({x}) is str"
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
            return self.when("str", f"{search}({x}) is not None", x, known)
        if key == "maxLength":
            return self.when("str", f"len({x}) <= {int(value)}", x, known)
        if key in ("minimum", "maximum"):
            op = ">=" if key == "minimum" else "<="
            return self.when("num", f"{x} {op} {self.const(value)}", x, known)
        if key in ("minItems", "maxItems"):
            op = ">=" if key == "minItems" else "<="
            return self.when("list", f"len({x}) {op} {int(value)}", x, known)
        if key == "items":
            item = self.function(value)
            return self.when("list", f"all({item}(i) for i in {x})", x, known)
        if key == "required":
            needed = " and ".join(f"{k!r} in {x}" for k in value) or "True"
            return self.when("dict", f"({needed})", x, known)
        if key == "properties":
            # fields a schema forbids (``false``) are one set test; ``true`` ones need none
            banned = frozenset(k for k, sub in value.items() if sub is False)
            props = [f"{self.const(banned)}.isdisjoint({x})"] if banned else []
            props += [
                f"({k!r} not in {x} or {self.expr(sub, f'{x}[{k!r}]')})"
                for k, sub in value.items()
                if sub is not False and sub is not True
            ]
            return self.when("dict", f"({' and '.join(props) or 'True'})", x, known)
        if key == "additionalProperties":
            if value is not False:
                raise UnsupportedSchemaError("additionalProperties: only false is supported")
            names = self.const(frozenset(schema.get("properties", {})))
            return self.when("dict", f"{names}.issuperset({x})", x, known)
        if key == "dependentRequired":
            deps = [
                f"({k!r} not in {x} or ({' and '.join(f'{n!r} in {x}' for n in needed)}))"
                for k, needed in value.items()
            ]
            return self.when("dict", f"({' and '.join(deps) or 'True'})", x, known)
        if key == "allOf":
            table = self.dispatch(value, x) if known == "object" else None
            if table is not None:
                return table
            return "(" + " and ".join(self.expr(s, x, known) for s in value) + ")"
        if key == "oneOf":
            return "((" + ") + (".join(self.expr(s, x, known) for s in value) + ")) == 1"
        if key == "if":
            then = self.expr(schema.get("then", True), x, known)
            other = self.expr(schema.get("else", True), x, known)
            return f"(({then}) if {self.expr(value, x, known)} else ({other}))"
        raise UnsupportedSchemaError(f"JSON Schema keyword {key!r} is not supported")


def _switch_case(branch: Any) -> tuple[str, str] | None:
    """Return (field, value) when ``branch`` is ``if {field: const value} then ...``."""
    if not isinstance(branch, Mapping) or set(branch) - {"if", "then"}:
        return None
    cond = branch.get("if")
    if not isinstance(cond, Mapping) or set(cond) != {"properties", "required"}:
        return None
    props = cond["properties"]
    if not isinstance(props, Mapping) or len(props) != 1:
        return None
    ((field, sub),) = props.items()
    if cond["required"] != [field] or not isinstance(sub, Mapping) or set(sub) != {"const"}:
        return None
    return (field, sub["const"]) if isinstance(sub["const"], str) else None


def compile_schema(schema: Any, root: Mapping[str, Any] | None = None) -> Check:
    """Return a function telling whether a JSON value is valid against ``schema``."""
    compiler = _Compiler(root if root is not None else schema)
    entry = compiler.function(schema, "_check")
    source = "\n".join(compiler.functions)
    namespace = dict(compiler.ns)
    exec(compile(source, "<events schema fast check>", "exec"), namespace)  # noqa: S102
    for table in compiler.tables:  # dispatch tables held function names until now
        namespace[table].update({k: namespace[n] for k, n in namespace[table].items()})
    check: Check = namespace[entry]
    return check
