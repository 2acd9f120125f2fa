"""Each package has one error tree, and its ``errors.py`` docstring draws it truly.

Every public exception class defined anywhere in ``receiver`` (or ``exporters``,
``rules``) must be defined in that package's ``errors`` module, descend from its
root error, and appear in the docstring's tree under its real parent; every name
the tree draws must exist. ``exporters.classify.PipelineFailure`` is the one
documented exception: pipelines raise it, the exporter never does.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

PACKAGES = {"receiver": "ReceiverError", "exporters": "ExporterError", "rules": "RulesError"}
OUTSIDE_ON_PURPOSE = {"exporters.classify.PipelineFailure"}
# one line of the tree: glyphs, then the class name (maybe module-qualified)
_TREE_LINE = re.compile(r"^(?P<lead>[\s│├└─]*)(?:[a-z_]+\.)*(?P<name>[A-Z]\w+)")


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    names = [package] + [
        info.name for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
    ]
    return [importlib.import_module(name) for name in names]


def _public_exceptions(package: str) -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in _modules(package):
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = obj
    return found


def _drawn_tree(doc: str) -> dict[str, str | None]:
    """Return ``{class name: parent name}`` from the ``::`` block of a docstring.

    A class's depth is the column its name starts at; description lines that
    continue the previous one start with a lowercase word and are skipped.
    """
    block = doc.split("::", 1)[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = _TREE_LINE.match(line)
        if match is None:
            if stack and not line.strip():
                break  # the blank line after the tree ends it
            continue
        depth, name = len(match.group("lead")), match.group("name")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_exception_is_defined_in_the_errors_module(package: str) -> None:
    stray = {
        path
        for path in _public_exceptions(package)
        if not path.startswith(f"{package}.errors.") and path not in OUTSIDE_ON_PURPOSE
    }
    assert not stray, f"define these in {package}/errors.py: {sorted(stray)}"


@pytest.mark.parametrize(("package", "root"), sorted(PACKAGES.items()))
def test_the_docstring_draws_the_real_tree(package: str, root: str) -> None:
    errors = importlib.import_module(f"{package}.errors")
    drawn = _drawn_tree(errors.__doc__ or "")
    defined = {
        path.rsplit(".", 1)[1]: cls
        for path, cls in _public_exceptions(package).items()
        if path.startswith(f"{package}.errors.")
    }
    assert drawn.get(root, "missing") is None, f"{root} must be the tree's root"
    for name, cls in defined.items():
        if name.startswith("_"):
            continue
        assert name in drawn, f"{package}/errors.py defines {name} but its tree omits it"
        assert issubclass(cls, getattr(errors, root))
    for name, parent in drawn.items():
        assert name in defined, f"the tree draws {name}, which {package}/errors.py lacks"
        if parent is not None:
            assert defined[parent] in defined[name].__mro__[1:], f"{name} is not a {parent}"
