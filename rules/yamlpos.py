"""Find the line of any field of a YAML document, so errors can say file:line: field.path.

Example::

    index = line_index(text)
    line_of(index, ("pipelines", "etl_orders", "sla"))   # 14
    dotted(("groups", 0, "rules", 3, "expr"))            # 'groups[0].rules[3].expr'
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

__all__ = ["Path", "dotted", "line_index", "line_of"]

Path = tuple[str | int, ...]
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def line_index(text: str) -> dict[Path, int]:
    """Map every field path of a YAML document to its 1-based line (empty if unparsable)."""
    index: dict[Path, int] = {}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: Path) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                walk(value, sub)
                index[sub] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


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
