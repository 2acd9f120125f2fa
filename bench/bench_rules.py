"""Benchmark the generated rule layout against the naive per-pipeline layout.

On a 10,000-pipeline spec (10% with overrides) this measures:

* generation time (load + validate + generate + render), best of 5 (the run
  least disturbed by other work on the machine); goal <= 2 s;
* the alerting-rule count for 100, 1,000 and 10,000 pipelines (constant);
* rule evaluation time as a real Prometheus reports it
  (``prometheus_rule_group_last_duration_seconds``, summed over groups) over
  10,000 pipelines' series, for our rules and for the naive layout (one copy
  of every alert per pipeline, as SLO generators emit); goal <= 0.2x naive.

Fairness: both layouts run in their own Prometheus *at the same time*,
scraping the same loopback series server, so load from anything else on the
machine hits both alike. Each completed evaluation cycle is one sample; the
result is the median per layout, its spread (min..max), and the ratio of the
medians next to the range of the ratios of samples taken at the same moment.
Where our layout's time goes (spec constants, signals, alerts) comes from
``/api/v1/rules`` of the generated layout's Prometheus. As a cross-check less
sensitive to other work on the machine, it also reports each server's process
CPU beyond what a third Prometheus, scraping the same series with no rules,
spends.

The series come from a loopback HTTP server rendering a prepared exposition
(counters advance each scrape, ~1% of pipelines are failing).

It also prints the generated layout's costliest rules by name. With
``BENCH_RULES_EQUIVALENT=1`` a fourth server runs, at the same time, a naive
layout that computes what ours does (:func:`naive_equivalent_rules`), as a
second comparison next to the goal's unchanged baseline (~3.5 min then).

Run: ``.venv/bin/python -m bench bench_rules``
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench._load import spread
from pipemedic.stack import PrometheusServer
from rules.alerts import for_seconds, kind, params_for
from rules.durations import format_duration
from rules.generate import generate
from rules.output import render_all, write_files
from rules.spec import parse_spec
from rules.specdata import CONSTANT_SUFFIXES

N = 10_000
WARMUP_S = 30.0
# BENCH_RULES_SAMPLE_S shortens the window for exploratory runs (not for recorded figures)
SAMPLE_S = float(os.environ.get("BENCH_RULES_SAMPLE_S", "100"))
# BENCH_RULES_EQUIVALENT=1 adds a fourth server: a naive layout with our alerts' meaning
EQUIVALENT = os.environ.get("BENCH_RULES_EQUIVALENT") == "1"
INTERVAL = "10s"
POLL_S = 1.0


def spec_text(n: int) -> str:
    """Return a spec of ``n`` pipelines; every 10th overrides thresholds, team, impact, for."""
    lines = ["defaults:", "  team: core", "pipelines:"]
    for i in range(n):
        lines.append(f"  p{i:05d}:")
        if i % 10 == 0:
            lines += [
                f"    max_error_rate: {0.01 + (i % 7) / 100:.2f}",
                f"    sla: {30 + i % 5}m",
                f"    max_staleness: {2 + i % 3}h",
                f"    impact: {('most', 'many', 'some', 'none')[i % 4]}",
                f"    team: t{i % 3}",
                "    for:",
                f"      down: {('2m', '5m')[i % 2]}",
            ]
        else:
            lines.append("    description: plain")
    lines += ["teams:", "  core: {}", "  t0: {}", "  t1: {}", "  t2: {}"]
    return "\n".join(lines) + "\n"


def naive_rules(n: int) -> str:
    """Return the naive layout: five alerts per pipeline with inlined thresholds and labels."""
    spec = parse_spec(spec_text(n))
    out = ["groups:", "  - name: naive", "    rules:"]
    for name, p in spec.pipelines.items():
        sel = f'{{pipeline="{name}"}}'
        labels = (
            f"{{pipeline: {name}, team: {p.team}, severity: warning, sev: SEV3, category: data}}"
        )
        exprs = {
            "PipelineDown": f"max(pipeline_up{sel}) == 0",
            "PipelineHighErrorRate": (
                f"sum(rate(pipeline_records_failed_total{sel}[5m])) / "
                f"sum(rate(pipeline_records_processed_total{sel}[5m])) > {p.max_error_rate}"
            ),
            "PipelineSLAViolation": (
                f"max(pipeline_last_run_duration_seconds{sel}) > {p.sla_seconds}"
            ),
            "PipelineDataStale": (
                f"time() - max(pipeline_last_update_timestamp_seconds{sel}) > "
                f"{p.max_staleness_seconds}"
            ),
            "PipelineDependencyDown": f"max by (dependency) (pipeline_dependency_up{sel}) == 0",
        }
        for alert, expr in exprs.items():
            out += [
                f"      - alert: {alert}",
                f"        expr: '{expr}'",
                "        for: 5m",
                f"        labels: {labels}",
            ]
    return "\n".join(out) + "\n"


def naive_equivalent_rules(n: int) -> str:
    """Return a second naive layout that computes what ours does, one copy per pipeline.

    Unlike :func:`naive_rules` (the goal's baseline, unchanged), each copy has
    the generated alert's meaning and output: the error ratio is the larger of
    the records and the runs ratio (quiet pipelines excluded), and every alert
    carries the same labels, ``for``, ``keep_firing_for`` and annotations.
    Measured only with ``BENCH_RULES_EQUIVALENT=1``, as a second comparison.
    """
    spec = parse_spec(spec_text(n))
    rules: list[dict[str, Any]] = []
    for name, p in spec.pipelines.items():
        sel = f'pipeline="{name}"'
        ratio = (
            f"max(sum(rate(pipeline_records_failed_total{{{sel}}}[5m])) / "
            f"(sum(rate(pipeline_records_processed_total{{{sel}}}[5m])) > 0) "
            f'or sum by (status) (rate(pipeline_runs_total{{{sel}, status="failure"}}[5m])) '
            f"/ ignoring (status) group_left () (sum(rate(pipeline_runs_total{{{sel}}}[5m])) > 0))"
        )
        exprs = {
            "down": f"max by (pipeline) (pipeline_up{{{sel}}}) == 0",
            "error_rate": f'label_replace({ratio}, "pipeline", "{name}", "", "") '
            f"> {p.max_error_rate}",
            "sla": f"max by (pipeline) (pipeline_last_run_duration_seconds{{{sel}}}) "
            f"> {p.sla_seconds}",
            "staleness": f"time() - max by (pipeline) "
            f"(pipeline_last_update_timestamp_seconds{{{sel}}}) > {p.max_staleness_seconds}",
            "dependency": f"max by (pipeline, dependency) (pipeline_dependency_up{{{sel}}}) == 0",
        }
        for kind_name, expr in exprs.items():
            k = kind(kind_name)
            rule: dict[str, Any] = {
                "alert": k.alert,
                "expr": expr,
                "for": format_duration(for_seconds(p, kind_name)),
            }
            if k.keep_firing_for:
                rule["keep_firing_for"] = k.keep_firing_for
            labels = params_for(p, kind_name).labels()
            rule["labels"] = {"category": k.category, **labels}
            rule["annotations"] = {
                "summary": k.summary.go(),
                "description": k.description.go(),
                "runbook_url": labels["runbook_url"],
            }
            rules.append(rule)
    doc = {"groups": [{"name": "naive-equivalent", "rules": rules}]}
    return yaml.safe_dump(doc, sort_keys=False, width=1_000_000)


class Exposition:
    """Prepared series for ``n`` pipelines; counters advance by one step per scrape."""

    def __init__(self, n: int) -> None:
        self.scrapes = 0
        self.counters: list[tuple[str, int]] = []
        gauges: list[str] = []
        now = time.time()
        for i in range(n):
            p = f'pipeline="p{i:05d}"'
            failing = i % 100 == 7
            gauges += [
                f"pipeline_up{{{p}}} {0 if failing else 1}",
                f"pipeline_last_run_duration_seconds{{{p}}} {9000 if failing else 60}",
                f"pipeline_last_update_timestamp_seconds{{{p}}} "
                f"{now - (90000 if failing else 60):.0f}",
                f'pipeline_dependency_up{{{p},dependency="db"}} {0 if failing else 1}',
            ]
            self.counters += [
                (f'pipeline_runs_total{{{p},status="success"}}', 1),
                (f'pipeline_runs_total{{{p},status="failure"}}', 1 if failing else 0),
                (f"pipeline_records_processed_total{{{p}}}", 100),
                (f"pipeline_records_failed_total{{{p}}}", 30 if failing else 1),
            ]
        self.gauges = "\n".join(gauges) + "\n"

    def render(self) -> bytes:
        self.scrapes += 1
        k = self.scrapes
        body = "\n".join(f"{name} {step * k}" for name, step in self.counters)
        return (self.gauges + body + "\n").encode()


def serve(expo: Exposition) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = expo.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body


@dataclass(frozen=True)
class Reading:
    """One look at a Prometheus' own metrics."""

    total: float  # summed last evaluation time of all rule groups, seconds
    stamps: tuple[float, ...]  # each group's last evaluation timestamp
    cpu: float  # process_cpu_seconds_total


def read_metrics(prom: PrometheusServer) -> Reading:
    """Return the rule groups' last evaluation times and stamps, and the process CPU."""
    total, cpu = 0.0, 0.0
    stamps: list[float] = []
    for line in _get(prom.url + "/metrics").decode().splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("prometheus_rule_group_last_evaluation_timestamp_seconds{"):
            stamps.append(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("process_cpu_seconds_total "):
            cpu = float(line.rsplit(" ", 1)[1])
    return Reading(total, tuple(stamps), cpu)


def rule_class(rule: Mapping[str, Any]) -> str:
    """Name what a rule is for: a spec ``constant``, a recorded ``signal``, or an ``alert``."""
    if rule["type"] == "alerting":
        return "alerts"
    name = str(rule["name"])
    return "constants" if name.endswith(CONSTANT_SUFFIXES) else "signals"


def rule_key(rule: Mapping[str, Any]) -> str:
    """Name a rule for the per-rule report: constants of one name are summed, with a count."""
    labels = rule.get("labels") or {}
    split = rule["type"] == "alerting" and "for_override" in labels
    extra = f" for={labels['for_override']}" if split else ""
    return f"{rule['name']}{extra}"


def breakdown(prom: PrometheusServer) -> dict[str, float]:
    """Return seconds per rule class and per rule in the last evaluation (``/api/v1/rules``).

    Keys ``constants``, ``signals``, ``alerts`` are the classes; every other
    key is ``rule:<name>`` (rules of one name summed).
    """
    data = json.loads(_get(prom.url + "/api/v1/rules"))
    out = {"constants": 0.0, "signals": 0.0, "alerts": 0.0}
    for group in data["data"]["groups"]:
        for rule in group["rules"]:
            seconds = float(rule["evaluationTime"])
            out[rule_class(rule)] += seconds
            key = "rule:" + rule_key(rule)
            out[key] = out.get(key, 0.0) + seconds
    return out


@dataclass
class Samples:
    """One layout's evaluation-cycle samples (seconds), where the time went, and its CPU."""

    values: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    cpu_per_s: float = 0.0  # process CPU seconds per second of the sampling window

    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        return spread([v * 1000 for v in self.values], 0) + " ms"


def prometheus_config(rules_dir: Path, target: str) -> str:
    return (
        f"global: {{scrape_interval: {INTERVAL}, evaluation_interval: {INTERVAL}}}\n"
        f"rule_files: ['{rules_dir}/*.yml']\n"
        "scrape_configs:\n"
        "  - job_name: pipemedic-exporter\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )


def measure_together(
    layouts: Mapping[str, Path],
    target: str,
    workdir: Path,
    with_breakdown: Callable[[str], bool] = lambda name: False,
) -> tuple[dict[str, Samples], list[dict[str, float]]]:
    """Run one Prometheus per layout at once; sample each new evaluation cycle of every layout.

    Also returns the paired samples: every layout's latest cycle, taken whenever
    all layouts have completed a new cycle since the previous pair. A layout
    without rules only scrapes: its CPU is what scraping costs the others.
    """
    samples = {name: Samples() for name in layouts}
    pairs: list[dict[str, float]] = []
    with ExitStack() as stack:
        proms: dict[str, PrometheusServer] = {}
        started = time.monotonic()
        for name, rules_dir in layouts.items():
            prom = PrometheusServer(
                prometheus_config(rules_dir, target), workdir=workdir / f"prom-{name}"
            )
            prom.start_timeout = 120
            proms[name] = prom
        for prom in proms.values():
            stack.enter_context(prom)
        print(f"servers ready in {time.monotonic() - started:.1f}s", flush=True)
        time.sleep(WARMUP_S)
        first = {name: read_metrics(p) for name, p in proms.items()}
        window_start = time.monotonic()
        seen = {name: r.stamps for name, r in first.items()}
        ruled = [name for name, r in first.items() if r.stamps]
        fresh = dict.fromkeys(ruled, False)
        latest: dict[str, float] = {}
        end = window_start + SAMPLE_S
        while time.monotonic() < end:
            time.sleep(POLL_S)
            for name in ruled:
                reading = read_metrics(proms[name])
                # a sample once every group has been evaluated again
                if all(s > old for s, old in zip(reading.stamps, seen[name], strict=True)):
                    seen[name] = reading.stamps
                    samples[name].values.append(reading.total)
                    latest[name] = reading.total
                    fresh[name] = True
                    if with_breakdown(name):
                        samples[name].parts.append(breakdown(proms[name]))
            if all(fresh.values()):
                pairs.append(dict(latest))
                fresh = dict.fromkeys(ruled, False)
        elapsed = time.monotonic() - window_start
        for name, prom in proms.items():
            samples[name].cpu_per_s = (read_metrics(prom).cpu - first[name].cpu) / elapsed
    return samples, pairs


def report_breakdown(parts: list[dict[str, float]]) -> str:
    """Return the median seconds and share of each rule class."""
    classes = ("constants", "signals", "alerts")
    medians = {k: statistics.median(p[k] for p in parts) for k in classes}
    total = sum(medians.values()) or 1.0
    return ", ".join(f"{k} {v * 1000:.0f} ms ({v / total:.0%})" for k, v in medians.items())


def report_rules(parts: list[dict[str, float]], top: int = 20) -> str:
    """Return the ``top`` rules (by name) with the largest median evaluation time."""
    keys = [k for k in parts[0] if k.startswith("rule:")]
    medians = {k[5:]: statistics.median(p.get(k, 0.0) for p in parts) for k in keys}
    ranked = sorted(medians.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"  {v * 1000:8.1f} ms  {name}" for name, v in ranked)


def main() -> None:
    text = spec_text(N)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        spec = parse_spec(text, "bench.yml")
        files = generate(spec)
        rendered = render_all(files, "bench.yml")
        times.append(time.perf_counter() - t0)
    gen = min(times)
    print(f"generation of {N} pipelines: {gen:.2f}s best of 5 (goal <= 2s)", flush=True)
    counts = {}
    for n in (100, 1000, N):
        counts[n] = sum(len(f.alerts()) for f in generate(parse_spec(spec_text(n))))
    print(f"alerting rules by pipelines: {counts}", flush=True)
    recording = sum(1 for f in files for g in f.groups for r in g["rules"] if "record" in r)
    print(f"recording rules for {N}: {recording} (spec constants + signals)", flush=True)

    expo = Exposition(N)
    server = serve(expo)
    target = f"127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        ours_dir = Path(tmp) / "ours"
        write_files(ours_dir, rendered)
        naive_dir = Path(tmp) / "naive"
        naive_dir.mkdir()
        (naive_dir / "naive.yml").write_text(naive_rules(N))
        idle_dir = Path(tmp) / "scrape-only"
        idle_dir.mkdir()
        layouts = {"generated": ours_dir, "naive": naive_dir, "scrape-only": idle_dir}
        if EQUIVALENT:
            equivalent_dir = Path(tmp) / "naive-equivalent"
            equivalent_dir.mkdir()
            (equivalent_dir / "naive.yml").write_text(naive_equivalent_rules(N))
            layouts["naive-equivalent"] = equivalent_dir
        samples, pairs = measure_together(
            layouts, target, Path(tmp), with_breakdown=lambda name: name == "generated"
        )
    server.shutdown()
    ours, naive = samples["generated"], samples["naive"]
    for name, s in (("generated", ours), ("naive", naive)):
        print(
            f"{name}: rule evaluation median {s.median() * 1000:.0f} ms, "
            f"spread {s.spread()} over {len(s.values)} cycles",
            flush=True,
        )
    if ours.parts:
        print(f"generated, per rule class (median): {report_breakdown(ours.parts)}", flush=True)
        print(f"generated, costliest rules (median):\n{report_rules(ours.parts)}", flush=True)
    paired = sorted(p["generated"] / p["naive"] for p in pairs if p["naive"])
    ratio = ours.median() / naive.median()
    paired_spread = spread(paired, 3) if paired else "n/a"
    print(
        f"rule evaluation: generated/naive = {ratio:.3f}x (medians; goal <= 0.2x), "
        f"paired samples {paired_spread} over {len(paired)} pairs; "
        f"{N * 5} naive alerting rules vs {counts[N]}",
        flush=True,
    )
    # CPU is less sensitive than wall time to other work on the machine
    idle = samples["scrape-only"].cpu_per_s
    cpu_ours, cpu_naive = ours.cpu_per_s - idle, naive.cpu_per_s - idle
    print(
        f"process CPU beyond scraping: generated {cpu_ours:.3f} s/s, naive {cpu_naive:.3f} s/s "
        f"(scraping alone {idle:.3f} s/s) = {cpu_ours / cpu_naive:.3f}x",
        flush=True,
    )
    if EQUIVALENT:
        eq = samples["naive-equivalent"]
        eq_paired = sorted(p["generated"] / p["naive-equivalent"] for p in pairs)
        cpu_eq = eq.cpu_per_s - idle
        eq_ratio = ours.median() / eq.median()
        print(
            f"naive-equivalent (same alert meaning as ours): median {eq.median() * 1000:.0f} ms, "
            f"spread {eq.spread()}; generated/naive-equivalent = {eq_ratio:.3f}x "
            f"(paired {spread(eq_paired, 3) if eq_paired else 'n/a'}), "
            f"CPU {cpu_eq:.3f} s/s = {cpu_ours / cpu_eq:.3f}x",
            flush=True,
        )
