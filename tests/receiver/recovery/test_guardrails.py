"""Each guardrail of the guard stage, with an injected clock and sleep (no real waiting).

The ledger is the guardrails' state: every test runs against the in-memory
fake and against the real ``SqliteStore``. Actions hit a real local HTTP
server; verification asks a real (empty) Prometheus, where no symptom shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ledger_fake import InMemoryLedger
from prometheus_client import CollectorRegistry

from pipemedic.stack import PrometheusServer
from receiver.diagnosis.prometheus import PrometheusAPI
from receiver.models import ActionRecord, Alert, Diagnosis, Incident
from receiver.recovery import Guard, Recoverer, RecoveryConfig, RecoveryMetrics, RecoveryResult
from receiver.store.base import ActionLedger
from receiver.store.sqlite.store import SqliteStore
from receiver.worker.stages import RecoveryRequest
from rules.spec import Spec, parse_spec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeTime:
    """A clock that only moves when recovery sleeps."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer("global: {}\n", workdir=tmp_path_factory.mktemp("guard-prom"))
    with server:
        yield server


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(
    request: pytest.FixtureRequest, time_: FakeTime, tmp_path: Path
) -> AsyncIterator[ActionLedger]:
    if request.param == "memory":
        yield InMemoryLedger(time_.clock)
        return
    store = await SqliteStore.open(tmp_path / "ledger.db", clock=lambda: time_.now.timestamp())
    try:
        yield store
    finally:
        await store.close()


class Target:
    def __init__(self) -> None:
        self.statuses: list[int] = []  # answers to give, in order; then 200
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({}, status=status)


@pytest.fixture
async def target(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[Target, int]]:
    t = Target()
    app = web.Application()
    app.router.add_post("/act", t.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield t, server.port


def spec_for(port: int, **pipeline: Any) -> Spec:
    body = {
        "max_attempts": 3,
        "cooldown": "5m",
        "actions": {"retry_with_backoff": {"http": {"url": f"http://127.0.0.1:{port}/act"}}},
        **pipeline,
    }
    names = ("g_a", "g_b", "g_c", "g_d")
    return parse_spec(json.dumps({"pipelines": dict.fromkeys(names, body)}))


def alert(pipeline: str, status: str = "firing") -> Alert:
    return Alert(
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "PipelineHighErrorRate", "pipeline": pipeline},
        annotations={},
        starts_at=T0,
        ends_at=None,
        fingerprint=pipeline,
    )


DIAGNOSIS = Diagnosis(cause="network_timeout", handler="check_infrastructure", summary="test")


class Harness:
    def __init__(
        self,
        ledger: ActionLedger,
        prometheus: PrometheusServer,
        session: aiohttp.ClientSession,
        time_: FakeTime,
        **config: Any,
    ) -> None:
        settings = {
            "backoff_base_seconds": 1.0,
            "backoff_max_seconds": 8.0,
            "verify_deadline_seconds": 0.0,
            **config,
        }
        self.registry = CollectorRegistry()
        self.ledger = ledger
        self.time = time_
        self.events: list[tuple[int, str, Any]] = []
        self.recoverer = Recoverer(
            RecoveryConfig(**settings),
            ledger,
            PrometheusAPI(prometheus.url, session),
            session,
            clock=time_.clock,
            sleep=time_.sleep,
            metrics=RecoveryMetrics(self.registry),
            rng=random.Random(7),
        )

    async def recover(
        self,
        spec: Spec,
        pipeline: str,
        number: int,
        still_firing: Callable[[], Awaitable[bool]] | None = None,
        status: str = "firing",
    ) -> RecoveryResult:
        async def firing() -> bool:
            return True

        inc = Incident(number, pipeline, "recovering", "SEV3", T0 - timedelta(minutes=1))
        result = await self.recoverer.recover(
            RecoveryRequest(
                inc,
                alert(pipeline, status),
                DIAGNOSIS,
                spec.pipeline(pipeline),
                still_firing or firing,
            )
        )
        self.events += [(number, e.event, e.detail) for e in result.entries]
        return result

    def blocked(self, number: int) -> list[str]:
        return [d["guard"] for n, e, d in self.events if n == number and e == "guardrail_blocked"]

    def blocks(self, guard: str) -> float:
        value = self.registry.get_sample_value(
            "pipemedic_recovery_guardrail_blocks_total", {"guard": guard}
        )
        return value or 0.0


