"""Benchmark ``POST /api/v1/lineage`` against a bare aiohttp app that only parses the same JSON.

wrk posts OpenLineage RunEvents as a busy Airflow would: a task's COMPLETE
(a new runId every request, so each one is applied, never a duplicate),
its ``parent`` facet with the ``root`` DAG run (100 DAGs, so 100
pipelines), one input and one output dataset with a five-column ``schema``
facet and ``outputStatistics``, plus the facets the exporter does not read
(``nominalTime``, ``processing_engine``, ``sql``, ``jobType``, a vendor
facet): about 2.3 KB a body. The baseline is the exporter benchmark's bare
app (``await request.json()`` and a JSON answer), measured in the same run,
interleaved; also reported against a bare app decoding with msgspec.
Goal: >= 0.7x the bare app's events/s.

Run: ``.venv/bin/python -m bench bench_lineage``
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench._load import BareApp, require_wrk, wrk_with_cpu
from bench.bench_exporter import ExporterApp
from pipemedic.stack import ManagedServer

PATH = "/api/v1/lineage"
ROUNDS = 4
SECONDS = 5

_LUA = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local function uuid(a, b)
  return string.format("%08x-%04x-4%03x-8%03x-%012x", a, b % 65536, 0, 0, b)
end
local schema = '{"_producer":"https://github.com/apache/airflow","_schemaURL":' ..
  '"https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",' ..
  '"fields":[{"name":"id","type":"BIGINT"},{"name":"customer_id","type":"BIGINT"},' ..
  '{"name":"amount","type":"DECIMAL(12,2)"},{"name":"currency","type":"VARCHAR"},' ..
  '{"name":"created_at","type":"TIMESTAMP"}]}'
request = function()
  counter = counter + 1
  local dag = "dag_" .. (counter % 100)
  local body = '{"eventType":"COMPLETE","eventTime":"2026-01-01T12:00:00.123456+00:00",' ..
    '"producer":"https://github.com/apache/airflow/tree/providers-openlineage/2.7.0",' ..
    '"schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",' ..
    '"run":{"runId":"' .. uuid(tid, counter) .. '","facets":{' ..
      '"parent":{"_producer":"p","_schemaURL":"s","run":{"runId":"' .. uuid(999, counter % 100) ..
        '"},"job":{"namespace":"airflow://prod","name":"' .. dag .. '"},' ..
        '"root":{"run":{"runId":"' .. uuid(999, counter % 100) .. '"},' ..
        '"job":{"namespace":"airflow://prod","name":"' .. dag .. '"}}},' ..
      '"nominalTime":{"_producer":"p","_schemaURL":"s",' ..
        '"nominalStartTime":"2026-01-01T12:00:00Z"},' ..
      '"processing_engine":{"_producer":"p","_schemaURL":"s","version":"2.10.4",' ..
        '"name":"Airflow","openlineageAdapterVersion":"2.7.0"}}},' ..
    '"job":{"namespace":"airflow://prod","name":"' .. dag .. '.load_orders","facets":{' ..
      '"jobType":{"_producer":"p","_schemaURL":"s","processingType":"BATCH",' ..
        '"integration":"AIRFLOW","jobType":"TASK"},' ..
      '"sql":{"_producer":"p","_schemaURL":"s","query":"INSERT INTO warehouse.orders ' ..
        'SELECT id, customer_id, amount, currency, created_at FROM shop.orders ' ..
        'WHERE created_at >= now() - interval 1 day"}}},' ..
    '"inputs":[{"namespace":"postgres://shop:5432","name":"shop.public.orders",' ..
      '"facets":{"schema":' .. schema .. ',"vendor":{"_producer":"p","_schemaURL":"s",' ..
      '"owner":"commerce","tags":["pii","orders"]}}}],' ..
    '"outputs":[{"namespace":"postgres://warehouse:5432","name":"warehouse.public.orders",' ..
      '"facets":{"schema":' .. schema .. '},' ..
      '"outputFacets":{"outputStatistics":{"_producer":"p","_schemaURL":"s",' ..
        '"rowCount":' .. (1000 + counter % 50) .. ',"size":123456}}}]}'
  return wrk.format(nil, nil, nil, body)
end
"""


def main() -> None:
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "lineage.lua"
        script.write_text(_LUA)
        answer = '{"accepted": 1}'
        servers: dict[str, ManagedServer] = {
            "bare": BareApp(Path(tmp), path=PATH, answer=answer, parse="request"),
            "bare-msgspec": BareApp(Path(tmp), path=PATH, answer=answer, parse="msgspec"),
            "pipemedic": ExporterApp(Path(tmp)),
        }
        with ExitStack() as stack:
            for server in servers.values():
                stack.enter_context(server)
            rps: dict[str, list[float]] = {name: [] for name in servers}
            cpu: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(ROUNDS):  # interleaved, so drift hits all alike
                for name, server in servers.items():
                    r, c = wrk_with_cpu(server, PATH, script, SECONDS)
                    rps[name].append(round(r))
                    cpu[name].append(round(c, 1))
    ours, co = statistics.median(rps["pipemedic"]), statistics.median(cpu["pipemedic"])
    for base, label in (("bare", "bare aiohttp request.json()"), ("bare-msgspec", "bare msgspec")):
        rb, cb = statistics.median(rps[base]), statistics.median(cpu[base])
        print(
            f"POST {PATH} vs {label}: {rb:.0f} events/s {rps[base]}, "
            f"pipemedic {ours:.0f} events/s {rps['pipemedic']}, ratio {ours / rb:.3f}x "
            f"(goal >= 0.7x vs request.json())"
        )
        print(
            f"server CPU per event vs {label}: {cb:.1f} us {cpu[base]}, pipemedic "
            f"{co:.1f} us {cpu['pipemedic']}; capacity ratio {cb / co:.3f}x"
        )


if __name__ == "__main__":
    main()
