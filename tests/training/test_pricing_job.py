"""The pricing job on the local stack: shards on two tasks, merge to BigQuery, encrypted
artifact, idempotent reruns, and bad input refused before anything is written."""

import csv
import datetime as dt
import io
import itertools
import json
import uuid

import pytest

from shared import clients
from shared.fetch.library import gcs_filesystem, run_in_process
from shared.training.artifacts import ArtifactError, Keyring, decrypt
from shared.training.dataset import BadInput, Shard
from shared.training.pricing_job import merge, run_task

from ..integration.test_fetch_pipeline import new_request

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def manifest_uri(stack, settings, retail):
    request = new_request(settings, "t", parallelism=3)
    return run_in_process(request, settings)["uri"]


def run_all(settings, manifest_uri, run_id, output, tasks=2):
    gcs, bq = clients.storage_client(settings), clients.bigquery_client(settings)
    fs = gcs_filesystem(settings)
    for i in range(tasks):
        run_task(
            manifest_uri, run_id, Shard(i, tasks), output, gcs=gcs, filesystem=fs, workers=2, bq=bq
        )


def test_two_tasks_and_a_merge_give_one_row_per_product_and_reruns_do_not_duplicate(
    settings, retail, manifest_uri
):
    run_id = f"p-{uuid.uuid4().hex[:6]}"
    output = f"gs://{settings.data_bucket}/training/pricing/{run_id}"
    artifact = f"gs://{settings.data_bucket}/artifacts/pricing/{run_id}.bin"
    keyring = Keyring.parse(f"k1:{Keyring.new_key()}")
    gcs, bq = clients.storage_client(settings), clients.bigquery_client(settings)
    table = f"{settings.project}.retail.pricing_results"
    bq.create_dataset(f"{settings.project}.retail", exists_ok=True)

    run_all(settings, manifest_uri, run_id, output)
    kwargs = dict(gcs=gcs, bq=bq, results_table=table, artifact_uri=artifact, keyring=keyring)
    first = merge(run_id, output, 2, **kwargs)
    run_task(  # task 1 killed and rerun, then the merge again
        manifest_uri,
        run_id,
        Shard(1, 2),
        output,
        gcs=gcs,
        filesystem=gcs_filesystem(settings),
        workers=1,
    )
    merge(run_id, output, 2, **kwargs)

    products = retail["rows"]["products"]
    count_sql = (
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT product_id) AS d FROM `{table}` "
        f"WHERE run_id = '{run_id}'"
    )
    row = next(iter(bq.query(count_sql).result()))
    assert (row["n"], row["d"]) == (products, products)
    assert first.num_rows == products
    statuses = set(first["status"].to_pylist())
    assert statuses <= {
        "ok", "weakly_identified", "insufficient_price_variation", "too_few_observations",
        "no_sales",
    }  # fmt: skip
    assert "ok" in statuses
    # unit costs and categories come from the retailer's products table (BigQuery)
    rows = first.to_pylist()
    costed = [r for r in rows if r["status"] == "ok"]
    assert costed and all(r["cost_source"] == "table" and r["unit_cost"] > 0 for r in costed)
    assert all(r["category"] for r in costed)
    # every move is sure of its gain and ranked by it; every hold says why
    moves = sorted((r for r in rows if r["decision"] == "move"), key=lambda r: r["rank"])
    assert [r["rank"] for r in moves] == list(range(1, len(moves) + 1))
    gains = [r["expected_gain"] for r in moves]
    assert gains == sorted(gains, reverse=True) and all(r["gain_low"] > 0 for r in moves)
    assert all(r["reason"] for r in rows if r["decision"] == "hold")

    bucket, _, path = artifact.removeprefix("gs://").partition("/")
    blob = gcs.bucket(bucket).blob(path).download_as_bytes()
    assert b"elasticity" not in blob
    model = json.loads(decrypt(blob, keyring))
    assert model["run_id"] == run_id and len(model["products"]) == products
    with pytest.raises(ArtifactError):
        decrypt(blob, Keyring.parse(f"k1:{Keyring.new_key()}"))
    out_bucket, _, out_path = output.removeprefix("gs://").partition("/")
    page = gcs.bucket(out_bucket).blob(f"{out_path}/report.html").download_as_text()
    assert page.startswith("<!doctype html>") and run_id in page and "<svg" in page

    # Store prices: a row for every store x product sold, every store's CSV, zones within
    # the chain's rules, the store elasticities agreeing with the chain's.
    stores = model["stores"]
    sold = {(r["store_id"], r["product_id"]) for r in retail_pairs(bq, settings)}
    assert {(r["store_id"], r["product_id"]) for r in stores} == sold
    assert all(r["reason"] and r["valid_from"] for r in stores)
    assert dt.date.fromisoformat(stores[0]["valid_from"]).weekday() == 0
    for _, found in itertools.groupby(model["zones"], key=lambda z: z["product_id"]):
        prices = [z["price"] for z in found]
        assert len(prices) <= 3 and max(prices) <= min(prices) * 1.25 + 1e-9
    by_store = {}
    for r in stores:
        by_store.setdefault(r["store_id"], []).append(r)
    for store, rows in by_store.items():
        text = gcs.bucket(out_bucket).blob(f"{out_path}/stores/store-{store:05d}.csv")
        lines = list(csv.DictReader(io.StringIO(text.download_as_text())))
        assert len(lines) == len(rows)
        assert {int(x["product_id"]) for x in lines} == {r["product_id"] for r in rows}
        assert set(lines[0]) >= {"product_id", "current_price", "recommended_price", "reason",
                                 "expected_gain", "valid_from"}  # fmt: skip
    chain = {r["product_id"]: r for r in rows_ok(model)}
    for pid, product in chain.items():
        members = [r for r in stores if r["product_id"] == pid and r["weekly_units"] > 0]
        weights = [r["weekly_units"] for r in members]
        mean = sum(w * r["elasticity"] for w, r in zip(weights, members, strict=True))
        assert mean / sum(weights) == pytest.approx(product["elasticity"], abs=0.05)
    assert "<h2>Store prices</h2>" in page
    # ... and in BigQuery beside the products' (twice merged, once there)
    in_bq = f"SELECT COUNT(*) AS n FROM `{table}_stores` WHERE run_id = '{run_id}'"
    assert next(iter(bq.query(in_bq).result()))["n"] == len(stores)

    # Each product's weekly history: Monday weeks, one after another, whose units add up to
    # what the source sold (the synthetic year fits in the two years the history keeps).
    weeks = [dt.date.fromisoformat(w) for w in model["history"]["weeks"]]
    assert weeks and all(w.weekday() == 0 for w in weeks)
    assert all((b - a).days == 7 for a, b in itertools.pairwise(weeks))
    source = f"{settings.source_dataset}.transactions"
    sold_sql = f"SELECT product_id, SUM(units) AS units FROM `{source}` GROUP BY product_id"
    totals = {r["product_id"]: r["units"] for r in bq.query(sold_sql).result()}
    kept = model["history"]["products"]
    assert {int(p) for p in kept} == set(totals)
    for pid, units in totals.items():
        assert sum(u for u in kept[str(pid)]["units"] if u) == pytest.approx(units)


