"""The promotion job: one row per past promotion, a model trained on all of them (scored first
on a time-based holdout), per-product baselines for planned promotions, and three outputs:

- ``<artifacts>/promotions/<run>.model``: the encrypted model, then the ``LATEST`` pointer the
  API polls (written last, so it never names a model that is not there);
- ``<artifacts>/promotions/<run>.scores.json``: the holdout scores, read by the run report;
- the BigQuery table of realised promotion performance the analytics endpoint serves,
  replaced as a whole (it is recomputed from the full history every run, so a rerun never
  duplicates rows).
"""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery, storage

from shared.bq_schema import bq_schema
from shared.identifiers import TableRef
from shared.log import get_logger
from shared.training.artifacts import ArtifactLayout, Keyring, publish
from shared.training.dataset import BadInput
from shared.training.promotions import (
    MECHANIC_CODES,
    PromotionModel,
    backtest,
    evaluate,
    product_baselines,
    promotion_rows,
    train,
)
from shared.training.report import render

log = get_logger("shared.training.promotions_job")
MIN_PROMOTIONS = 20
_MECHANICS = {code: name for name, code in MECHANIC_CODES.items()}


def performance_table(
    rows: dict[str, np.ndarray],
    promotions: pa.Table,
    products: pa.Table | None,
    predicted: np.ndarray | None = None,
) -> pa.Table:
    """Realised performance per promotion, with the dimensions analytics filters on, and
    ``predicted``: the revenue a model of the earlier promotions predicted (``backtest``)."""
    info = {pid: i for i, pid in enumerate(promotions["promo_id"].to_pylist())}
    at = [info[int(p)] for p in rows["promo_id"]]
    category: dict[int, str] = {}
    if products is not None:
        category = dict(
            zip(products["product_id"].to_pylist(), products["category"].to_pylist(), strict=True)
        )
    product_ids = rows["product_id"].astype(np.int64)
    return pa.table(
        {
            "promo_id": pa.array(rows["promo_id"].astype(np.int64)),
            "product_id": pa.array(product_ids),
            "category": pa.array([category.get(int(p)) for p in product_ids], pa.string()),
            "region": promotions["region"].take(at),
            "mechanic": pa.array([_MECHANICS.get(int(c), "other") for c in rows["mechanic_code"]]),
            "discount": pa.array(rows["discount"]),
            "start_date": promotions["start_date"].take(at),
            "end_date": promotions["end_date"].take(at),
            "stores": pa.array(rows["stores"].astype(np.int64)),
            "feature": pa.array(rows["feature"] > 0),
            "display": pa.array(rows["display"] > 0),
            "revenue": pa.array(np.round(rows["revenue"], 2)),
            "baseline_revenue": pa.array(np.round(rows["baseline"], 2)),
            "uplift": pa.array(rows["revenue"] / rows["baseline"]),
            "predicted_revenue": pa.array(
                np.round(predicted, 2) if predicted is not None else [None] * len(product_ids),
                pa.float64(),
                from_pandas=True,  # NaN: no earlier promotions to learn from
            ),
        }
    ).sort_by([("start_date", "ascending"), ("promo_id", "ascending")])


def run(
    run_id: str,
    transactions: pa.Table,
    promotions: pa.Table,
    products: pa.Table | None,
    *,
    gcs: storage.Client,
    bq: bigquery.Client,
    artifacts: str,
    results_table: str,
    keyring: Keyring,
) -> PromotionModel:
    """Train, score and publish the promotion model of ``run_id``."""
    rows = promotion_rows(transactions, promotions)
    if len(rows["revenue"]) < MIN_PROMOTIONS:
        raise BadInput(
            f"promotion run {run_id}: only {len(rows['revenue'])} promotions with a baseline "
            f"(at least {MIN_PROMOTIONS} needed)"
        )
    predicted = backtest(rows)  # each promotion as the model knew it before it ran
    scores = evaluate(rows, predicted)
    model = train(rows)  # the holdout scored it; the served model learns from everything
    model.baselines = product_baselines(transactions)
    model.run_id, model.scores = run_id, scores

    layout = ArtifactLayout.of(artifacts)
    bucket = gcs.bucket(layout.root.bucket)
    perf = performance_table(rows, promotions, products, predicted)
    staged = layout.performance(run_id)
    buffer = io.BytesIO()
    pq.write_table(perf, buffer)
    bucket.blob(staged.path).upload_from_string(buffer.getvalue())
    bq.load_table_from_uri(
        str(staged),
        str(TableRef.parse(results_table)),
        job_config=bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=bq_schema(perf.schema),
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        ),
    ).result()

    bucket.blob(layout.scores(run_id).path).upload_from_string(
        json.dumps({"run_id": run_id, **scores}, indent=1), content_type="application/json"
    )
    page = render(run_id, [], scores)
    bucket.blob(layout.report(run_id).path).upload_from_string(page, content_type="text/html")
    publish(gcs, str(layout.model("promotions", run_id)), pickle.dumps(model), keyring)
    log.info(
        "promotion model %s: WAPE %.3f (naive %.3f) on %d holdout promotions",
        run_id,
        scores["model_wape"],
        scores["naive_wape"],
        scores["holdout_promotions"],
        extra={"run_id": run_id, **scores},
    )
    return model
