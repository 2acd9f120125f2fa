"""The storage interface: what the HTTP layer, the worker and the guardrails need.

One Protocol, implemented by ``sqlite/`` (embedded default) and
``postgres/`` (several replicas). Nothing above this line knows which one
it talks to. Every method is a coroutine; a store that cannot do its job
raises ``StoreUnavailable`` (the HTTP layer answers 503 so Alertmanager
retries).

Three groups of methods:

* the durable queue: ``ingest`` (idempotent on (fingerprint, startsAt,
  status), durable when it returns), ``claim_events`` (leased, so work of a
  dead worker is taken again; ``renew_leases`` keeps long work leased),
  ``finish_event``;
* incidents: one open incident per pipeline, with timeline and actions;
* the action ledger (``ActionLedger``): the guardrails' shared state, and
  exactly-once claims of recovery steps across replicas (``renew_action``
  keeps a long step claimed).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from receiver.errors import StoreError, StoreUnavailable
from receiver.models import (
    ActionRecord,
    AlertEvent,
    Incident,
    IngestResult,
    Notification,
    OutboxMessage,
    TimelineEntry,
)

__all__ = ["ActionLedger", "Outbox", "Store", "StoreError", "StoreUnavailable"]


class ActionLedger(Protocol):
    """Recovery steps: exactly-once claims and the history the guardrails read."""

    async def begin_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        """Claim ``(incident_id, step)`` for ``record.worker``; False if already claimed.

        A claim whose lease ran out (its worker died) may be taken again.
        """
        ...

    async def renew_action(self, record: ActionRecord, lease_seconds: float) -> bool:
        """Extend ``record.worker``'s lease on its running step to ``lease_seconds`` from now.

        The step's worker calls it while the action and its verification run,
        so a step that outlives one lease is not taken over while its worker is
        alive. False: the step is no longer running under this worker's claim
        (taken over after a lapsed lease, or ended).
        """
        ...

    async def end_action(self, record: ActionRecord) -> None:
        """Store the outcome of a claimed step (same incident_id and step)."""
        ...

    async def actions_since(
        self, since: datetime, *, pipeline: str | None = None, target: str | None = None
    ) -> Sequence[ActionRecord]:
        """Return actions started at or after ``since``, oldest first, optionally filtered."""
        ...


class Outbox(Protocol):
    """Notifications waiting for delivery (``receiver.notify.delivery``).

    Rows are written by ``create_incident``/``save_incident`` from
    ``incident.outbox``, in the transaction that stores the timeline entries
    causing them. A claim is a lease, as for recovery steps: one worker
    delivers a message; a claim whose lease ran out (its worker died) is taken
    again, which is where at-least-once (a crash between send and record) comes from.
    """

    async def claim_outbox(
        self, worker: str, limit: int, lease_seconds: float
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages to ``worker``, oldest first (attempts counted)."""
        ...

    async def finish_outbox(
        self,
        message: OutboxMessage,
        worker: str,
        outcome: str,
        entry: TimelineEntry,
        retry_at: datetime | None = None,
    ) -> bool:
        """Record an attempt and its timeline ``entry`` in one transaction.

        ``outcome`` ``sent`` or ``given_up`` ends the message; ``failed`` makes it
        due again at ``retry_at``. False (nothing written): ``worker`` no longer
        holds the lease.
        """
        ...

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """Return how many messages wait undelivered and when the oldest was written."""
        ...


class Store(ActionLedger, Outbox, Protocol):
    """Everything the receiver persists.

    ``max_pipeline_locks``: how many pipeline locks this process can hold
    at once while each holder may also take an ``incident_lock`` (``None``: no
    limit); the worker pool starts no more events together than that.
    """

    max_pipeline_locks: int | None

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store can commit a write now."""
        ...

    # durable queue -------------------------------------------------------
    async def ingest(self, notification: Notification) -> IngestResult:
        """Store every alert not seen before; durable (committed) on return."""
        ...

    async def claim_events(self, worker: str, limit: int, lease_seconds: float) -> list[AlertEvent]:
        """Take up to ``limit`` unprocessed events, oldest first, leased to ``worker``."""
        ...

    async def renew_leases(
        self, worker: str, event_ids: Sequence[int], lease_seconds: float
    ) -> set[int]:
        """Extend ``worker``'s leases on unfinished events; return the ids it still holds.

        A worker calls it while it processes events, so work that outlives one
        lease is not claimed and run again by another worker. An id missing
        from the answer was finished or claimed by someone else meanwhile.
        """
        ...

    async def finish_event(self, event_id: int, worker: str) -> None:
        """Mark an event processed."""
        ...

    async def queue_depth(self) -> int:
        """Return how many events wait unprocessed."""
        ...

    # incidents -------------------------------------------------------------
    def pipeline_lock(self, pipeline: str) -> AbstractAsyncContextManager[None]:
        """Serialise work on one pipeline's incident (across replicas where shared)."""
        ...

    def incident_lock(self, incident_id: int) -> AbstractAsyncContextManager[None]:
        """Serialise the read-modify-write of one incident (short; across replicas).

        Unlike ``pipeline_lock``, which automation holds for a whole recovery,
        this is held only around one read and one save, so a person's action
        never waits for a recovery to finish (``receiver.incidents.Lifecycle``).
        """
        ...

    async def open_incident(self, pipeline: str) -> Incident | None:
        """Return the pipeline's incident that is not closed, if any."""
        ...

    async def incident_version(self, incident_id: int) -> int | None:
        """Return the stored incident's ``version`` (its save count), None if it does not exist.

        One small read: a save checks it and reads the whole incident only when
        someone else wrote meanwhile.
        """
        ...

    async def last_incident(self, pipeline: str) -> Incident | None:
        """Return the pipeline's most recent incident in any state (for reopening)."""
        ...

    async def create_incident(self, incident: Incident) -> Incident:
        """Insert an incident (its ``id`` is assigned) and return it."""
        ...

    async def save_incident(self, incident: Incident) -> None:
        """Update an incident's fields, timeline and actions."""
        ...

    async def get_incident(self, incident_id: int) -> Incident | None: ...

    async def approvals_waiting(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Return ``(incident id, pipeline, pending_approval)`` of recovering incidents
        whose step waits for a person (a cheap query: the worker pool asks often)."""
        ...

    async def list_incidents(
        self,
        *,
        state: str | None = None,
        pipeline: str | None = None,
        sev: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Incident]:
        """Return incidents, newest first."""
        ...

    async def incident_sevs(self, states: Collection[str]) -> dict[int, str]:
        """Return the SEV of every incident in one of ``states``, by id (a count, not
        the incidents: the open-incidents gauge's recount reads only this)."""
        ...

    async def close(self) -> None: ...
