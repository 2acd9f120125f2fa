"""Builders and stand-in stages for the receiver-core tests (no mocks: plain seams)."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipemedic.stack import ManagedServer
from receiver.config import ReceiverConfig, parse_config
from receiver.models import ActionRecord, Alert, Diagnosis, TimelineEntry, utcnow
from receiver.worker.stages import RecoveryRequest
from rules.spec import PipelineSpec

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count(1)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def alert_doc(
    pipeline: str = "etl_orders",
    *,
    name: str = "PipelineDown",
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    fingerprint: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return one alert as Alertmanager writes it (zero endsAt while firing)."""
    all_labels = {"alertname": name, "pipeline": pipeline, "severity": "critical"}
    all_labels.update(labels or {})
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{name} on {pipeline}"},
        "startsAt": iso(starts),
        "endsAt": iso(ends) if ends else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint or f"{abs(hash((pipeline, name))) % (1 << 64):016x}",
    }


def notification_doc(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Return a version-4 webhook payload around ``alerts``."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    doc: dict[str, Any] = {
        "version": "4",
        "groupKey": f'{{}}:{{pipeline="g{next(_ids)}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pipemedic",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }
    doc.update(extra)
    return doc


def real_world_notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Return a payload with what Alertmanagers 0.25..current really send around ``alerts``.

    A regex-escaped receiver name, ``truncatedAlerts``, ``notification_reason``,
    ``routeLabels`` and an unknown future top-level field.
    """
    return notification_doc(
        *alerts,
        receiver="team\\.data\\-platform|pipemedic.*",
        truncatedAlerts=3,
        notification_reason="repeat_interval",
        routeLabels={"team": "data"},
        newTopLevel=True,
    )


def config(tmp_path: Path, **raw: Any) -> ReceiverConfig:
    """Return a receiver config on a fresh SQLite file; ``raw`` is receiver.yml content."""
    doc: dict[str, Any] = {
        "store": f"sqlite:///{tmp_path / 'receiver.db'}",
        "workers": {"poll_interval_seconds": 0.05},
        "prometheus_url": "http://127.0.0.1:9",
    }
    doc.update(raw)
    return parse_config(doc, "test")


@dataclass
class FakeDiagnose:
    """A diagnosis stage that always names ``cause`` and counts its calls."""

    cause: str = "network_timeout"
    calls: list[Alert] = field(default_factory=list)

    async def __call__(self, alert: Alert, spec: PipelineSpec) -> Diagnosis:
        self.calls.append(alert)
        return Diagnosis(cause=self.cause, handler="fake", summary=f"fake says {self.cause}")


@dataclass(frozen=True)
class FakeResult:
    outcome: str
    strategy: str | None
    actions: tuple[ActionRecord, ...]
    reason: str
    entries: tuple[TimelineEntry, ...] = ()
    busy_until: datetime | None = None
    attempts: int = 1
    approval: dict[str, Any] | None = None


@dataclass
class FakeRecover:
    """A recovery stage answering ``outcome``; one timeline entry per call."""

    outcome: str = "recovered"
    calls: list[tuple[int, str]] = field(default_factory=list)
    clock: Callable[[], datetime] = utcnow

    async def __call__(self, request: RecoveryRequest) -> FakeResult:
        self.calls.append((request.incident.id, request.alert.fingerprint))
        entry = TimelineEntry(
            self.clock(), "recovery_attempt", {"strategy": "retry_with_backoff", "attempt": 1}
        )
        return FakeResult(self.outcome, "retry_with_backoff", (), f"fake {self.outcome}", (entry,))


@dataclass
class FakeFiring:
    firing: bool | None = False

    async def __call__(self, alert: Alert) -> bool | None:
        return self.firing


def stages(**kwargs: Any) -> dict[str, Any]:
    """Return ``create_app`` keyword arguments that swap in the fake stages."""
    diagnose = kwargs.get("diagnose") or FakeDiagnose()
    recover = kwargs.get("recover") or FakeRecover()
    return {
        "diagnose": diagnose,
        "recover": lambda *_args: recover,
        "firing": kwargs.get("firing") or FakeFiring(),
    }


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Clock:
    """A settable clock for the lifecycle and the pool (``clock.now = later(60)``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# An Alertmanager routing every alert, grouped by pipeline, to ``{url}`` (with resolutions).
ALERTMANAGER_TO_RECEIVER = """
route:
  receiver: pipemedic
  group_by: [pipeline]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: pipemedic
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


async def until(
    check: Callable[[], Any],
    what: str = "the condition",
    deadline: float = 90.0,
    *,
    every: float = 0.05,
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy and return that;
    fail after a generous deadline naming ``what`` and the last answer (real servers
    answer late; a deadline, never a timed assertion)."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"not reached within {deadline:.0f}s: {what}; last: {last}")


class ReceiverProcess(ManagedServer):
    """``pipemedic receiver`` in a process of its own on ``config`` (receiver.yml text).

    Replicas share ``workdir`` (each its own ``<name>.yml`` and ``<name>.log``) and a
    store; ``start`` returns once ``/-/ready`` answers, or fails with the log's end.
    """

    def __init__(self, name: str, workdir: Path, config: str) -> None:
        self._name = name
        self.config = config
        super().__init__(workdir)
        self.config_path = self.workdir / f"{name}.yml"

    @property
    def name(self) -> str:
        return self._name

    def prepare(self) -> None:
        self.config_path.write_text(self.config)

    def argv(self) -> Sequence[str]:
        return [
            *(sys.executable, "-m", "pipemedic", "receiver", "--config", str(self.config_path)),
            *("--listen", self.address),
        ]

    def popen_kwargs(self) -> dict[str, Any]:
        return {"env": {**os.environ, "PYTHONUNBUFFERED": "1"}}

    def stop(self, timeout: float = 30.0) -> None:
        """Stop like any server, giving in-flight work 30 s to drain."""
        super().stop(timeout)
