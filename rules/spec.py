"""Load and validate ``rules/pipelines.yml``: defaults, pipelines, teams.

The spec is the one configuration every part reads: the rule generator
(thresholds), the exporter (dependencies to probe, heartbeat timeouts) and
the receiver (teams and roles, recovery mapping, actions). It is validated
against ``rules/schema/pipelines.schema.json``; every problem is reported at
once with file, line and field path.

Example::

    spec = load_spec("rules/pipelines.yml")
    spec.pipeline("etl_orders").sla_seconds        # override or default
    spec.pipeline("not_in_spec").max_error_rate    # defaults cover it
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from pipemedic.vocabulary import ALERT_KINDS, DEFAULT_RECOVERY
from rules.durations import parse_duration
from rules.errors import Problem, SpecError, YamlError
from rules.people import Destination, Person, parse_destinations, parse_person, url_problem
from rules.upstream import OpenLineageSpec, openlineage_spec, upstream_problems
from rules.yamlpos import MAX_BYTES, Loaded, dotted, line_of, load_yaml, too_large

__all__ = [
    "BUILTIN_DEFAULTS",
    "SCHEMA_PATH",
    "Dependency",
    "DiagnosisThresholds",
    "PipelineSpec",
    "Slo",
    "Spec",
    "Team",
    "load_document",
    "load_spec",
    "parse_spec",
    "read_spec",
    "spec_from",
]

SCHEMA_PATH = Path(__file__).with_name("schema") / "pipelines.schema.json"

# What a spec with an empty ``defaults:`` means. Values from the runbook:
# error_rate > 0.05, last_update > 4h.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "sla": "1h",
    "max_error_rate": 0.05,
    "max_staleness": "4h",
    "heartbeat_timeout": "5m",
    "impact": "some",
    "team": "data-platform",
    "runbook_url": "https://runbooks.pipemedic.dev/pipelines",
    "for": {k.kind: k.for_ for k in ALERT_KINDS},
    "keep_firing_for": {k.kind: k.keep_firing_for or "0s" for k in ALERT_KINDS},
    "rate_window": "5m",
    "volume_min_ratio": 0.5,
    "volume_max_ratio": 2.0,
    "volume_window": "1d",
    "max_attempts": 3,
    "cooldown": "5m",
    "dry_run": False,
    "diagnosis": {
        "memory_ratio": 0.9,
        "cpu_ratio": 0.9,
        "disk_free_bytes": 1024**3,
        "slow_ratio": 1.5,
        "volume_ratio": 2.0,
        "baseline": "1d",
        "contention_pipelines": 2,
    },
}


@dataclass(frozen=True)
class Team:
    """The people of a team, by incident role (commander, scribe, liaison, SMEs)."""

    name: str
    commander: str | None = None
    scribe: str | None = None
    liaison: str | None = None
    sme: tuple[str, ...] = ()
    people: Mapping[str, Person] = field(default_factory=dict)
    notify: tuple[Destination, ...] = ()
    page_sev: str | None = None

    def person(self, name: str | None) -> Person | None:
        """Return the contact details of a role holder named in this team (name only if bare)."""
        if not name:
            return None
        return self.people.get(name) or Person(name=name)

    def roles(self) -> dict[str, Any]:
        """Return the roles as a JSON-ready mapping."""
        return {
            "commander": self.commander,
            "scribe": self.scribe,
            "liaison": self.liaison,
            "sme": list(self.sme),
        }


@dataclass(frozen=True)
class Dependency:
    """An upstream the exporter probes: ``kind`` is ``http`` or ``tcp``."""

    name: str
    kind: str
    target: str
    interval_seconds: float = 15.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class Slo:
    """An availability objective over a window; burn-rate tiers can be switched off."""

    objective: float
    window: str = "28d"
    page: bool = True
    ticket: bool = True

    @property
    def error_budget(self) -> float:
        """Return the allowed error ratio, rounded (0.995 gives 0.005, not 0.00500...044)."""
        return round(1.0 - self.objective, 12)


@dataclass(frozen=True)
class DiagnosisThresholds:
    """The numbers diagnosis judges a pipeline's evidence by (the spec's ``diagnosis:``).

    Recovery verification uses the same numbers, so "memory at its limit"
    means one thing from the diagnosis to the check that it cleared. A run,
    its records and a dependency probe are compared with their mean over
    ``baseline`` (the recent runs).
    """

    memory_ratio: float = 0.9
    cpu_ratio: float = 0.9
    disk_free_bytes: float = 1024**3
    slow_ratio: float = 1.5
    volume_ratio: float = 2.0
    baseline: str = "1d"
    contention_pipelines: int = 2


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline's settings after merging its overrides onto the defaults."""

    name: str
    sla: str
    max_error_rate: float
    max_staleness: str
    heartbeat_timeout: str
    impact: str
    team: str
    runbook_url: str
    for_: Mapping[str, str]
    severity: Mapping[str, str] = field(default_factory=dict)
    keep_firing_for: Mapping[str, str] = field(default_factory=dict)
    rate_window: str = "5m"
    volume_min_ratio: float = 0.5
    volume_max_ratio: float = 2.0
    volume_window: str = "1d"
    slo: Slo | None = None
    dependencies: tuple[Dependency, ...] = ()
    recovery: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_attempts: int = 3
    cooldown: str = "5m"
    dry_run: bool = False
    description: str = ""
    overrides: frozenset[str] = frozenset()
    diagnosis: DiagnosisThresholds = DiagnosisThresholds()
    upstream: tuple[str, ...] = ()
    approval: str = "none"  # "required": every step waits for a person (per strategy: actions)

    @property
    def sla_seconds(self) -> float:
        return parse_duration(self.sla)

    @property
    def max_staleness_seconds(self) -> float:
        return parse_duration(self.max_staleness)

    @property
    def rate_window_seconds(self) -> float:
        return parse_duration(self.rate_window)

    @property
    def slo_error_budget(self) -> float:
        """Return the SLO's error budget; 0 without an SLO (no burn-rate alerts)."""
        return self.slo.error_budget if self.slo is not None else 0.0

    @property
    def heartbeat_timeout_seconds(self) -> float:
        return parse_duration(self.heartbeat_timeout)

    @property
    def cooldown_seconds(self) -> float:
        return parse_duration(self.cooldown)

    def needs_approval(self, strategy: str) -> bool:
        """Whether a step of ``strategy`` waits for a person's approval before it runs."""
        action = self.actions.get(strategy) or {}
        return (action.get("approval") or self.approval) == "required"

    def strategy_for(self, cause: str) -> str | None:
        """Return the recovery strategy for a diagnosed cause, or None to escalate.

        The spec's ``recovery:`` overrides the cause's default
        (:data:`pipemedic.vocabulary.DEFAULT_RECOVERY`).
        """
        strategy = self.recovery.get(cause, DEFAULT_RECOVERY.get(cause))
        return None if strategy in (None, "escalate") else strategy


