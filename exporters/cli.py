"""``pipemedic exporter``: serve /metrics, POST /events and dependency probes.

Example::

    pipemedic exporter --listen 127.0.0.1:9108 --spec rules/pipelines.yml
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from exporters.app import create_app
from exporters.config import DEFAULT_LISTEN, ExporterConfig
from exporters.registry import DEFAULT_MAX_PIPELINES
from pipemedic.address import listen_address
from rules.errors import SpecError
from rules.spec import load_spec

__all__ = ["register"]

_log = logging.getLogger(__name__)


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
    config = ExporterConfig(
        max_pipelines=args.max_pipelines,
        max_body_bytes=args.max_body_bytes,
        multiprocess_dir=args.multiprocess_dir,
        probe_dependencies=not args.no_probes,
    )
    host, port = args.listen
    _log.info("exporter listening", extra={"listen": f"{host}:{port}", "spec": spec.source})
    # no access log: at thousands of events a second it would cost more than the events
    app = create_app(spec=spec, config=config)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def register(sub: Any) -> None:
    """Add ``exporter`` to the top-level parser."""
    parser = sub.add_parser(
        "exporter",
        help="serve pipeline metrics, HTTP events and dependency probes",
        description="Serve /metrics, POST /events and /-/healthy for pipelines.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=listen_address(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--spec", type=Path, help="rules/pipelines.yml: timeouts, dependencies")
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
        help="413 for POST /events bodies above this (default 1 MiB)",
    )
    parser.add_argument(
        "--multiprocess-dir",
        type=Path,
        help="also serve the snapshots worker processes write here",
    )
    parser.add_argument("--no-probes", action="store_true", help="do not probe dependencies")
    parser.set_defaults(func=_run)
