"""The demo's run-specific copy of the spec, and the rules generated from it.

The spec's ``for`` durations and heartbeat timeouts are minutes long; a demo
has seconds. Rather than a second set of rules, the demo writes a copy of
``rules/pipelines.yml`` into its run folder with a timing overlay
(:data:`DEMO_FOR`, :data:`DEMO_HEARTBEAT_TIMEOUT`, replacing every
pipeline's own), points the recovery actions that name the default
simulator address (the exporter's ``127.0.0.1:9108``) at the port this run
really uses, and generates the rules from that copy with the one generator
(:func:`rules.generate.generate`) and a short :class:`~rules.generate.Timing`.
Thresholds, labels, teams and actions are the spec's own.

Example::

    text = demo_spec_text(Path("rules/pipelines.yml").read_text(), "127.0.0.1:40123")
    spec = parse_spec(text, "demo-output/run/pipelines.yml")
    write_rules(spec, Path("demo-output/run/rules"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml
from yarl import URL

from pipemedic.vocabulary import ALERT_KINDS
from rules.generate import Timing, generate
from rules.output import render_all, write_files
from rules.spec import Spec

__all__ = [
    "DEFAULT_CONTROL_ADDRESS",
    "DEMO_FOR",
    "DEMO_HEARTBEAT_TIMEOUT",
    "DEMO_TIMING",
    "demo_spec_text",
    "repoint",
    "write_rules",
]

# Where the spec's demo actions send their requests: the exporter's default port,
# on which the simulator's control routes are mounted.
DEFAULT_CONTROL_ADDRESS: Final = "127.0.0.1:9108"

# Every alert kind's ``for`` in the demo (production: minutes, see rules/pipelines.yml):
# 5s, 10s for the slower signals, 0s where production fires at once.
_SLOWER: Final = {"exporter_down": "10s", "staleness": "10s", "burn_ticket": "10s"}
DEMO_FOR: Final[dict[str, str]] = {
    k.kind: "0s" if k.for_ == "0s" else _SLOWER.get(k.kind, "5s") for k in ALERT_KINDS
}
DEMO_HEARTBEAT_TIMEOUT: Final = "10s"
# Error ratios over 15s (15 scrapes at 1s); no keep_firing_for,
# so an alert resolves as soon as its condition clears.
DEMO_TIMING: Final = Timing(rate_window="15s", keep_firing_for="0s")


def repoint(url: str, address: str, default: str = DEFAULT_CONTROL_ADDRESS) -> str:
    """Return ``url`` aimed at ``address`` if it names ``default``; other URLs unchanged."""
    parsed = URL(url)
    if f"{parsed.host}:{parsed.port}" != default:
        return url
    host, _, port = address.rpartition(":")
    return str(parsed.with_host(host).with_port(int(port)))


def _overlay_pipeline(entry: dict[str, Any], address: str) -> None:
    entry.pop("for", None)
    entry.pop("heartbeat_timeout", None)
    for action in (entry.get("actions") or {}).values():
        http = action.get("http") if isinstance(action, dict) else None
        if isinstance(http, dict) and isinstance(http.get("url"), str):
            http["url"] = repoint(http["url"], address)


def demo_spec_text(
    spec_text: str,
    control_address: str,
    source: str = "rules/pipelines.yml",
    notify: list[dict[str, Any]] | None = None,
) -> str:
    """Return the run-specific spec: demo timing, this run's control address, ``notify``.

    ``notify`` (the demo's local chat and SMTP destinations) replaces every team's own.
    """
    raw = yaml.safe_load(spec_text) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: the spec must be a mapping with defaults/pipelines/teams")
    defaults = raw.get("defaults") or {}
    _overlay_pipeline(defaults, control_address)
    defaults["for"] = dict(DEMO_FOR)
    defaults["heartbeat_timeout"] = DEMO_HEARTBEAT_TIMEOUT
    raw["defaults"] = defaults
    for entry in (raw.get("pipelines") or {}).values():
        if isinstance(entry, dict):
            _overlay_pipeline(entry, control_address)
    for team in (raw.get("teams") or {}).values():
        if isinstance(team, dict) and notify is not None:
            team["notify"] = [dict(d) for d in notify]
    header = (
        f"# Run-specific copy of {source} written by `pipemedic demo`: every `for` and\n"
        f"# heartbeat_timeout replaced by the demo's seconds, demo actions aimed at\n"
        f"# {control_address}, teams notified on the demo's local chat and SMTP server.\n"
        f"# Everything else is the spec's own.\n"
    )
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def write_rules(spec: Spec, folder: Path, timing: Timing = DEMO_TIMING) -> list[Path]:
    """Generate the spec's rules with ``timing`` into ``folder``; return the files."""
    wanted = render_all(generate(spec, timing), spec.source)
    folder.mkdir(parents=True, exist_ok=True)
    write_files(folder, wanted)
    return [folder / name for name in sorted(wanted)]
