"""Every check of ``pipemedic rules check``, in one place, so ``rules generate`` runs the same.

:func:`verify` loads the spec (YAML limits, schema, references, no
templates: :mod:`rules.spec`), generates the rules, names unknown recovery
strategies, lints the generated and custom rule files together
(:mod:`rules.lint`) and has the real promtool check them. ``rules generate``
writes nothing unless all of it passes, so it never writes a file promtool
refuses.

Long work is shown: for a spec of :data:`PROGRESS_BYTES` or more each phase
is logged at info on stderr when it starts and ends (``--log-format json``
gives one JSON object a line with ``phase`` and ``seconds``); a small spec
logs its phases at debug.

Example::

    verdict = verify("rules/pipelines.yml", "rules/custom")   # SpecError if the spec is invalid
    verdict.ok, verdict.problems, verdict.promtool.output
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rules.errors import Problem
from rules.generate import generate
from rules.lint import lint_files
from rules.output import render_all, write_files
from rules.promtool import PromtoolResult, check_rules
from rules.rulefile import RuleFile
from rules.spec import Spec, read_spec, spec_from
from rules.strategies import strategy_problems

__all__ = [
    "PROGRESS_BYTES",
    "Progress",
    "Verdict",
    "custom_rule_files",
    "few_collections",
    "verify",
]

# A spec this large (about 1,000 pipelines) takes seconds: show each phase.
PROGRESS_BYTES = 256 * 1024
_log = logging.getLogger("pipemedic.rules")


class Progress:
    """Log the phases of one command: at info when the work is long, else at debug."""

    def __init__(self, loud: bool) -> None:
        self.level = logging.INFO if loud else logging.DEBUG
        self.started = time.monotonic()

    @classmethod
    def for_spec(cls, path: str | Path) -> Progress:
        """Return a Progress that is loud when the spec file is :data:`PROGRESS_BYTES` or more."""
        try:
            return cls(Path(path).stat().st_size >= PROGRESS_BYTES)
        except OSError:
            return cls(False)

    @contextmanager
    def phase(self, name: str, **fields: object) -> Iterator[None]:
        """Log ``name`` when it starts and, with its duration, when it ends."""
        _log.log(self.level, "%s ...", name, extra={"phase": name, **fields})
        start = time.monotonic()
        yield
        seconds = round(time.monotonic() - start, 3)
        _log.log(
            self.level,
            "%s done in %.1f s",
            name,
            seconds,
            extra={"phase": name, "seconds": seconds, "total_seconds": self.elapsed()},
        )

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)


@contextmanager
def few_collections() -> Iterator[None]:
    """Run Python's cycle collector rarely while loading, generating and linting.

    YAML node graphs and rule dicts are allocated by the hundred thousand and
    hold no cycles; with the default thresholds the collector rescans them
    over and over, which made a 50,000-pipeline spec cost 1.5-2.5x per
    pipeline what a 1,000-pipeline one does (bench/bench_spec_scale.py).
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def custom_rule_files(folder: str | Path) -> list[Path]:
    """Return the hand-written rule files of a folder (``*.rules.yml``)."""
    return sorted(Path(folder).glob("*.rules.yml"))


@dataclass(frozen=True)
class Verdict:
    """What the checks found: the spec, its rule files rendered, problems and promtool's word."""

    spec: Spec
    files: list[RuleFile]
    rendered: dict[str, str]
    custom: list[Path]
    problems: list[Problem]
    promtool: PromtoolResult

    @property
    def ok(self) -> bool:
        return self.promtool.ok and not self.problems


def verify(
    spec_path: str | Path,
    custom: str | Path,
    shown_as: str = "rules/generated",
    progress: Progress | None = None,
) -> Verdict:
    """Run every check on a spec and the custom rules; ``SpecError`` if the spec is invalid.

    ``shown_as`` is the folder generated files are named by in problems.
    """
    with few_collections():
        return _verify(spec_path, custom, shown_as, progress or Progress.for_spec(spec_path))


def _verify(
    spec_path: str | Path, custom: str | Path, shown_as: str, progress: Progress
) -> Verdict:
    with progress.phase("load spec", spec=str(spec_path)):
        doc = read_spec(spec_path)
        spec = spec_from(doc)
    with progress.phase("generate rules", pipelines=len(spec.pipelines)):
        files = generate(spec)
        rendered = render_all(files, spec.source)
    custom_files = custom_rule_files(custom)
    with progress.phase("lint rules", files=len(rendered) + len(custom_files)):
        problems = strategy_problems(doc)
        shown = {f"{shown_as}/{name}": text for name, text in rendered.items()}
        problems += lint_files(custom_files, shown, spec.known_metrics)
    with (
        progress.phase("promtool check rules"),
        tempfile.TemporaryDirectory(prefix="pipemedic-rules-") as tmp,
    ):
        write_files(Path(tmp), rendered)
        result = check_rules([*(Path(tmp) / name for name in sorted(rendered)), *custom_files])
    return Verdict(spec, files, rendered, custom_files, problems, result)
