"""The runs page: the newest fetch runs with their state (complete, failed with its reason,
running with the rows done so far), rows, bytes, duration and an estimate of their cost, and
the model runs the desk serves."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, g, render_template
from flask.typing import ResponseReturnValue
from google.cloud import storage

from shared.api.models import ModelStore
from shared.desk.access import Grant
from shared.fetch.runs import planned, rows_done, state

# The BigQuery Storage Read API's on-demand price per TiB read (us and eu multi-regions,
# cloud.google.com/bigquery/pricing); Parquet bytes stand in for the bytes read.
READ_USD_PER_TIB = 1.10


def add_routes(pages: Blueprint, store: ModelStore, gcs: storage.Client, root: str) -> None:
    """The runs page on the desk's blueprint; ``root`` is where fetch runs write."""

    @pages.get("/runs")
    def runs() -> ResponseReturnValue:
        grant: Grant = g.grant
        if not (grant.categories or grant.analyst or grant.reader):
            abort(403, "the runs page is for category managers, analysts and readers")
        found = [_row(gcs, where, when) for where, when in planned(gcs, root, limit=20)]
        models = {"pricing": store.pricing.run_id if store.pricing else None,
                  "promotions": store.promotions.run_id if store.promotions else None}  # fmt: skip
        return render_template("runs.html", runs=found, models=models)


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
