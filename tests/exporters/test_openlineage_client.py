"""The official OpenLineage Python client's HTTP transport posts to a real `pipemedic exporter`.

The client (openlineage-python, not written here) emits an Airflow-like DAG:
a root job and task jobs with ``parent`` facets, START / RUNNING / COMPLETE /
FAIL, ``errorMessage``, ``outputStatistics``, ``dataQualityAssertions`` and
``schema`` facets, gzip-compressed, with its ``api_key`` bearer auth; the
exporter's /metrics and GET /lineage must say what those events mean.
"""

from __future__ import annotations

import datetime
import json
import urllib.request
import uuid
from typing import Any

import pytest
import requests
from exporter_helpers import StartExporter
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    error_message_run,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

from exporters.testing import sample_value
from pipemedic.stack import free_port

SPEC = """
defaults:
  sla: 2h
pipelines:
  etl_orders:
    heartbeat_timeout: 5m
  finance_report:
    upstream: [etl_orders]
openlineage:
  pipelines:
    - namespace: "airflow://*"
      job: orders_dag
      pipeline: etl_orders
"""
TOKEN = "s3cret-api-key"
NS = "airflow://prod"
WAREHOUSE = "postgres://warehouse:5432"
T0 = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=3)


def at(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).isoformat()


def client(url: str, api_key: str | None = TOKEN) -> OpenLineageClient:
    config = HttpConfig(
        url=url,
        compression=HttpCompression.GZIP,
        auth=ApiKeyTokenProvider({"api_key": api_key}) if api_key else HttpConfig(url=url).auth,
        retry={"total": 0},
    )
    return OpenLineageClient(transport=HttpTransport(config))


def schema(**columns: str) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns.items()]
    )


def orders_table(rows: int | None, **columns: str) -> OutputDataset:
    output_facets: dict[str, Any] = {}
    if rows is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
        )
    return OutputDataset(
        namespace=WAREHOUSE,
        name="shop.public.orders",
        facets={"schema": schema(**columns)},
        outputFacets=output_facets,
    )


def parent_of(run_id: str, name: str = "orders_dag") -> dict[str, Any]:
    return {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=NS, name=name),
        )
    }


def event(
    state: RunState,
    when: float,
    run_id: str,
    job: str,
    facets: dict[str, Any] | None = None,
    inputs: list[InputDataset] | None = None,
    outputs: list[OutputDataset] | None = None,
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=at(when),
        run=Run(runId=run_id, facets=facets or {}),
        job=Job(namespace=NS, name=job),
        inputs=inputs or [],
        outputs=outputs or [],
        producer="https://github.com/apache/airflow/tree/providers-openlineage/1.0.0",
    )


