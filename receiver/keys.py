"""Typed ``web.AppKey`` constants: every resource the app holds, in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from receiver.config import ReceiverConfig
from receiver.intake.handler import Intake
from receiver.metrics import ReceiverMetrics
from receiver.notify.delivery import DeliveryRunner
from receiver.store.base import Store
from receiver.worker.pool import WorkerPool
from rules.spec import Spec

__all__ = ["CONFIG", "HTTP_SESSION", "INTAKE", "METRICS", "NOTIFY", "SPEC", "STORE", "WORKER"]

STORE: web.AppKey[Store] = web.AppKey("store", Store)
SPEC: web.AppKey[Spec] = web.AppKey("spec", Spec)
CONFIG: web.AppKey[ReceiverConfig] = web.AppKey("config", ReceiverConfig)
METRICS: web.AppKey[ReceiverMetrics] = web.AppKey("metrics", ReceiverMetrics)
WORKER: web.AppKey[WorkerPool] = web.AppKey("worker", WorkerPool)
HTTP_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("http_session", aiohttp.ClientSession)
INTAKE: web.AppKey[Intake] = web.AppKey("intake", Intake)
NOTIFY: web.AppKey[DeliveryRunner] = web.AppKey("notify", DeliveryRunner)