@dataclass(frozen=True)
class Spec:
    """The whole spec: resolved pipelines, the defaults, teams and where it came from."""

    defaults: PipelineSpec
    pipelines: Mapping[str, PipelineSpec]
    teams: Mapping[str, Team]
    source: str = "<builtin>"
    openlineage: OpenLineageSpec = field(default_factory=OpenLineageSpec)
    # metric names or regexes that exist besides pipemedic's own (custom rules may use them)
    known_metrics: tuple[str, ...] = ()

    def pipeline(self, name: str) -> PipelineSpec:
        """Return a pipeline's settings; a pipeline not in the spec gets the defaults."""
        found = self.pipelines.get(name)
        if found is not None:
            return found
        return _with_name(self.defaults, name)

    def team(self, name: str) -> Team | None:
        return self.teams.get(name)


def _with_name(p: PipelineSpec, name: str) -> PipelineSpec:
    from dataclasses import replace

    return replace(p, name=name, overrides=frozenset())


@cache
def _validator() -> jsonschema.Draft202012Validator:
    """Return the schema's validator, the alert kinds filled in from the vocabulary."""
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["$defs"]["alertKind"]["enum"] = [k.kind for k in ALERT_KINDS]
    return jsonschema.Draft202012Validator(schema)


_dotted = dotted
_line_of = line_of


