"""The runs page: the newest fetch runs with their state (complete, failed with its reason,
running with the rows done so far), rows, bytes, duration and an estimate of their cost; the
newest training runs (the Cloud Run jobs' executions, from the Admin API: running with its
tasks done, complete, failed with the reason Cloud Run gives), duration and an estimate of
their cost; and the model runs the desk serves."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, g, render_template
from flask.typing import ResponseReturnValue
from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.api.models import ModelStore
from shared.desk.access import Grant
from shared.fetch.runs import planned, rows_done, state
from shared.training.launch import RUN_ID_VAR

# The BigQuery Storage Read API's on-demand price per TiB read (us and eu multi-regions,
# cloud.google.com/bigquery/pricing); Parquet bytes stand in for the bytes read.
READ_USD_PER_TIB = 1.10
# Cloud Run jobs, tier 1 regions, per vCPU-second and GiB-second (cloud.google.com/run/pricing).
VCPU_USD_PER_S = 0.000018
GIB_USD_PER_S = 0.000002


@dataclass(frozen=True)
class TrainingJobs:
    """The training jobs the page lists the executions of: ``client`` a Cloud Run Admin API
    executions client; ``jobs`` each job's full name; ``shapes`` each job's cpu, memory and
    parallelism (shared/platform.yaml's environment)."""

    client: Any
    jobs: dict[str, str]
    shapes: dict[str, dict[str, Any]]


def add_routes(
    pages: Blueprint,
    store: ModelStore,
    gcs: storage.Client,
    root: str,
    training: TrainingJobs | None = None,
) -> None:
    """The runs page on the desk's blueprint; ``root`` is where fetch runs write."""

    @pages.get("/runs")
    def runs() -> ResponseReturnValue:
        grant: Grant = g.grant
        if not (grant.categories or grant.analyst or grant.reader):
            abort(403, "the runs page is for category managers, analysts and readers")
        found = [_row(gcs, where, when) for where, when in planned(gcs, root, limit=20)]
        models = {"pricing": store.pricing.run_id if store.pricing else None,
                  "promotions": store.promotions.run_id if store.promotions else None}  # fmt: skip
        trained, unavailable = None, None
        if training is not None:
            try:
                trained = _training(training)
            except gexc.GoogleAPICallError as exc:  # e.g. a grant not yet propagated: say so
                unavailable = f"{exc.code}: {exc.message}"
        return render_template("runs.html", runs=found, models=models, trained=trained,
                               unavailable=unavailable)  # fmt: skip


def _row(gcs: storage.Client, destination: str, planned: dt.datetime) -> dict[str, Any]:
    found = state(gcs, destination)
    manifest = found.manifest
    row: dict[str, Any] = {"run_id": found.run_id, "state": found.state, "detail": found.detail,
                           "rows": None, "bytes": None, "seconds": None, "cost": None}  # fmt: skip
    if manifest is not None:
        row["rows"], row["bytes"] = manifest["rows"], manifest["bytes"]
        row["cost"] = manifest["bytes"] / 2**40 * READ_USD_PER_TIB
        if manifest.get("completed_at"):
            ended = dt.datetime.fromisoformat(manifest["completed_at"])
            row["seconds"] = (ended - planned).total_seconds()
    elif found.state == "running":
        row["rows"] = rows_done(gcs, destination)
        row["seconds"] = (dt.datetime.now(dt.UTC) - planned).total_seconds()
    return row


def _training(training: TrainingJobs, per_job: int = 10) -> list[dict[str, Any]]:
    """The newest executions of each training job, newest first."""
    rows = []
    for job, name in training.jobs.items():
        request = {"parent": name, "page_size": per_job}
        listed = training.client.list_executions(request=request, timeout=30)
        for execution in itertools.islice(listed, per_job):  # newest first
            rows.append(_execution(job, execution, training.shapes.get(job, {})))
    return sorted(rows, key=lambda r: r["started"] or dt.datetime.min.replace(tzinfo=dt.UTC),
                  reverse=True)  # fmt: skip


def _execution(job: str, execution: Any, shape: dict[str, Any]) -> dict[str, Any]:
    env = {e.name: e.value for c in execution.template.containers for e in c.env}
    started = execution.start_time or execution.create_time or None
    ended = execution.completion_time or None
    completed = next((c for c in execution.conditions if c.type_ == "Completed"), None)
    state, detail = "running", f"{execution.succeeded_count} of {execution.task_count} tasks done"
    if completed is not None and ended:
        failed = completed.state == completed.State.CONDITION_FAILED
        state, detail = ("failed" if failed else "complete"), completed.message
    seconds = ((ended or dt.datetime.now(dt.UTC)) - started).total_seconds() if started else None
    cost = None
    if seconds is not None and shape:
        memory = float(str(shape.get("memory", "0Gi")).removesuffix("Gi") or 0)
        instances = min(execution.task_count or 1, int(shape.get("parallelism", 1)))
        rate = float(shape.get("cpu", 1)) * VCPU_USD_PER_S + memory * GIB_USD_PER_S
        cost = seconds * instances * rate
    return {"job": job, "run_id": env.get(RUN_ID_VAR), "state": state, "detail": detail,
            "tasks": execution.task_count, "started": started, "seconds": seconds,
            "cost": cost}  # fmt: skip
