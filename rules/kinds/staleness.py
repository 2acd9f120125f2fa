"""PipelineDataStale: the pipeline's output data is older than its ``max_staleness``."""

from __future__ import annotations

from rules.kinds import PIPELINE, template
from rules.kinds.ages import age_kind
from rules.templates import Value

RULES, TESTS = age_kind(
    "staleness",
    "pipeline_last_update_timestamp_seconds",
    summary=template("Pipeline ", PIPELINE, " data is stale"),
    description=template(
        PIPELINE,
        ": output data was last refreshed ",
        Value("humanizeDuration"),
        " ago, longer than its max_staleness.",
    ),
)