def metrics(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_client_runs_map_to_pipeline_metrics_and_lineage(exporter: StartExporter) -> None:
    url = exporter(SPEC, free_port(), "--no-probes", env={"PIPEMEDIC_EXPORTER_TOKEN": TOKEN})
    ol = client(url)
    dag_run, load_run, check_run = (str(uuid.uuid4()) for _ in range(3))

    # run 1: DAG start, a load task writing 1200 rows, a check task with one failed assertion
    ol.emit(event(RunState.START, 0, dag_run, "orders_dag"))
    ol.emit(event(RunState.START, 10, load_run, "orders_dag.load", parent_of(dag_run)))
    ol.emit(event(RunState.RUNNING, 20, load_run, "orders_dag.load", parent_of(dag_run)))
    load_done = event(
        RunState.COMPLETE,
        300,
        load_run,
        "orders_dag.load",
        parent_of(dag_run),
        outputs=[orders_table(1200, id="INTEGER", amount="DECIMAL(10,2)")],
    )
    ol.emit(load_done)
    assertions = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion="not_null", success=True, column="id"
            ),
            data_quality_assertions_dataset.Assertion(
                assertion="unique", success=False, column="id", actual="3"
            ),
        ]
    )
    checked = InputDataset(
        namespace=WAREHOUSE,
        name="shop.public.orders",
        inputFacets={"dataQualityAssertions": assertions},
    )
    ol.emit(
        event(RunState.COMPLETE, 320, check_run, "orders_dag.check", parent_of(dag_run), [checked])
    )
    ol.emit(event(RunState.COMPLETE, 330, dag_run, "orders_dag"))
    ol.emit(load_done)  # a producer's retry: nothing changes

    text = metrics(url)
    assert sample_value(text, "pipeline_runs_total", pipeline="etl_orders", status="success") == 1
    assert sample_value(text, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 0
    assert sample_value(text, "pipeline_last_run_duration_seconds", pipeline="etl_orders") == 330
    assert sample_value(text, "pipeline_records_processed_total", pipeline="etl_orders") == 1200
    assert sample_value(text, "pipeline_records_failed_total", pipeline="etl_orders") == 3
    assert sample_value(text, "pipeline_last_run_output_records", pipeline="etl_orders") == 1200
    assert (
        sample_value(
            text,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="data",
            reason="failed_assertion",
        )
        == 1
    )
    orders = f"{WAREHOUSE}/shop.public.orders"
    assert sample_value(
        text,
        "pipeline_dataset_last_update_timestamp_seconds",
        pipeline="etl_orders",
        dataset=orders,
    ) == pytest.approx((T0 + datetime.timedelta(seconds=300)).timestamp())
    assert sample_value(
        text, "pipeline_last_update_timestamp_seconds", pipeline="etl_orders"
    ) == pytest.approx((T0 + datetime.timedelta(seconds=300)).timestamp())
    # a finished batch run is neither up nor down until the next one starts
    assert sample_value(text, "pipeline_up", pipeline="etl_orders") is None
    assert (
        sample_value(
            text,
            "pipemedic_exporter_lineage_events_total",
            event_type="COMPLETE",
            outcome="duplicate",
        )
        == 1
    )

    # run 2: the amount column is retyped, the load task times out, the DAG fails
    dag_run2, load_run2 = str(uuid.uuid4()), str(uuid.uuid4())
    ol.emit(event(RunState.START, 3600, dag_run2, "orders_dag"))
    assert sample_value(metrics(url), "pipeline_up", pipeline="etl_orders") == 1
    ol.emit(
        event(
            RunState.START,
            3601,
            load_run2,
            "orders_dag.load",
            parent_of(dag_run2),
            outputs=[orders_table(None, id="INTEGER", amount="VARCHAR")],
        )
    )
    timeout = {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message="java.net.SocketTimeoutException: Read timed out",
            programmingLanguage="JAVA",
            stackTrace="java.net.SocketTimeoutException: Read timed out\n\tat java.net...",
        )
    }
    ol.emit(
        event(
            RunState.FAIL,
            3700,
            load_run2,
            "orders_dag.load",
            {**parent_of(dag_run2), **timeout},
        )
    )
    ol.emit(event(RunState.FAIL, 3710, dag_run2, "orders_dag", timeout))

    text = metrics(url)
    assert sample_value(text, "pipeline_runs_total", pipeline="etl_orders", status="failure") == 1
    assert sample_value(text, "pipeline_last_run_duration_seconds", pipeline="etl_orders") == 110
    assert (
        sample_value(
            text,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="connectivity",
            reason="timeout",
        )
        == 2  # the task's FAIL and the DAG's
    )
    assert (
        sample_value(
            text,
            "pipeline_errors_total",
            pipeline="etl_orders",
            category="data",
            reason="schema_change",
        )
        == 1
    )

    # a downstream DAG reads the orders table: a learned edge etl_orders -> report_dag
    report_run = str(uuid.uuid4())
    reads = [InputDataset(namespace=WAREHOUSE, name="shop.public.orders")]
    ol.emit(event(RunState.START, 4000, report_run, "report dag!", inputs=reads))
    ol.emit(event(RunState.COMPLETE, 4010, report_run, "report dag!", inputs=reads))
    ol.emit(JobEvent(eventTime=at(4020), job=Job(namespace=NS, name="archive"), inputs=reads))
    ol.emit(
        DatasetEvent(
            eventTime=at(4030),
            dataset=StaticDataset(namespace=WAREHOUSE, name="shop.public.customers"),
        )
    )
    text = metrics(url)
    for upstream, pipeline in [
        ("etl_orders", "report_dag_"),
        ("etl_orders", "archive"),
        ("etl_orders", "finance_report"),
    ]:
        assert (
            sample_value(text, "pipeline_upstream_info", pipeline=pipeline, upstream=upstream) == 1
        ), (upstream, pipeline)
    graph = get_json(url + "/lineage")
    assert {(e["upstream"], e["pipeline"], e["source"]) for e in graph["edges"]} == {
        ("etl_orders", "report_dag_", "learned"),
        ("etl_orders", "archive", "learned"),
        ("etl_orders", "finance_report", "declared"),
    }
    assert graph["cycles"] == []
    assert {"etl_orders", "report_dag_", "archive", "finance_report"} <= set(graph["pipelines"])
    names = {d["name"]: d for d in graph["datasets"]}
    assert names[orders]["writers"] == ["etl_orders"]
    assert names[orders]["readers"] == ["archive", "etl_orders", "report_dag_"]
    assert names[orders]["schema_changed_at"] is not None

    # without the api_key the transport gets a 401 and raises
    with pytest.raises(requests.HTTPError) as refused:
        client(url, api_key=None).emit(event(RunState.START, 5000, str(uuid.uuid4()), "x"))
    assert refused.value.response.status_code == 401


def test_learned_cycle_is_exported_for_the_alert(exporter: StartExporter) -> None:
    url = exporter("{}", free_port(), "--no-probes")
    ol = client(url, api_key=None)

    def hop(job: str, reads: str, writes: str) -> None:
        ol.emit(
            event(
                RunState.COMPLETE,
                100,
                str(uuid.uuid4()),
                job,
                inputs=[InputDataset(namespace="s3://lake", name=reads)],
                outputs=[OutputDataset(namespace="s3://lake", name=writes)],
            )
        )

    hop("a", reads="c_out", writes="a_out")
    hop("b", reads="a_out", writes="b_out")
    hop("c", reads="b_out", writes="c_out")
    hop("d", reads="c_out", writes="d_out")
    text = metrics(url)
    for name in ("a", "b", "c"):
        assert sample_value(text, "pipeline_dependency_cycle", pipeline=name) == 1
    assert sample_value(text, "pipeline_dependency_cycle", pipeline="d") is None
    assert get_json(url + "/lineage")["cycles"] == [["a", "b", "c", "a"]]
