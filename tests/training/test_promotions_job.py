"""The promotion job on the local stack: model, scores, pointer and performance table; a rerun
replaces rather than duplicates; too little history is refused before anything is written."""

import os
import pickle
import subprocess
import sys
import uuid

import pyarrow as pa
import pytest

from shared import clients
from shared.fetch.library import gcs_filesystem, run_in_process
from shared.training import promotions_job
from shared.training.artifacts import ArtifactLayout, Keyring, decrypt
from shared.training.dataset import BadInput, Shard
from shared.training.pricing_job import merge, run_task
from shared.training.promotions import PlannedPromotion, PromotionModel

from ..integration.test_fetch_pipeline import new_request

pytestmark = pytest.mark.stack
KEYS = f"k1:{Keyring.new_key()}"


@pytest.fixture(scope="module")
def manifest_uri(stack, settings, retail):
    return run_in_process(new_request(settings, "t", parallelism=2), settings)["uri"]


def run_job(settings, manifest_uri, run_id):
    from local.stack import REPO

    env = {
        **os.environ,
        "RETAIL_MANIFEST_URI": manifest_uri,
        "RETAIL_RUN_ID": run_id,
        "RETAIL_RESULTS_DATASET": "retail",
        "RETAIL_ARTIFACT_KEYS": KEYS,
        # Beside the other tests' objects in the data bucket, not the stack's artifacts bucket.
        "RETAIL_ARTIFACTS": f"gs://{settings.data_bucket}/artifacts",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.promotions"], env=env, cwd=REPO, timeout=300
    ).returncode


def test_the_job_publishes_a_model_that_answers_planned_promotions(settings, retail, manifest_uri):
    gcs, bq = clients.storage_client(settings), clients.bigquery_client(settings)
    bucket = gcs.bucket(settings.data_bucket)
    table = f"{settings.project}.retail.promotion_performance"
    counts = []
    for run_id in ("promo-a", "promo-b"):  # the second run replaces the table's rows
        assert run_job(settings, manifest_uri, run_id) == 0
        counts.append(next(iter(bq.query(f"SELECT COUNT(*) AS n FROM `{table}`").result()))["n"])
    assert counts[0] == counts[1] > 20

    pointer = bucket.blob("artifacts/promotions/LATEST").download_as_text()
    assert pointer.endswith("/artifacts/promotions/promo-b.model")
    blob = bucket.blob("artifacts/promotions/promo-b.model").download_as_bytes()
    model = pickle.loads(decrypt(blob, Keyring.parse(KEYS)))
    assert isinstance(model, PromotionModel) and model.run_id == "promo-b"
    assert model.scores["model_wape"] < model.scores["naive_wape"]
    product = max(model.baselines, key=lambda p: model.baselines[p].weekly_revenue_per_store)
    import datetime as dt

    week, fortnight = model.plan(
        [
            PlannedPromotion(product, "tpr", 0.25, dt.date(2025, 3, 3), 7, feature=True),
            PlannedPromotion(product, "tpr", 0.25, dt.date(2025, 3, 3), 14, feature=True),
        ]
    )
    assert week["uplift"] > 1.2 and week["predicted_revenue"] > week["baseline_revenue"]
    assert fortnight["baseline_revenue"] == pytest.approx(2 * week["baseline_revenue"])

    perf = bq.list_rows(table).to_arrow(create_bqstorage_client=False)
    assert perf.num_rows == len(set(perf["promo_id"].to_pylist()))
    assert set(perf["mechanic"].to_pylist()) <= {"tpr", "multibuy", "bogo"}
    assert None not in perf["category"].to_pylist()
    assert (
        ArtifactLayout.of(f"gs://{settings.data_bucket}/artifacts").latest_scores(gcs)["run_id"]
        == "promo-b"
    )

    # The pricing run's report now carries the promotion model's accuracy.
    run_id = f"p-{uuid.uuid4().hex[:6]}"
    output = f"gs://{settings.data_bucket}/training/pricing/{run_id}"
    run_task(
        manifest_uri,
        run_id,
        Shard(0, 1),
        output,
        gcs=gcs,
        filesystem=gcs_filesystem(settings),
        workers=1,
    )
    merge(
        run_id,
        output,
        1,
        gcs=gcs,
        bq=bq,
        results_table=f"{settings.project}.retail.pricing",
        artifact_uri=f"gs://{settings.data_bucket}/artifacts/pricing/{run_id}.model",
        keyring=Keyring.parse(KEYS),
    )
    page = bucket.blob(f"training/pricing/{run_id}/report.html").download_as_text()
    wape = f"{model.scores['model_wape']:.3f}"
    assert "Promotion model accuracy" in page and wape in page


def test_too_little_history_is_refused_and_nothing_is_written(settings, retail):
    gcs, bq = clients.storage_client(settings), clients.bigquery_client(settings)
    empty = pa.table(
        {
            "promo_id": pa.array([], pa.int64()),
            "product_id": pa.array([], pa.int64()),
            "region": pa.array([], pa.string()),
            "mechanic": pa.array([], pa.string()),
            "discount": pa.array([], pa.float64()),
            "start_date": pa.array([], pa.date32()),
            "end_date": pa.array([], pa.date32()),
            "feature": pa.array([], pa.bool_()),
            "display": pa.array([], pa.bool_()),
        }
    )
    transactions = bq.list_rows(f"{settings.source_dataset}.transactions", max_results=5000)
    artifacts = f"gs://{settings.data_bucket}/artifacts-{uuid.uuid4().hex[:6]}"
    with pytest.raises(BadInput, match="only 0 promotions"):
        promotions_job.run(
            "thin",
            transactions.to_arrow(create_bqstorage_client=False),
            empty,
            None,
            gcs=gcs,
            bq=bq,
            artifacts=artifacts,
            results_table=f"{settings.project}.retail.thin_performance",
            keyring=Keyring.parse(KEYS),
        )
    prefix = artifacts.removeprefix(f"gs://{settings.data_bucket}/")
    assert not list(gcs.list_blobs(settings.data_bucket, prefix=prefix))
