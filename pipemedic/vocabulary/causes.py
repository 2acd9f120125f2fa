"""The causes diagnosis names, one row each: what it is, how it recovers, how it is verified.

The exporter labels ``pipeline_errors_total`` with ``category`` and
``reason``; diagnosis turns the reasons it finds in Prometheus into causes;
recovery turns a cause into its default strategy (the spec's ``recovery:``
may override it) or escalates, saying why; verification asks the cause's
symptom queries until they are empty; the post-mortem says how to prevent
it. Adding a cause is one :class:`Cause` row in :data:`CAUSES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "CATEGORIES",
    "CAUSES",
    "CAUSE_NAMES",
    "DEFAULT_RECOVERY",
    "REASONS",
    "REASON_CAUSE",
    "Category",
    "Cause",
    "Symptom",
    "category_of_reason",
    "cause",
]


class Category(StrEnum):
    """The runbook's four incident kinds (the ``category`` label everywhere)."""

    CONNECTIVITY = "connectivity"
    DATA = "data"
    RESOURCES = "resources"
    LOGIC = "logic"


CATEGORIES: Final = tuple(c.value for c in Category)


@dataclass(frozen=True)
class Symptom:
    """A query that returns series while the condition persists, beyond new errors.

    ``signal`` names a per-pipeline query of the receiver (its verifier's
    ``SIGNALS`` table maps it to a builder and a threshold); the symptom is
    present while ``signal op threshold`` returns a series.
    """

    signal: str
    op: str
    note: str


@dataclass(frozen=True)
class Cause:
    """One diagnosed cause.

    ``reasons``: the ``reason`` label values that point to it (new errors of
    them mean it is still there); ``strategy``: the default recovery, or
    ``None`` with ``escalation`` saying why people must act; ``symptoms``:
    what else must clear before a recovery counts as verified; ``prevent``:
    the post-mortem's "what to prevent"; ``origin``: for human or process
    errors, the change that introduced it.
    """

    name: str
    category: Category | None
    reasons: tuple[str, ...] = ()
    strategy: str | None = None
    escalation: str = ""
    symptoms: tuple[Symptom, ...] = ()
    prevent: str = ""
    origin: str | None = None

    def __post_init__(self) -> None:
        if (self.strategy is None) == (not self.escalation):
            raise ValueError(f"cause {self.name!r}: give a strategy or an escalation reason")


_NO_AUTOMATION = "no automatic action can fix it: people must"

