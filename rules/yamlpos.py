"""Load YAML that people (and attackers) write, and find the line of any field of it.

Everything downstream (schema validation, line lookups, generation) walks
the loaded data as a tree, but YAML aliases make a graph: a 500-byte
"billion laughs" document of nested aliases is a tree of 10^9 nodes. So
:func:`load_yaml` composes the document (libyaml when available), walks its
node graph once without recursion, and refuses, naming file:line and the
field path:

* a document over ``max_bytes`` (:data:`MAX_BYTES` by default);
* nesting deeper than :data:`MAX_DEPTH` (PyYAML constructs recursively);
* more nodes reached through aliases than the document has bytes, or
  :data:`ALIAS_NODES`, whichever is larger: expansion stays linear in the
  input (anchors shared by every pipeline are fine, nested alias bombs are
  refused within milliseconds);
* the same key twice in one mapping (YAML says keys are unique; PyYAML
  silently keeps the last one), or a list or mapping as a key. Merge keys
  (``<<: *base``) still work.

Only then are Python objects built, from the already-verified nodes.

Example::

    doc = load_yaml(text, "rules/pipelines.yml")    # YamlError lists what is wrong
    line_of(doc.index, ("pipelines", "etl_orders", "sla"))   # 14 (index built on demand)
    dotted(("groups", 0, "rules", 3, "expr"))                 # 'groups[0].rules[3].expr'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from rules.errors import Problem, YamlError

__all__ = [
    "ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "Loaded",
    "Path",
    "dotted",
    "line_index",
    "line_of",
    "load_yaml",
    "too_large",
]

Path = tuple[str | int, ...]
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# 32 MiB: about 140,000 pipelines in a spec. A larger file is refused before it is parsed.
MAX_BYTES = 32 * 1024 * 1024
# A spec nests about 8 deep (pipelines.x.actions.y.plugin.config...); PyYAML's
# constructor recurses a few frames per level, so this keeps far from Python's limit.
MAX_DEPTH = 64
# Nodes that aliases may add however small the document (else one per byte of it).
ALIAS_NODES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _limit_problem(source: str, line: int, path: Path, message: str) -> YamlError:
    return YamlError([Problem(source, line, dotted(path), message)])


def _walk(root: yaml.Node, source: str, size: int) -> Iterator[tuple[Path, int]]:
    """Yield (path, line) for every field, depth-first; raise YamlError beyond the limits.

    Keys are yielded at the key's line. Iterative, so a deep document cannot
    exhaust the stack; nodes reached again (through an alias) are counted
    against the alias budget.
    """
    seen: set[int] = set()
    budget = max(ALIAS_NODES, size)
    repeats = 0
    # (node, path, line of the field, depth, where the alias that reached it is, if one did)
    stack: list[tuple[yaml.Node, Path, int, int, tuple[Path, int] | None]] = [
        (root, (), root.start_mark.line + 1, 0, None)
    ]
    while stack:
        node, path, line, depth, alias = stack.pop()
        yield path, line
        if alias is None and id(node) in seen:
            alias = (path, line)
        if isinstance(node, yaml.ScalarNode):
            repeats += alias is not None
            continue
        if depth >= MAX_DEPTH:
            raise _limit_problem(
                source, line, path, f"nested deeper than {MAX_DEPTH} levels: refusing to load it"
            )
        seen.add(id(node))
        if alias is not None:
            repeats += 1
            if repeats > budget:
                raise _limit_problem(
                    source,
                    alias[1],
                    alias[0],
                    f"aliases expand the document by over {budget:,} nodes "
                    "(a 'billion laughs' document?): refusing to load it; write the values "
                    "out or use fewer nested aliases",
                )
        children: list[tuple[yaml.Node, Path, int, int, tuple[Path, int] | None]] = []
        if isinstance(node, yaml.MappingNode):
            keys: dict[tuple[str, Any], int] = {}
            for key, value in node.value:
                key_line = key.start_mark.line + 1
                if not isinstance(key, yaml.ScalarNode):
                    raise _limit_problem(
                        source, key_line, path, "a key must be a plain value, not a list or mapping"
                    )
                sub = (*path, str(key.value))
                if key.tag != _MERGE_TAG:
                    first = keys.get((key.tag, key.value))
                    if first is not None:
                        raise _limit_problem(
                            source,
                            key_line,
                            sub,
                            f"duplicate key {key.value!r} (first at line {first}): "
                            "YAML keys are unique; merge the two",
                        )
                    keys[(key.tag, key.value)] = key_line
                children.append((value, sub, key_line, depth + 1, alias))
        elif isinstance(node, yaml.SequenceNode):
            # an item reached through an alias starts where its sequence is, not at its anchor
            children = [
                (
                    item,
                    (*path, i),
                    line if alias is not None or id(item) in seen else item.start_mark.line + 1,
                    depth + 1,
                    alias,
                )
                for i, item in enumerate(node.value)
            ]
        stack.extend(reversed(children))


def line_index(text: str, source: str = "<string>") -> dict[Path, int]:
    """Map every field path of a YAML document to its 1-based line (empty if unparsable).

    Bounded like :func:`load_yaml`: beyond a limit the index holds what was
    walked so far.
    """
    index: dict[Path, int] = {}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return index
    if root is None:
        return index
    try:
        for path, line in _walk(root, source, len(text)):
            index[path] = line
    except YamlError:
        pass
    return index


@dataclass
class Loaded:
    """A loaded YAML document: its data, and the line of each field (built when first asked)."""

    data: Any
    text: str
    source: str
    _index: dict[Path, int] | None = field(default=None, repr=False)

    @property
    def index(self) -> Mapping[Path, int]:
        """Field path -> line, composed on first use (large documents load fast)."""
        if self._index is None:
            self._index = line_index(self.text, self.source)
        return self._index

    def problem(self, path: Path, message: str) -> Problem:
        """Return a problem at ``path``, with its line."""
        return Problem(self.source, line_of(self.index, path), dotted(path), message)


def too_large(size: int, max_bytes: int) -> str:
    """Return the message for a document over the size limit."""
    return (
        f"is {size / 2**20:.1f} MiB, over the limit of {max_bytes / 2**20:.0f} MiB "
        "(about 140,000 pipelines): refusing to load it; list only the pipelines "
        "whose settings differ from the defaults, or split the deployment"
    )


def load_yaml(text: str, source: str, max_bytes: int | None = MAX_BYTES) -> Loaded:
    """Load one YAML document within the limits above; ``YamlError`` says what and where."""
    if max_bytes is not None and len(text) > max_bytes:
        raise YamlError([Problem(source, 0, "", too_large(len(text), max_bytes))])
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Loaded(None, text, source)
        for _ in _walk(root, source, len(text)):
            pass
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise YamlError([Problem(source, line, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return Loaded(data, text, source)


def line_of(index: Mapping[Path, int], path: Path) -> int:
    """Return the line of ``path``, or of its nearest ancestor that has one."""
    while path and path not in index:
        path = path[:-1]
    return index.get(path, 1)


def dotted(path: Path) -> str:
    """Return a field path as SREs write it: ``pipelines.etl_orders.sla``, ``rules[3]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