class _LazyIndex(Mapping[tuple[str | int, ...], int]):
    """A loaded document's field path -> line, composed only when a problem needs a line."""

    def __init__(self, doc: Loaded) -> None:
        self._doc = doc

    def __getitem__(self, key: tuple[str | int, ...]) -> int:
        return self._doc.index[key]

    def __iter__(self) -> Iterator[tuple[str | int, ...]]:
        return iter(self._doc.index)

    def __len__(self) -> int:
        return len(self._doc.index)


def _schema_message(error: jsonschema.ValidationError) -> str:
    validator = error.validator
    value = error.instance
    if validator == "pattern" and isinstance(error.schema, Mapping):
        ref_hint = error.schema.get("pattern", "")
        if "\\d+y" in str(ref_hint):
            return f"{value!r} is not a Prometheus duration (e.g. 30s, 5m, 1h30m, 4h, 7d)"
        return f"{value!r} does not match {ref_hint!r}"
    if validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown field")
    return error.message


def load_document(text: str, source: str = "<string>") -> Loaded:
    """Load spec YAML text within the YAML limits (rules.yamlpos); ``SpecError`` if refused."""
    try:
        return load_yaml(text, source)
    except YamlError as exc:
        raise SpecError(exc.problems) from None


def read_spec(path: str | Path) -> Loaded:
    """Read and load a spec file; a file over the size limit is refused before it is read."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise SpecError([Problem(str(path), 0, "", too_large(size, MAX_BYTES))])
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(str(path), 0, "", f"cannot read: {exc}")]) from None
    return load_document(text, str(path))


def parse_spec(text: str, source: str = "<string>") -> Spec:
    """Parse spec YAML text; ``SpecError`` lists every problem with line and path."""
    return spec_from(load_document(text, source))


def spec_from(doc: Loaded) -> Spec:
    """Validate a loaded spec document and build the Spec; ``SpecError`` lists every problem."""
    source = doc.source
    raw = doc.data if doc.data is not None else {}
    if not isinstance(raw, dict):
        raise SpecError(
            [Problem(source, 1, "", "the spec must be a mapping with defaults/pipelines/teams")]
        )
    index = _LazyIndex(doc)
    problems: list[Problem] = []
    for error in _validator().iter_errors(raw):
        path = tuple(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path or (
            error.validator == "pattern"
            and isinstance(error.instance, str)
            and path
            and str(path[-1]) == error.instance
        ):
            # a bad key: jsonschema reports the parent; name the key itself
            key = error.instance
            path = (*path, key) if not path or path[-1] != key else path
        if (
            error.validator == "additionalProperties"
            and isinstance(error.instance, Mapping)
            and isinstance(error.schema, Mapping)
            and "properties" in error.schema
        ):
            # name each unknown key at its own line, with the fields that are allowed
            known = error.schema["properties"]
            for key in error.instance:
                if key not in known:
                    where = (*path, str(key))
                    problems.append(
                        Problem(
                            source,
                            _line_of(index, where),
                            _dotted(where),
                            f"unknown field {key!r} (known: {', '.join(sorted(known))})",
                        )
                    )
            continue
        problems.append(
            Problem(source, _line_of(index, path), _dotted(path), _schema_message(error))
        )
    problems.extend(_semantic_problems(raw, index, source))
    problems.extend(upstream_problems(raw, index, source))
    problems.extend(_template_problems(raw, index, source))
    if problems:
        raise SpecError(problems)
    return _build(raw, source)


# Fields of the rules every pipeline shares (one recording, one alert per kind).
_DEFAULTS_ONLY = ("rate_window", "keep_firing_for", "volume_window")


def _effective(raw: Mapping[str, Any], entry: Mapping[str, Any], key: str) -> Any:
    """Return a field as the entry resolves it: its own, else the defaults', else built in."""
    defaults = raw.get("defaults")
    if key in entry:
        return entry[key]
    if isinstance(defaults, Mapping) and key in defaults:
        return defaults[key]
    return BUILTIN_DEFAULTS.get(key)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _semantic_problems(
    raw: Mapping[str, Any], index: Mapping[tuple[str | int, ...], int], source: str
) -> list[Problem]:
    """Check what JSON Schema cannot: references between sections, numbers in range."""
    problems: list[Problem] = []
    # the schema names a section of the wrong type; only look into the right ones
    teams = _mapping(raw.get("teams"))
    problems += _team_problems(teams, index, source)
    sections: list[tuple[tuple[str | int, ...], Any]] = [(("defaults",), raw.get("defaults"))]
    sections += [(("pipelines", name), p) for name, p in _mapping(raw.get("pipelines")).items()]
    for path, entry in sections:
        if not isinstance(entry, Mapping):
            continue
        team = entry.get("team")
        if isinstance(team, str) and teams and team not in teams:
            where = (*path, "team")
            problems.append(
                Problem(
                    source,
                    _line_of(index, where),
                    _dotted(where),
                    f"team {team!r} is not defined under teams: ({', '.join(sorted(teams))})",
                )
            )
        if path != ("defaults",):
            for key in _DEFAULTS_ONLY:
                if key in entry:
                    where = (*path, key)
                    problems.append(
                        Problem(
                            source,
                            _line_of(index, where),
                            _dotted(where),
                            f"{key} is shared by every pipeline's rules: set it under defaults",
                        )
                    )
        low, high = (
            _effective(raw, entry, key) for key in ("volume_min_ratio", "volume_max_ratio")
        )
        own = "volume_min_ratio" in entry or "volume_max_ratio" in entry
        if own and isinstance(low, int | float) and isinstance(high, int | float) and low >= high:
            where = (*path, "volume_min_ratio")
            problems.append(
                Problem(
                    source,
                    _line_of(index, where),
                    _dotted(where),
                    f"volume_min_ratio {low:g} must be below volume_max_ratio {high:g}",
                )
            )
        rate = entry.get("max_error_rate")
        if isinstance(rate, float) and math.isnan(rate):
            where = (*path, "max_error_rate")
            problems.append(
                Problem(source, _line_of(index, where), _dotted(where), "NaN is not a ratio")
            )
    known = raw.get("known_metrics")
    for i, entry in enumerate(known if isinstance(known, list) else ()):
        if isinstance(entry, str):
            try:
                re.compile(entry)
            except re.error as exc:
                where = ("known_metrics", i)
                problems.append(
                    Problem(
                        source,
                        _line_of(index, where),
                        _dotted(where),
                        f"{entry!r} is neither a metric name nor a valid regex: {exc}",
                    )
                )
    return problems


