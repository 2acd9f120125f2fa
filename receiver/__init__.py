"""Alertmanager webhook receiver: intake, worker, incidents, diagnosis, recovery, reports.

The package reads as the flow of one alert (README.md's diagram):

* ``intake/``     ``POST /alerts``: authenticate -> validate -> persist -> ack
* ``worker/``     a fair pool taking persisted events: correlate -> diagnose -> recover
  -> verify -> record
* ``incidents/``  the incident lifecycle and its timeline
* ``diagnosis/``  the cause, with Prometheus evidence
* ``recovery/``   guarded strategies, silences, verification
* ``actions/``    what a recovery step runs (HTTP, command, Python)
* ``store/``      one ``Store`` Protocol; ``sqlite/`` embedded, ``postgres/`` for replicas
* ``report/``     post-mortem, follow-ups, the HTML page, the JSON API, ``pipemedic incidents``

``app``, ``config``, ``cli``, ``keys``, ``metrics``, ``models``, ``plugins`` and
``errors`` are the wiring every part shares. Example::

    from aiohttp import web
    from receiver import create_app, load_config

    web.run_app(create_app(load_config("receiver.yml")), host="127.0.0.1", port=9099)
"""

from __future__ import annotations

from receiver.app import create_app
from receiver.config import DEFAULT_LISTEN, AuthConfig, ReceiverConfig, load_config, parse_config
from receiver.errors import (
    ActionConfigError,
    AuthError,
    ConfigError,
    IllegalTransition,
    IntakeError,
    PayloadError,
    PayloadTooLarge,
    PluginError,
    PluginProblem,
    PrometheusError,
    ReceiverError,
    SilenceError,
    SourceError,
    StoreError,
    StoreUnavailable,
    Unavailable,
)
from receiver.store import Store, open_store

__all__ = [
    "DEFAULT_LISTEN",
    "ActionConfigError",
    "AuthConfig",
    "AuthError",
    "ConfigError",
    "IllegalTransition",
    "IntakeError",
    "PayloadError",
    "PayloadTooLarge",
    "PluginError",
    "PluginProblem",
    "PrometheusError",
    "ReceiverConfig",
    "ReceiverError",
    "SilenceError",
    "SourceError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Unavailable",
    "create_app",
    "load_config",
    "open_store",
    "parse_config",
]
