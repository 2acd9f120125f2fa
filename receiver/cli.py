"""``pipemedic receiver --listen HOST:PORT [--config receiver.yml] [--spec PATH]`` and
``pipemedic receiver hash-password`` (a password hash for ``people.users``).

Runs the webhook receiver until SIGINT/SIGTERM; on either, it stops accepting,
answers every request already sent (``pipemedic.serve``), and the workers
drain before the store closes. Without ``--config`` the embedded defaults
apply (SQLite in the working folder, no auth, Prometheus at 127.0.0.1:9090);
``--listen`` overrides the file's ``listen`` and ``--spec`` its ``spec:``. With
neither, ``rules/pipelines.yml`` in the working folder is loaded when present;
the start-up log says which spec was loaded, or that there is none.
"""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import sys
from dataclasses import replace
from typing import Any

from pipemedic.address import listen_address, split_host_port
from pipemedic.serve import serve
from receiver.config import DEFAULT_LISTEN, DEFAULT_SPEC, load_config, resolve_spec_path
from receiver.errors import ConfigError, StoreError
from receiver.keys import SPEC
from rules.errors import RulesError
from rules.spec import Spec

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def _say_spec(spec: Spec, path: str | None) -> None:
    """Log which spec the receiver runs with, or what running without one means."""
    if path is None:
        log.warning(
            "no spec: neither --spec nor the config's spec: is set and %s does not exist; "
            "every pipeline gets the built-in defaults (no teams or roles, no recovery "
            "actions: incidents escalate)",
            DEFAULT_SPEC,
        )
        return
    log.info(
        "spec loaded",
        extra={"spec": path, "pipelines": len(spec.pipelines), "teams": len(spec.teams)},
    )


def run(args: argparse.Namespace) -> int:
    """Load the configuration and serve until stopped; 2 on a configuration error."""
    from receiver.app import create_app

    try:
        config = load_config(args.config)
        config = replace(config, spec_path=resolve_spec_path(args.spec, config.spec_path))
        app = create_app(config, drain_seconds=args.drain_seconds)
    except (ConfigError, RulesError) as exc:
        print(f"pipemedic receiver: {exc}", file=sys.stderr)
        return 2
    _say_spec(app[SPEC], config.spec_path)
    host, port = args.listen or split_host_port(config.listen or DEFAULT_LISTEN)
    # The store's writer thread needs the GIL briefly per commit; the default 5 ms
    # switch interval makes every commit wait behind request parsing (a convoy).
    sys.setswitchinterval(0.0005)
    # Everything built so far (modules, the app, its tables) lives as long as the
    # process: keep it out of the cyclic GC's full collections, which otherwise walk
    # it all under load (25..40 ms with the GIL held: every request in flight waits).
    gc.collect()
    gc.freeze()
    log.info("receiver listening", extra={"listen": f"{host}:{port}", "store": config.store_url})
    try:
        serve(
            app,
            host,
            port,
            shutdown_seconds=args.drain_seconds,
            access_log=logging.getLogger("aiohttp.access")
            if logging.getLogger("aiohttp.access").isEnabledFor(logging.INFO)
            else None,
        )
    except StoreError as exc:  # e.g. starting on a full disk: one line, no traceback
        print(f"pipemedic receiver: store {config.store_url}: {exc}", file=sys.stderr)
        return 1
    return 0


def hash_password_command(args: argparse.Namespace) -> int:
    """Print the argon2id hash of a password read from the terminal or stdin."""
    from receiver.people.access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("pipemedic receiver hash-password: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("pipemedic receiver hash-password: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def register(sub: Any) -> None:
    """Add ``receiver`` to the top-level parser."""
    parser = sub.add_parser(
        "receiver",
        help="run the Alertmanager webhook receiver",
        description="Receive Alertmanager notifications, store them durably, run incidents.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=None,
        metavar="HOST:PORT",
        help=f"address to listen on (default: the config's listen, else {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="receiver.yml",
        help="receiver configuration (default: the embedded defaults)",
    )
    parser.add_argument(
        "--spec",
        default=None,
        metavar="PATH",
        help=f"pipelines spec (default: the config's spec:, else ./{DEFAULT_SPEC} if present)",
    )
    tools = parser.add_subparsers(dest="receiver_command", metavar="[hash-password]")
    hashing = tools.add_parser(
        "hash-password",
        help="print an argon2 hash for receiver.yml people.users[].password_hash",
        description="Read a password (prompted twice, or one line on stdin) and print its "
        "argon2id hash for receiver.yml's people.users[].password_hash.",
    )
    hashing.set_defaults(func=hash_password_command)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long in-flight work may take before it is left for restart",
    )
    parser.set_defaults(func=run)
