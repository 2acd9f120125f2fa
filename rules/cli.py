"""`pipemedic rules generate | check | test | diff`: the SRE's loop around rules/pipelines.yml.

Exit codes: 0 all good, 1 problems found (invalid spec, lint or promtool
failures, stale generated files), 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from rules.checks import Verdict, verify
from rules.errors import SpecError
from rules.generate import generate
from rules.output import FORMATS, diff_files, render_all, write_files
from rules.promtool import test_rules
from rules.spec import Spec, load_spec
from rules.unittests import unit_tests

__all__ = ["register"]

DEFAULT_SPEC = "rules/pipelines.yml"
DEFAULT_OUT = "rules/generated"
DEFAULT_CUSTOM = "rules/custom"


def _load(args: argparse.Namespace) -> Spec | None:
    try:
        return load_spec(args.spec)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _verified(args: argparse.Namespace) -> Verdict | None:
    """Run every check of `rules check`; print the problems; None if the spec is invalid."""
    try:
        verdict = verify(args.spec, args.custom, args.out)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    if not verdict.promtool.ok:
        print(verdict.promtool.output, file=sys.stderr)
    for problem in verdict.problems:
        print(problem, file=sys.stderr)
    return verdict


def _generate(args: argparse.Namespace) -> int:
    verdict = _verified(args)
    if verdict is None or not verdict.ok:
        print(f"{args.out}: not written: fix the problems above", file=sys.stderr)
        return 1
    wanted = (
        verdict.rendered
        if args.format == "rules"
        else render_all(verdict.files, verdict.spec.source, args.format)
    )
    changed = write_files(Path(args.out), wanted, args.format)
    for path in changed:
        print(f"wrote {path}" if path.exists() else f"removed {path}")
    if not changed:
        print(f"{args.out}: up to date")
    return 0


def _diff(args: argparse.Namespace) -> int:
    spec = _load(args)
    if spec is None:
        return 1
    wanted = render_all(generate(spec), spec.source, args.format)
    text = diff_files(Path(args.out), wanted, args.format)
    if text:
        sys.stdout.write(text)
        print(
            f"{args.out} is stale: run `pipemedic rules generate --spec {args.spec}`",
            file=sys.stderr,
        )
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    verdict = _verified(args)
    if verdict is None:
        return 1
    summary = (
        f"{args.spec}: {len(verdict.spec.pipelines)} pipelines, "
        f"{sum(len(f.alerts()) for f in verdict.files)} generated alerting rules, "
        f"{len(verdict.custom)} custom rule files: "
    )
    print(
        summary
        + (
            "OK"
            if verdict.ok
            else f"{len(verdict.problems)} lint problems, promtool "
            + ("passed" if verdict.promtool.ok else "failed")
        ),
        file=sys.stdout if verdict.ok else sys.stderr,
    )
    return 0 if verdict.ok else 1


def _test(args: argparse.Namespace) -> int:
    spec = _load(args)
    if spec is None:
        return 1
    with tempfile.TemporaryDirectory(prefix="pipemedic-rules-test-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        wanted = render_all(generate(spec), spec.source)
        write_files(out, wanted)
        tests = unit_tests(spec, sorted(wanted))
        for name, text in tests.items():
            (out / name).write_text(text, encoding="utf-8")
        test_files = [out / name for name in sorted(tests)]
        # custom rule files bring their own tests: *.test.yml next to them
        test_files += sorted(Path(args.custom).glob("*.test.yml"))
        result = test_rules(test_files)
    print(result.output, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    """Add `rules generate | check | test | diff` to the top-level parser."""
    parser = sub.add_parser(
        "rules", help="generate, check, unit-test and diff the Prometheus rules from the spec"
    )
    commands = parser.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)

    def add(name: str, func: Any, help_text: str, out: bool, custom: bool) -> None:
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--spec", default=DEFAULT_SPEC, help=f"the spec (default {DEFAULT_SPEC})")
        if out:
            p.add_argument(
                "--out", default=DEFAULT_OUT, help=f"generated rules folder ({DEFAULT_OUT})"
            )
            p.add_argument(
                "--format",
                default="rules",
                choices=FORMATS,
                help="rules: Prometheus rule files (default); prometheusrule: Kubernetes "
                "PrometheusRule objects for the Prometheus Operator",
            )
        if custom:
            p.add_argument(
                "--custom",
                default=DEFAULT_CUSTOM,
                help=f"hand-written rule files and their tests ({DEFAULT_CUSTOM})",
            )
        p.set_defaults(func=func)
        if name == "test":
            p.add_argument("--keep", help="write the rules and tests here instead of a temp dir")
        if name == "check":
            p.set_defaults(out=DEFAULT_OUT)

    add(
        "generate",
        _generate,
        "run every check of `rules check`, then write rules/generated/*.rules.yml",
        True,
        True,
    )
    add("check", _check, "validate the spec; lint and promtool-check all rules", False, True)
    add("test", _test, "generate promtool unit tests for every alert and run them", False, True)
    add("diff", _diff, "show what generate would change; exit 1 if anything", True, False)
