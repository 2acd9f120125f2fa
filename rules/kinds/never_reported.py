"""PipelineNeverReported: a pipeline the spec lists has not reported since the exporter started.

A pipeline with no series at all raises nothing else (no ``pipeline_up``,
no staleness), so the exporter started with ``--spec`` exports
``pipeline_awaiting_first_report_timestamp_seconds`` for each listed
pipeline until its first report; this fires once that wait exceeds the
pipeline's ``heartbeat_timeout`` (the spec's "how long without a sign of
life"). A pipeline that reports once and then stops is PipelineDown's.
"""

from __future__ import annotations

from rules.kinds import PIPELINE, template
from rules.kinds.ages import age_kind
from rules.templates import Value

RULES, TESTS = age_kind(
    "never_reported",
    "pipeline_awaiting_first_report_timestamp_seconds",
    summary=template("Pipeline ", PIPELINE, " has never reported"),
    description=template(
        PIPELINE,
        ": listed in the spec, but no run, heartbeat or event for ",
        Value("humanizeDuration"),
        " since the exporter started, longer than its heartbeat_timeout.",
    ),
)