def rows_ok(model):
    return [p for p in model["products"] if p["status"] == "ok"]


def retail_pairs(bq, settings):
    source = f"{settings.source_dataset}.transactions"
    sql = f"SELECT DISTINCT store_id, product_id FROM `{source}` WHERE units > 0"
    return [dict(r) for r in bq.query(sql).result()]


def test_merge_refuses_a_missing_shard(settings, manifest_uri):
    run_id = f"p-{uuid.uuid4().hex[:6]}"
    output = f"gs://{settings.data_bucket}/training/pricing/{run_id}"
    gcs = clients.storage_client(settings)
    run_task(
        manifest_uri, run_id, Shard(0, 2), output, gcs=gcs, filesystem=gcs_filesystem(settings)
    )
    with pytest.raises(BadInput, match="shard 1 of 2 is missing"):
        merge(
            run_id,
            output,
            2,
            gcs=gcs,
            bq=clients.bigquery_client(settings),
            results_table=f"{settings.project}.retail.pricing_results",
            artifact_uri=f"gs://{settings.data_bucket}/artifacts/x.bin",
            keyring=Keyring.parse(f"k1:{Keyring.new_key()}"),
        )


def _break(settings, manifest_uri, how):
    gcs = clients.storage_client(settings)
    bucket_name, _, path = manifest_uri.removeprefix("gs://").partition("/")
    bucket = gcs.bucket(bucket_name)
    manifest = json.loads(bucket.blob(path).download_as_bytes())
    copy = f"fetch/broken-{uuid.uuid4().hex[:6]}"
    if how == "missing":
        return f"gs://{bucket_name}/{copy}/_manifest.json"
    if how == "incomplete":
        bucket.blob(f"{copy}/_plan.json").upload_from_string("{}")
        return f"gs://{bucket_name}/{copy}/_manifest.json"
    manifest["parts"].append(
        {**manifest["parts"][0], "uri": f"gs://{bucket_name}/{copy}/gone.parquet"}
    )
    bucket.blob(f"{copy}/_manifest.json").upload_from_string(json.dumps(manifest))
    return f"gs://{bucket_name}/{copy}/_manifest.json"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("missing", "no manifest at"),
        ("incomplete", "is not complete"),
        ("missing_part", "gone.parquet, which does not exist"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(settings, manifest_uri, how, reason):
    bad = _break(settings, manifest_uri, how)
    output = f"gs://{settings.data_bucket}/training/pricing/bad-{uuid.uuid4().hex[:6]}"
    gcs = clients.storage_client(settings)
    with pytest.raises(BadInput, match=reason):
        run_task(bad, "bad", Shard(0, 1), output, gcs=gcs, filesystem=gcs_filesystem(settings))
    prefix = output.removeprefix(f"gs://{settings.data_bucket}/")
    assert not list(gcs.list_blobs(settings.data_bucket, prefix=prefix))


def test_the_job_entry_point_as_two_cloud_run_tasks(settings, retail, manifest_uri, monkeypatch):
    """Both tasks run jobs/pricing.py with Cloud Run's variables; the last one merges."""
    import subprocess
    import sys

    from local.stack import REPO

    run_id = f"j-{uuid.uuid4().hex[:6]}"
    env = {
        **dict(__import__("os").environ),
        "RETAIL_MANIFEST_URI": manifest_uri,
        "RETAIL_RUN_ID": run_id,
        "RETAIL_RESULTS_DATASET": "retail",
        "RETAIL_ARTIFACT_KEYS": f"k1:{Keyring.new_key()}",
        "CLOUD_RUN_TASK_COUNT": "2",
        "PYTHONPATH": str(REPO),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jobs.pricing"],
            env={**env, "CLOUD_RUN_TASK_INDEX": str(i), "CLOUD_RUN_TASK_ATTEMPT": "0"},
            cwd=REPO,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    bq = clients.bigquery_client(settings)
    sql = f"SELECT COUNT(*) AS n FROM `{settings.project}.retail.pricing` WHERE run_id = '{run_id}'"
    assert next(iter(bq.query(sql).result()))["n"] == retail["rows"]["products"]
    costed = f"{sql} AND cost_source = 'table'"
    assert next(iter(bq.query(costed).result()))["n"] > 0  # the job read the products table
