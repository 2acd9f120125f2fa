"""`pipemedic exporter` arguments: listen address, spec errors, the public API surface."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pipemedic.address import listen_address as parse_listen
from pipemedic.cli import build_parser


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    for bad in ("9108", "host:", ":9108", "host:99999", "host:http"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            parse_listen(bad)


def test_defaults_match_prometheus_yml(repo_root: Path) -> None:
    args = build_parser().parse_args(["exporter"])
    assert args.listen == ("127.0.0.1", 9108)
    assert '"127.0.0.1:9108"' in (repo_root / "prometheus.yml").read_text()
    assert args.max_pipelines == 10_000


def test_a_bad_spec_is_reported_with_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "pipelines.yml"
    spec.write_text("pipelines:\n  etl_orders:\n    heartbeat_timeout: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipemedic", "exporter", "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{spec}:3" in done.stdout and "heartbeat_timeout" in done.stdout


def test_lineage_bounds_and_an_unusable_token_file(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["exporter", "--max-datasets", "5", "--max-open-runs", "7", "--bearer-token-file", "t"]
    )
    assert (args.max_datasets, args.max_open_runs, args.bearer_token_file) == (5, 7, Path("t"))
    empty = tmp_path / "token"
    empty.write_text("\n")
    for path in (empty, tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, "-m", "pipemedic", "exporter", "--bearer-token-file", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "--bearer-token-file" in done.stdout and str(path) in done.stdout


def test_public_api_imports_from_a_clean_interpreter() -> None:
    code = (
        "import exporters; "
        "missing = [n for n in exporters.__all__ if not hasattr(exporters, n)]; "
        "assert not missing, missing; "
        "r = exporters.PipelineRegistry(); p = r.pipeline('x'); p.heartbeat(); "
        "print(len(exporters.Exposition(r).render()) > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