@pytest.fixture
async def harness_factory(
    ledger: ActionLedger, prometheus: PrometheusServer, time_: FakeTime
) -> AsyncIterator[Callable[..., Harness]]:
    async with aiohttp.ClientSession() as session:
        yield lambda **config: Harness(ledger, prometheus, session, time_, **config)


async def test_attempts_cap_with_exponential_backoff_then_escalation(
    harness_factory: Callable[..., Harness], target: tuple[Target, int], time_: FakeTime
) -> None:
    t, port = target
    t.statuses = [503, 503, 503, 503]
    h = harness_factory()
    spec = spec_for(port)
    result = await h.recover(spec, "g_a", 1)
    assert result.outcome == "escalated"
    assert "3 attempt(s) of retry_with_backoff did not clear" in result.reason
    assert t.calls == 3
    assert [a.outcome for a in result.actions] == ["failure"] * 3
    first, second = time_.slept
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0  # base 1s doubling, up to half jitter
    again = await h.recover(spec, "g_a", 1)
    assert again.outcome == "escalated" and "attempts cap reached: 3 of 3" in again.reason
    assert t.calls == 3
    assert h.blocks("attempts") == 1


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    config = RecoveryConfig(backoff_base_seconds=2, backoff_max_seconds=30, backoff_jitter=0.25)
    guard = Guard(config, InMemoryLedger(), lambda: T0, random.Random(1))
    for attempt, full in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]:
        delays = [guard.backoff(attempt) for _ in range(200)]
        assert all(0.75 * full <= d <= full for d in delays)
        assert len(set(delays)) > 100  # jittered, not constant
    exact = Guard(RecoveryConfig(backoff_jitter=0.0), InMemoryLedger(), lambda: T0)
    assert [exact.backoff(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


async def test_per_pipeline_cooldown_blocks_a_new_incident_then_expires(
    harness_factory: Callable[..., Harness], target: tuple[Target, int], time_: FakeTime
) -> None:
    t, port = target
    h = harness_factory()
    spec = spec_for(port)
    assert (await h.recover(spec, "g_a", 1)).outcome == "recovered"
    time_.advance(60)
    second = await h.recover(spec, "g_a", 2)
    assert second.outcome == "escalated" and "cooldown" in second.reason
    assert h.blocked(2) == ["cooldown"]
    assert (await h.recover(spec, "g_b", 3)).outcome == "recovered"  # other pipelines unaffected
    assert t.calls == 2
    time_.advance(300)
    assert (await h.recover(spec, "g_a", 4)).outcome == "recovered"
    assert t.calls == 3


async def test_a_retry_in_the_same_round_is_not_an_earlier_round(tmp_path: Path) -> None:
    """The first attempt began in the round's millisecond: stored, it reads back as earlier.

    (Action times are kept to the millisecond; the round's start has microseconds.
    This flaked the post-mortem e2e test: attempt 2 blocked by attempt 1.)
    """
    store = await SqliteStore.open(tmp_path / "guard.db")
    try:
        round_started = datetime(2026, 1, 1, 12, 0, 0, 472_600, tzinfo=UTC)
        first = ActionRecord(
            incident_id=1,
            step="retry_with_backoff#1",
            pipeline="etl_orders",
            strategy="retry_with_backoff",
            action="http",
            target="http POST http://127.0.0.1:1/restart",
            started_at=round_started + timedelta(microseconds=300),  # .472900
            worker="w",
        )
        assert await store.begin_action(first, 300)
        await store.end_action(
            dataclasses.replace(first, outcome="failure", ended_at=first.started_at)
        )
        stored = (await store.actions_since(round_started - timedelta(seconds=1)))[0]
        assert stored.started_at < round_started  # what the guard has to allow for
        incident = Incident(
            id=1, pipeline="etl_orders", state="recovering", sev="SEV3", opened_at=round_started
        )
        guard = Guard(RecoveryConfig(), store, lambda: round_started + timedelta(seconds=1))
        assert await guard.check(incident, first.target, 300, round_started) is None
        later_round = round_started + timedelta(seconds=2)
        blocked = await guard.check(incident, first.target, 300, later_round)
        assert blocked is not None and blocked.guard == "cooldown"
    finally:
        await store.close()


async def test_global_rate_limit_waits_for_the_window_or_escalates(
    harness_factory: Callable[..., Harness], target: tuple[Target, int], time_: FakeTime
) -> None:
    t, port = target
    spec = spec_for(port)
    h = harness_factory(rate_limit_per_minute=2, admission_wait_seconds=120)
    assert (await h.recover(spec, "g_a", 1)).outcome == "recovered"
    assert (await h.recover(spec, "g_b", 2)).outcome == "recovered"
    start = time_.now
    third = await h.recover(spec, "g_c", 3)
    assert third.outcome == "recovered"
    assert "rate_limit" in h.blocked(3)
    assert time_.now - start >= timedelta(seconds=59)  # waited out the minute
    assert t.calls == 3
    impatient = harness_factory(rate_limit_per_minute=1, admission_wait_seconds=5)
    fourth = await impatient.recover(spec, "g_d", 4)
    assert fourth.outcome == "escalated" and "rate limit" in fourth.reason
    assert t.calls == 3


async def test_concurrency_cap_counts_running_actions_of_any_worker(
    harness_factory: Callable[..., Harness],
    target: tuple[Target, int],
    ledger: ActionLedger,
    time_: FakeTime,
) -> None:
    t, port = target
    spec = spec_for(port)
    elsewhere = ActionRecord(
        incident_id=99,
        step="scale_resources#1",
        pipeline="other",
        strategy="scale_resources",
        action="http",
        target="http POST http://127.0.0.1:1/x",
        started_at=time_.now,
        worker="replica-2",
    )
    assert await ledger.begin_action(elsewhere, 600)
    h = harness_factory(max_concurrent_actions=1, admission_wait_seconds=3)
    blocked = await h.recover(spec, "g_a", 1)
    assert blocked.outcome == "escalated" and "concurrency cap" in blocked.reason
    assert t.calls == 0
    await ledger.end_action(
        ActionRecord(**{**elsewhere.__dict__, "outcome": "success", "ended_at": time_.now})
    )
    assert (await h.recover(spec, "g_b", 2)).outcome == "recovered"
    assert t.calls == 1


async def test_circuit_breaker_opens_per_target_and_half_opens_after_reset(
    harness_factory: Callable[..., Harness], target: tuple[Target, int], time_: FakeTime
) -> None:
    t, port = target
    t.statuses = [500, 500, 500]
    spec = spec_for(port)
    h = harness_factory(circuit_failure_threshold=3, circuit_reset_seconds=120)
    assert (await h.recover(spec, "g_a", 1)).outcome == "escalated"
    assert t.calls == 3
    other = await h.recover(spec, "g_b", 2)
    assert other.outcome == "escalated" and "circuit open" in other.reason
    assert h.blocked(2) == ["circuit_open"] and t.calls == 3
    time_.advance(121)
    assert (await h.recover(spec, "g_c", 3)).outcome == "recovered"
    assert t.calls == 4


async def test_resolved_alerts_never_start_an_action(
    harness_factory: Callable[..., Harness], target: tuple[Target, int]
) -> None:
    t, port = target
    h = harness_factory()
    result = await h.recover(spec_for(port), "g_a", 1, status="resolved")
    assert result.outcome == "skipped" and t.calls == 0


async def test_an_action_in_flight_when_the_alert_resolves_finishes_but_is_not_retried(
    harness_factory: Callable[..., Harness], target: tuple[Target, int]
) -> None:
    t, port = target
    t.statuses = [503]
    answers = iter([True])

    async def still_firing() -> bool:
        return next(answers, False)

    h = harness_factory()
    result = await h.recover(spec_for(port), "g_a", 1, still_firing)
    assert result.outcome == "skipped" and "not retried" in result.reason
    assert t.calls == 1 and [a.outcome for a in result.actions] == ["failure"]


async def test_a_step_is_claimed_exactly_once_across_workers(
    ledger: ActionLedger,
    prometheus: PrometheusServer,
    time_: FakeTime,
    target: tuple[Target, int],
) -> None:
    t, port = target
    spec = spec_for(port)
    async with aiohttp.ClientSession() as session:
        a = Harness(ledger, prometheus, session, time_)
        b = Harness(ledger, prometheus, session, time_)
        results = await asyncio.gather(a.recover(spec, "g_a", 1), b.recover(spec, "g_a", 1))
    assert sorted(r.outcome for r in results) == ["recovered", "skipped"]
    assert t.calls == 1


async def test_the_spec_overrides_the_strategy_and_escalate_means_people(
    harness_factory: Callable[..., Harness], target: tuple[Target, int]
) -> None:
    t, port = target
    h = harness_factory()
    escalate = spec_for(port, recovery={"network_timeout": "escalate"})
    result = await h.recover(escalate, "g_a", 1)
    assert result.outcome == "escalated" and result.strategy is None
    assert "no recovery strategy for cause 'network_timeout'" in result.reason
    unconfigured = spec_for(port, recovery={"network_timeout": "scale_resources"})
    result = await h.recover(unconfigured, "g_b", 2)
    assert result.outcome == "escalated" and result.strategy == "scale_resources"
    assert "pipelines.g_b.actions.scale_resources is not set" in result.reason
    assert t.calls == 0
    assert [e for n, e, _ in h.events if n == 2] == ["strategy"]  # escalated: the lifecycle


async def test_no_attempts_allowed_escalates_without_acting(
    harness_factory: Callable[..., Harness], target: tuple[Target, int]
) -> None:
    t, port = target
    h = harness_factory()
    result = await h.recover(spec_for(port, max_attempts=0), "g_a", 1)
    assert result.outcome == "escalated" and "attempts cap reached: 0 of 0" in result.reason
    assert t.calls == 0


def test_recovery_config_from_mapping_names_the_bad_field() -> None:
    config = RecoveryConfig.from_mapping(
        {
            "dry_run": True,
            "backoff_base_seconds": "500ms",
            "circuit_reset_seconds": 60,
            "max_concurrent_actions": 2,
        }
    )
    assert (config.dry_run, config.backoff_base_seconds, config.circuit_reset_seconds) == (
        True,
        0.5,
        60.0,
    )
    assert RecoveryConfig.from_mapping({}) == RecoveryConfig()
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"max_concurrent_actions": "many"},
            "recovery.max_concurrent_actions: expected an integer",
        ),
        ({"max_concurrent_actions": 0}, "recovery.max_concurrent_actions"),
        ({"dry_run": "yes"}, "recovery.dry_run: expected true or false"),
        ({"verify_deadline_seconds": "soon"}, "recovery.verify_deadline_seconds: 'soon' is not"),
        ({"backoff_jitter": 2}, "recovery.backoff_jitter: must be within 0..1"),
        ({"retries": 3}, "recovery.retries: unknown field"),
        ({"silence_during_recovery": True}, "recovery.alertmanager_url: required"),
        ({"alertmanager_url": "ftp://x"}, "recovery.alertmanager_url: not an http"),
    ]
    for raw, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            RecoveryConfig.from_mapping(raw)
    with pytest.raises(ValueError, match=re.escape("receiver.recovery.dry_run")):
        RecoveryConfig.from_mapping({"dry_run": 1}, where="receiver.recovery")


def test_metrics_live_on_the_registry_they_are_given() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    RecoveryMetrics(a).actions.labels(strategy="retry_with_backoff", outcome="success").inc()
    RecoveryMetrics(b)
    sample = {"strategy": "retry_with_backoff", "outcome": "success"}
    assert a.get_sample_value("pipemedic_recovery_actions_total", sample) == 1
    assert b.get_sample_value("pipemedic_recovery_actions_total", sample) is None