# Text the generator copies into alert labels and annotations, where Prometheus
# expands Go templates: a ``{{`` there would run any PromQL (issue 21).
_TEMPLATE_START = "{{"


def _template_problems(
    raw: Mapping[str, Any], index: Mapping[tuple[str | int, ...], int], source: str
) -> list[Problem]:
    """Refuse ``{{`` in every key and string of the spec outside ``actions`` (receiver-only).

    Refusing everywhere rather than per field keeps fields added later safe:
    whatever the generator copies into a rule can never carry a template.
    """
    problems: list[Problem] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _TEMPLATE_START in value:
                problems.append(
                    Problem(
                        source,
                        _line_of(index, path),
                        _dotted(path),
                        f"{value!r} contains '{{{{': spec text is copied into alert labels "
                        "and annotations, where Prometheus expands templates (any PromQL "
                        "could run); write it without '{{'",
                    )
                )
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                where = (*path, str(key))
                if _TEMPLATE_START in str(key):
                    stack.append((where, str(key)))
                if not (key == "actions" and path[:1] in (("defaults",), ("pipelines",))):
                    stack.append((where, sub))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))
    return problems


def _team_problems(
    teams: Any, index: Mapping[tuple[str | int, ...], int], source: str
) -> list[Problem]:
    """Refuse the retired ``channel`` and URLs no apprise plugin takes."""
    problems: list[Problem] = []
    for name, team in teams.items() if isinstance(teams, Mapping) else ():
        if not isinstance(team, Mapping):
            continue
        if "channel" in team:
            where: tuple[str | int, ...] = ("teams", name, "channel")
            problems.append(
                Problem(
                    source,
                    _line_of(index, where),
                    _dotted(where),
                    "channel was replaced by notify: a list of apprise URLs, e.g. "
                    "notify: [{url: 'slack://${SLACK_TOKEN}/#data-incidents'}]",
                )
            )
        for i, dest in enumerate(team.get("notify") or ()):
            url = dest.get("url") if isinstance(dest, Mapping) else None
            problem = url_problem(url) if isinstance(url, str) else None
            if problem is not None:
                where = ("teams", name, "notify", i, "url")
                problems.append(Problem(source, _line_of(index, where), _dotted(where), problem))
    return problems


