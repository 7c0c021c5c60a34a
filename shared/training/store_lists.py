"""The pricing job's store prices: each task's store rows and the stores' covariates written
beside its shard, and in the merge every store's price list (CSV, one per store) with the
zones and the chain's total, for the artifact the API serves.

Files under the run's output::

    stores-shard-00000-of-00002.parquet   a task's store rows (``SLOPE_SCHEMA``)
    store_covariates.json                 task 0: the stores table's covariate columns
    stores/store-00012.csv                the merge: store 12's price list
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared.identifiers import GcsUri
from shared.log import get_logger
from shared.training import task_tables
from shared.training.dataset import Shard
from shared.training.pricing import PricingConfig
from shared.training.pricing.store_prices import StorePrices, store_covariates, store_prices

log = get_logger("shared.training.store_lists")
# A row of ``pricing.stores.store_slopes`` as a task's store shard holds it.
SLOPE_SCHEMA = pa.schema(
    [("product_id", pa.int64()), ("store_id", pa.int64()), ("slope", pa.float64()),
     ("variance", pa.float64()), ("weeks", pa.int64()), ("cells", pa.int64()),
     ("regular_price", pa.float64()), ("weekly_units", pa.float64()),
     ("curvature", pa.float64()), ("curvature_variance", pa.float64())]
)  # fmt: skip
# A store's price as the results table ``<results>_stores`` and the artifact hold it.
STORE_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("store_id", pa.int64()), ("product_id", pa.int64()),
     ("category", pa.string()), ("zone", pa.int64()), ("current_price", pa.float64()),
     ("recommended_price", pa.float64()), ("decision", pa.string()),
     ("reason_code", pa.string()), ("reason", pa.string()), ("expected_gain", pa.float64()),
     ("gain_low", pa.float64()), ("gain_high", pa.float64()), ("elasticity", pa.float64()),
     ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("evidence", pa.string()),
     ("weeks", pa.int64()), ("weekly_units", pa.float64()), ("valid_from", pa.date32())]
)  # fmt: skip
SLOPES = "stores-shard"  # each task's store rows (task_tables)
COVARIATES_FILE = "store_covariates.json"
CSV_COLUMNS = (
    "product_id", "category", "current_price", "recommended_price", "decision", "reason",
    "expected_gain", "gain_low", "gain_high", "zone", "valid_from",
)  # fmt: skip


def write_slopes(gcs: storage.Client, output: str, shard: Shard, rows: list[dict]) -> None:
    """A task's store rows, written before its result shard (the merge waits for that)."""
    task_tables.write(gcs, output, SLOPES, shard, pa.Table.from_pylist(rows, schema=SLOPE_SCHEMA))


def write_covariates(
    bq: bigquery.Client, table: str, names: Sequence[str], gcs: storage.Client, output: str
) -> None:
    """The stores table's ``store_id`` and covariate columns (an empty list without one)."""
    rows: list[dict] = []
    try:
        found = bq.get_table(table)
        wanted = [f for f in found.schema if f.name == "store_id" or f.name in names]
        if any(f.name == "store_id" for f in wanted):
            rows = [dict(r) for r in bq.list_rows(found, selected_fields=wanted)]
    except gexc.NotFound:
        log.warning("pricing: no stores table %s: store effects without covariates", table)
    dest = GcsUri.parse(output).child(COVARIATES_FILE)
    body = json.dumps(rows, default=str).encode()
    gcs.bucket(dest.bucket).blob(dest.path).upload_from_string(body)


def _read(gcs: storage.Client, uri: GcsUri) -> bytes | None:
    blob = gcs.bucket(uri.bucket).get_blob(uri.path)
    return blob.download_as_bytes() if blob is not None else None


def price_lists(
    gcs: storage.Client,
    output: str,
    task_count: int,
    products: list[dict],
    config: PricingConfig,
    run_date: dt.date,
) -> StorePrices | None:
    """Every store's prices from the tasks' store rows (None when store prices are off or no
    task wrote any), each store's CSV written under ``stores/``."""
    if not config.stores.enabled:
        return None
    dest = GcsUri.parse(output)
    slopes = [row for found in task_tables.read_all(gcs, output, SLOPES, task_count)
              if found is not None for row in found.to_pylist()]  # fmt: skip
    if not slopes:
        return None
    found = _read(gcs, dest.child(COVARIATES_FILE))
    covariates, names = store_covariates(json.loads(found) if found else [],
                                         config.stores.covariates)  # fmt: skip
    priced = store_prices(products, slopes, covariates, names,
                          rules=config.rules_by_category(), chain=config.stores)  # fmt: skip
    valid_from = next_monday(run_date)
    for row in priced.rows:
        row["valid_from"] = valid_from.isoformat()
    by_store: dict[int, list[dict]] = {}
    for row in priced.rows:
        by_store.setdefault(row["store_id"], []).append(row)
    for store, rows in by_store.items():
        target = dest.child(f"stores/store-{store:05d}.csv")
        gcs.bucket(target.bucket).blob(target.path).upload_from_string(
            price_list_csv(rows), content_type="text/csv"
        )
    priced.summary["valid_from"] = valid_from.isoformat()
    return priced


def next_monday(day: dt.date) -> dt.date:
    """The first Monday after ``day``: store prices change at the start of a week."""
    return day + dt.timedelta(days=7 - day.weekday())


def price_list_csv(rows: Sequence[dict[str, Any]]) -> str:
    """One store's price list: product, current and recommended price, reason, expected
    weekly gain with its interval, zone (0: the chain price) and the day it applies from."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (-(r["expected_gain"] or 0), r["product_id"])):
        writer.writerow({**row, **{k: _money(row[k]) for k in ("expected_gain", "gain_low",
                                                               "gain_high")}})  # fmt: skip
    return out.getvalue()


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
