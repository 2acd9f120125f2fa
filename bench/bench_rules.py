"""Benchmark the generated rule layout against the naive per-pipeline layout.

On a 10,000-pipeline spec (10% with overrides) this measures:

* generation time (load + validate + generate + render), best of 3; goal <= 2 s;
* the alerting-rule count for 100, 1,000 and 10,000 pipelines (constant);
* rule evaluation time as a real Prometheus reports it
  (``prometheus_rule_group_last_duration_seconds``, summed over groups) over
  10,000 pipelines' series, for our rules and for the naive layout (one copy
  of every alert per pipeline, as SLO generators emit), same run, same data;
  goal <= 0.2x naive.

The series come from a loopback HTTP server rendering a prepared exposition
(counters advance each scrape, ~1% of pipelines are failing).

Run: ``.venv/bin/python -m bench bench_rules``
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipemedic.stack import PrometheusServer
from rules.generate import generate
from rules.output import render_all, write_files
from rules.spec import parse_spec

N = 10_000
WARMUP_S = 35.0
SAMPLE_S = 30.0
INTERVAL = "10s"


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


def rule_eval_seconds(prom: PrometheusServer) -> float:
    with urllib.request.urlopen(prom.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def measure(label: str, rules_dir: Path, target: str, workdir: Path) -> float:
    config = (
        f"global: {{scrape_interval: {INTERVAL}, evaluation_interval: {INTERVAL}}}\n"
        f"rule_files: ['{rules_dir}/*.yml']\n"
        "scrape_configs:\n"
        "  - job_name: pipemedic-exporter\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    started = time.monotonic()
    prom = PrometheusServer(config, workdir=workdir)
    prom.start_timeout = 120
    with prom:
        loaded = time.monotonic() - started
        time.sleep(WARMUP_S)
        samples = []
        end = time.monotonic() + SAMPLE_S
        while time.monotonic() < end:
            samples.append(rule_eval_seconds(prom))
            time.sleep(5)
    value = statistics.median(samples)
    print(
        f"{label}: rule evaluation {value * 1000:.1f} ms (median of {len(samples)}), "
        f"ready in {loaded:.1f}s",
        flush=True,
    )
    return value


def main() -> None:
    text = spec_text(N)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        spec = parse_spec(text, "bench.yml")
        files = generate(spec)
        rendered = render_all(files, "bench.yml")
        times.append(time.perf_counter() - t0)
    gen = min(times)
    print(f"generation of {N} pipelines: {gen:.2f}s (goal <= 2s)", flush=True)
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
        ours = measure("generated", ours_dir, target, Path(tmp) / "prom-ours")
        naive = measure("naive", naive_dir, target, Path(tmp) / "prom-naive")
    server.shutdown()
    ratio = ours / naive if naive else float("nan")
    print(
        f"rule evaluation: generated/naive = {ratio:.3f}x (goal <= 0.2x); "
        f"generated {ours * 1000:.1f} ms, naive {naive * 1000:.1f} ms "
        f"({N * 5} naive alerting rules vs {counts[N]})",
        flush=True,
    )