def _team(name: str, raw: Mapping[str, Any]) -> Team:
    people = [parse_person(raw[r]) for r in ("commander", "scribe", "liaison") if raw.get(r)]
    sme = [parse_person(p) for p in raw.get("sme") or ()]
    named = {p.name: p for p in [*people, *sme] if p.email or p.chat}

    def who(role: str) -> str | None:
        return parse_person(raw[role]).name if raw.get(role) else None

    return Team(
        name=name,
        commander=who("commander"),
        scribe=who("scribe"),
        liaison=who("liaison"),
        sme=tuple(p.name for p in sme),
        people=named,
        notify=parse_destinations(name, raw.get("notify")),
        page_sev=raw.get("page_sev"),
    )


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if key in (
            "for",
            "keep_firing_for",
            "severity",
            "recovery",
            "actions",
            "diagnosis",
        ) and isinstance(value, Mapping):
            merged[key] = {**(base.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def _resolve(name: str, d: Mapping[str, Any], overrides: frozenset[str]) -> PipelineSpec:
    slo_raw = d.get("slo")
    deps = tuple(
        Dependency(
            name=dep["name"],
            kind="http" if "http" in dep else "tcp",
            target=dep.get("http") or dep["tcp"],
            interval_seconds=parse_duration(dep.get("interval", "15s")),
            timeout_seconds=parse_duration(dep.get("timeout", "5s")),
        )
        for dep in d.get("dependencies") or ()
    )
    return PipelineSpec(
        name=name,
        sla=d["sla"],
        max_error_rate=float(d["max_error_rate"]),
        max_staleness=d["max_staleness"],
        heartbeat_timeout=d["heartbeat_timeout"],
        impact=d["impact"],
        team=d["team"],
        runbook_url=d["runbook_url"],
        for_=dict(d["for"]),
        severity=dict(d.get("severity") or {}),
        keep_firing_for=dict(d["keep_firing_for"]),
        rate_window=d["rate_window"],
        volume_min_ratio=float(d["volume_min_ratio"]),
        volume_max_ratio=float(d["volume_max_ratio"]),
        volume_window=d["volume_window"],
        slo=Slo(**slo_raw) if slo_raw else None,
        dependencies=deps,
        recovery=dict(d.get("recovery") or {}),
        actions={k: dict(v) for k, v in (d.get("actions") or {}).items()},
        max_attempts=int(d["max_attempts"]),
        cooldown=d["cooldown"],
        dry_run=bool(d["dry_run"]),
        description=d.get("description", ""),
        overrides=overrides,
        diagnosis=DiagnosisThresholds(**(d.get("diagnosis") or {})),
        upstream=tuple(d.get("upstream") or ()),
        approval=d.get("approval", "none"),
    )


def _build(raw: Mapping[str, Any], source: str) -> Spec:
    defaults_raw = _merge(BUILTIN_DEFAULTS, raw.get("defaults") or {})
    defaults = _resolve("*", defaults_raw, frozenset())
    pipelines = {
        name: _resolve(name, _merge(defaults_raw, over or {}), frozenset((over or {}).keys()))
        for name, over in sorted((raw.get("pipelines") or {}).items())
    }
    teams = {name: _team(name, t) for name, t in sorted((raw.get("teams") or {}).items())}
    return Spec(
        defaults=defaults,
        pipelines=pipelines,
        teams=teams,
        source=source,
        openlineage=openlineage_spec(raw.get("openlineage")),
        known_metrics=tuple(raw.get("known_metrics") or ()),
    )


def load_spec(path: str | Path | None = None) -> Spec:
    """Load a spec file; ``None`` gives the built-in defaults (no pipelines, no teams)."""
    if path is None:
        return parse_spec("{}", "<builtin>")
    return spec_from(read_spec(path))
