"""``pipemedic exporter``: serve /metrics, POST /events, OpenLineage and dependency probes.

Example::

    pipemedic exporter --listen 127.0.0.1:9108 --spec rules/pipelines.yml

A bearer token for both POST endpoints comes from ``--bearer-token-file``
or the ``PIPEMEDIC_EXPORTER_TOKEN`` environment variable (never from the
command line, where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from exporters.app import create_app
from exporters.config import DEFAULT_LISTEN, ExporterConfig
from exporters.errors import CardinalityError
from exporters.openlineage import DEFAULT_MAX_DATASETS, DEFAULT_MAX_OPEN_RUNS
from exporters.registry import DEFAULT_MAX_PIPELINES
from pipemedic.address import listen_address
from rules.errors import SpecError
from rules.spec import load_spec

__all__ = ["register"]

_log = logging.getLogger(__name__)
TOKEN_ENV = "PIPEMEDIC_EXPORTER_TOKEN"  # noqa: S105 - the variable name, not a secret


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _run(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"pipemedic exporter: {exc}")
        return 2
    token = os.environ.get(TOKEN_ENV) or None
    if args.bearer_token_file is not None:
        try:
            token = args.bearer_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"pipemedic exporter: --bearer-token-file: {exc}")
            return 2
        if not token:
            print(f"pipemedic exporter: --bearer-token-file {args.bearer_token_file} is empty")
            return 2
    config = ExporterConfig(
        max_pipelines=args.max_pipelines,
        max_body_bytes=args.max_body_bytes,
        multiprocess_dir=args.multiprocess_dir,
        probe_dependencies=not args.no_probes,
        max_datasets=args.max_datasets,
        max_open_runs=args.max_open_runs,
        bearer_token=token,
        expect_listed=args.spec is not None,
    )
    host, port = args.listen
    _log.info("exporter listening", extra={"listen": f"{host}:{port}", "spec": spec.source})
    # no access log: at thousands of events a second it would cost more than the events
    try:
        app = create_app(spec=spec, config=config)
    except CardinalityError as exc:
        print(f"pipemedic exporter: {spec.source}: {exc}")
        return 2
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def register(sub: Any) -> None:
    """Add ``exporter`` to the top-level parser."""
    parser = sub.add_parser(
        "exporter",
        help="serve pipeline metrics, HTTP events and dependency probes",
        description="Serve /metrics, POST /events, POST /api/v1/lineage (OpenLineage), "
        "GET /lineage and /-/healthy for pipelines.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=listen_address(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        help="rules/pipelines.yml: timeouts, dependencies; its pipelines are exported from "
        "start-up as awaiting their first report",
    )
    parser.add_argument(
        "--max-pipelines",
        type=_positive,
        default=DEFAULT_MAX_PIPELINES,
        metavar="N",
        help=f"refuse events for new pipelines beyond N (default {DEFAULT_MAX_PIPELINES})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=ExporterConfig.max_body_bytes,
        metavar="BYTES",
        help="413 for POST bodies above this (default 1 MiB)",
    )
    parser.add_argument(
        "--max-datasets",
        type=_positive,
        default=DEFAULT_MAX_DATASETS,
        metavar="N",
        help=f"OpenLineage datasets tracked at most (default {DEFAULT_MAX_DATASETS})",
    )
    parser.add_argument(
        "--max-open-runs",
        type=_positive,
        default=DEFAULT_MAX_OPEN_RUNS,
        metavar="N",
        help=f"OpenLineage runs remembered at most (default {DEFAULT_MAX_OPEN_RUNS})",
    )
    parser.add_argument(
        "--bearer-token-file",
        type=Path,
        metavar="PATH",
        help=f"require this bearer token on POST endpoints (or set {TOKEN_ENV})",
    )
    parser.add_argument(
        "--multiprocess-dir",
        type=Path,
        help="also serve the snapshots worker processes write here",
    )
    parser.add_argument("--no-probes", action="store_true", help="do not probe dependencies")
    parser.set_defaults(func=_run)