CAUSES: Final[tuple[Cause, ...]] = (
    # connectivity: APIs down, timeouts, rate limits, expired credentials
    Cause(
        "network_timeout",
        Category.CONNECTIVITY,
        ("timeout",),
        "retry_with_backoff",
        prevent="review the dependency's timeouts and retry budget",
    ),
    Cause(
        "rate_limited",
        Category.CONNECTIVITY,
        ("rate_limited",),
        "retry_with_backoff",
        prevent="throttle requests below the dependency's rate limit",
    ),
    Cause(
        "dependency_down",
        Category.CONNECTIVITY,
        ("connection_error", "dependency_down"),
        "retry_with_backoff",
        symptoms=(Symptom("dependency_up", "==", "dependency probe down"),),
        prevent="ask the dependency's owners for an availability objective",
    ),
    Cause(
        "credential_expired",
        Category.CONNECTIVITY,
        ("auth_expired",),
        "refresh_credentials",
        prevent="alert on credential expiry before it happens and rotate automatically",
    ),
    # data: corrupt records, schema changes, volumes over capacity
    Cause(
        "data_corruption",
        Category.DATA,
        ("corrupt_record", "failed_assertion"),  # failed_assertion: a data-quality test failed
        "rollback_to_checkpoint",
        prevent="validate records at ingestion and quarantine bad ones",
    ),
    Cause(
        "schema_change",
        Category.DATA,
        ("schema_change",),
        "rollback_to_checkpoint",
        prevent="agree a schema contract with the producer and test it in CI",
    ),
    Cause(
        "volume_exceeded",
        Category.DATA,
        ("volume_exceeded",),
        "scale_resources",
        prevent="capacity-plan for peak volumes and alert on growth",
    ),
    # resources: memory, CPU, disk
    Cause(
        "memory_limit",
        Category.RESOURCES,
        ("out_of_memory",),
        "scale_resources",
        symptoms=(Symptom("memory_ratio", ">=", "memory at its limit"),),
        prevent="right-size the memory limit and process data in bounded batches",
    ),
    Cause(
        "cpu_saturation",
        Category.RESOURCES,
        ("cpu_saturation",),
        "scale_resources",
        symptoms=(Symptom("cpu_ratio", ">=", "CPU saturated"),),
        prevent="right-size CPU and spread heavy runs over time",
    ),
    Cause(
        "disk_full",
        Category.RESOURCES,
        ("disk_full",),
        "scale_resources",
        symptoms=(Symptom("disk_free", "<", "disk nearly full"),),
        prevent="alert on disk free space earlier and clean up old outputs",
    ),
    # logic: bugs, bad configuration
    Cause(
        "logic_error",
        Category.LOGIC,
        ("bug",),
        escalation=f"a bug in the pipeline's code; {_NO_AUTOMATION} fix and deploy",
        prevent="add a regression test for the bug before the fix",
        origin="a code change",
    ),
    Cause(
        "config_error",
        Category.LOGIC,
        ("config",),
        escalation=f"a wrong configuration; {_NO_AUTOMATION} correct it",
        prevent="validate configuration changes before they are deployed",
        origin="a configuration change",
    ),
    # read from liveness, run and resource evidence rather than an error reason
    Cause(
        "process_stopped",
        Category.RESOURCES,
        strategy="retry_with_backoff",  # start it again
        prevent="find why the process stopped (logs, exit code) and supervise it",
    ),
    Cause(
        "exporter_down",
        Category.CONNECTIVITY,
        escalation="the metrics path is down, not necessarily the pipeline; no action can be "
        "verified until the exporter is scraped again",
        prevent="run the exporter under a supervisor and alert on its own health",
    ),
    Cause(
        "run_hung",
        Category.RESOURCES,
        escalation="a hung run still holds its inputs and locks; starting another beside it "
        "risks double writes, so a person stops it first",
        prevent="give runs a timeout so a hung run fails instead of waiting forever",
    ),
    Cause(
        "not_scheduled",
        Category.LOGIC,
        strategy="retry_with_backoff",  # start the run the scheduler missed
        symptoms=(Symptom("since_run_start", ">", "no run started within the verify window"),),
        prevent="alert when a scheduled run does not start; check the scheduler after deploys",
        origin="a scheduler or deployment change",
    ),
    Cause(
        "upstream_stale",
        Category.DATA,
        escalation="the input is stale upstream; the upstream's own incident recovers it, and "
        "rerunning this pipeline on old input changes nothing",
        prevent="agree a freshness objective with the upstream's owners",
    ),
    Cause(
        "upstream_failure",
        None,
        escalation="an upstream pipeline has an open incident: recovering the upstream is what "
        "fixes this one, so this pipeline's alert joins the upstream's incident as downstream "
        "impact and no recovery runs here",
        prevent="agree a freshness objective with the upstream's owners and subscribe to "
        "their incidents",
    ),
    Cause(
        "resource_contention",
        Category.RESOURCES,
        strategy="scale_resources",
        symptoms=(Symptom("run_slowdown", ">=", "its runs still slow against their baseline"),),
        prevent="stagger the schedules of pipelines sharing a host, or give them resources "
        "of their own",
    ),
    Cause(
        "dependency_slow",
        Category.CONNECTIVITY,
        escalation="the dependency is outside the pipeline; retrying adds load to it, so its "
        "owners must act",
        prevent="ask the dependency's owners for a latency objective and set timeouts below it",
    ),
    Cause(
        "run_slow",
        Category.RESOURCES,
        escalation="nothing outside the run explains it (resources, volume and dependencies "
        "look as usual): the code or its query plan needs a person",
        prevent="profile the run and check its duration in CI",
    ),
    Cause(
        "sla_too_tight",
        Category.LOGIC,
        escalation="the run took as long as usual: the sla is what to change, a decision "
        "for people",
        prevent="set the sla from the runs' observed durations",
        origin="an sla set tighter than the runs have ever been",
    ),
    Cause(
        "unknown",
        None,
        escalation="diagnosis found no cause in the evidence: people must find it",
    ),
)

_BY_NAME: Final[Mapping[str, Cause]] = MappingProxyType({c.name: c for c in CAUSES})
CAUSE_NAMES: Final = tuple(_BY_NAME)

# reason label value -> (category, diagnosed cause)
REASON_CAUSE: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {r: (str(c.category), c.name) for c in CAUSES if c.category is not None for r in c.reasons}
)
REASONS: Final = tuple(REASON_CAUSE)

# cause -> default strategy; a cause missing here escalates
DEFAULT_RECOVERY: Final[Mapping[str, str]] = MappingProxyType(
    {c.name: c.strategy for c in CAUSES if c.strategy is not None}
)


def cause(name: str) -> Cause | None:
    """Return the row of a cause, or None for one no table names (a plugin's)."""
    return _BY_NAME.get(name)


def category_of_reason(reason: str) -> str | None:
    """Return the category a known reason belongs to, or None for a custom reason."""
    found = REASON_CAUSE.get(reason)
    return found[0] if found else None
