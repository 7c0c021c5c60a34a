"""The pricing job as Cloud Run tasks: each task fits its shard of products on a process pool
and writes one deterministic shard file; a final merge loads the results into BigQuery (the
run's rows replaced, never appended twice) and writes the encrypted model artifact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage

from shared.configs import read_text
from shared.identifiers import GcsUri, TableRef
from shared.log import get_logger
from shared.training import task_tables
from shared.training.artifacts import ArtifactLayout, Keyring, publish
from shared.training.dataset import BadInput, Shard, load_manifest, read_shard
from shared.training.pricing import Catalog, PriceResult, PricingConfig, fit_products, history
from shared.training.report import render
from shared.training.results import publish_rows
from shared.training.store_lists import STORE_SCHEMA, price_lists, write_covariates, write_slopes
from shared.training.substitutes import fit_substitutes, top_by_category

log = get_logger("shared.training.pricing_job")
COLUMNS = ["date", "store_id", "product_id", "units", "revenue", "promo_id", "feature", "display"]
OPTIONAL_COLUMNS = ("regular_price",)
_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
RESULT_SCHEMA = pa.schema(
    [("run_id", pa.string())]
    + [(f.name, _ARROW[str(f.type).split(" ")[0]]) for f in dataclasses.fields(PriceResult)]
    + [("rank", pa.int64())]
)


CONFIG_PATH = "config/pricing.yaml"  # in the data bucket


def load_config(location: str | None, gcs: storage.Client) -> PricingConfig:
    """The job's config from a path or ``gs://`` object (JSON or YAML); the defaults where
    there is none."""
    if not location:
        return PricingConfig()
    text = read_text(location, gcs)
    if text is None:
        log.info("pricing: no config at %s, the default rules apply", location)
        return PricingConfig()
    try:
        return PricingConfig.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValueError) as exc:
        raise BadInput(f"pricing config {location}: {exc}") from None


def load_catalog(bq: bigquery.Client, table: str) -> Catalog:
    """Unit cost and category per product from ``table`` (either column may be missing: a
    product without a cost is held, or costed by the config's ``cost_ratio``)."""
    try:
        found = bq.get_table(table)
    except gexc.NotFound:
        log.warning("pricing: no products table %s: no unit costs, no categories", table)
        return Catalog()
    names = {f.name for f in found.schema}
    wanted = [f for f in found.schema if f.name in {"product_id", "unit_cost", "category"}]
    if "product_id" not in names:
        raise BadInput(f"products table {table} has no product_id column")
    return Catalog.of_rows(bq.list_rows(found, selected_fields=wanted))


SHARD = "shard"  # each task's result rows (task_tables), the merge waits for all of them


def shard_name(shard: Shard) -> str:
    return task_tables.name(SHARD, shard)


def _fit_part(
    part: pa.Table, options: dict[str, Any], with_stores: bool
) -> tuple[list[PriceResult], list[dict]]:
    """One worker's products, its linear algebra on one thread: the pool has a process per
    core already, and OpenBLAS's own threads on top (a process x cores) made the fit 12x
    slower on 2 cores (116 s against 9.7 s for 1M rows)."""
    from threadpoolctl import threadpool_limits

    stores: list[dict] | None = [] if with_stores else None
    with threadpool_limits(limits=1):
        return fit_products(part, stores=stores, **options), stores or []


def fit_in_pool(
    table: pa.Table,
    workers: int,
    catalog: Catalog | None = None,
    config: PricingConfig | None = None,
    stores: list[dict] | None = None,
) -> list[PriceResult]:
    """Fit every product of ``table``, products split across ``workers`` processes;
    ``stores``: a list the products' store rows are added to (``fit_product``)."""
    config = config or PricingConfig()
    options: dict[str, Any] = {
        "catalog": catalog,
        "rules": config.rules_by_category(),
        "spec": config.spec,
        "cost_ratio": config.cost_ratio,
        "cost_uncertainty": config.cost_uncertainty,
        "prior": config.prior_variance(),
    }
    if table.num_rows == 0:
        return []
    products, rows = np.unique(table["product_id"].to_numpy(), return_counts=True)
    if workers <= 1 or len(products) < 2:
        return fit_products(table, stores=stores, **options)
    # Balance by rows, not product count: a few products hold most of the sales.
    workers = min(workers, len(products))
    load = np.zeros(workers)
    assigned: list[list[int]] = [[] for _ in range(workers)]
    for i in np.argsort(-rows, kind="stable"):
        target = int(np.argmin(load))
        assigned[target].append(int(products[i]))
        load[target] += rows[i]
    # Each worker gets its products' rows, pickled. Forking this process instead would copy
    # whatever its other threads hold (gRPC's, the pipelined upload's, Arrow's pool): a lock
    # held at the fork never opens in the child, and the pool hangs. The fork server forks
    # from a clean, single-threaded process that has imported the model once.
    parts_in = [table.filter(pc.is_in(table["product_id"], pa.array(g))) for g in assigned]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["shared.training.pricing"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        wanted = [stores is not None] * workers
        parts = list(pool.map(_fit_part, parts_in, [options] * workers, wanted))
    if stores is not None:
        stores.extend(row for _, rows in parts for row in rows)
    return sorted((r for part, _ in parts for r in part), key=lambda r: r.product_id)


def run_task(
    manifest_uri: str,
    run_id: str,
    shard: Shard,
    output: str,
    *,
    gcs: storage.Client,
    filesystem: object,
    workers: int | None = None,
    bq: bigquery.Client | None = None,
    config: PricingConfig | None = None,
    products_table: str | None = None,
) -> str:
    """One task: read the shard, fit, write ``<output>/<shard file>``; returns its URI. With
    ``bq``, unit costs and categories come from the products table: the config's, else
    ``products_table``, else the fetched table's dataset's ``products``."""
    config = config or PricingConfig()
    manifest = load_manifest(gcs, manifest_uri)
    catalog = None
    if bq is not None:
        source = TableRef.parse(manifest["source"])
        products = (
            config.products_table or products_table or f"{source.project}.{source.dataset}.products"
        )
        catalog = load_catalog(bq, products)
        if shard.index == 0 and config.stores.enabled:
            stores_table = config.stores_table or products.rsplit(".", 1)[0] + ".stores"
            write_covariates(bq, stores_table, config.stores.covariates, gcs, output)
    table = read_shard(manifest, shard, filesystem, columns=COLUMNS, optional=OPTIONAL_COLUMNS)
    store_rows: list[dict] | None = [] if config.stores.enabled else None
    results = fit_in_pool(table, workers or os.cpu_count() or 1, catalog, config, store_rows)
    if shard.index == 0 and config.substitutes:
        # One task prices each category's top products jointly: their rows from every shard.
        _write_substitutes(manifest, filesystem, gcs, output, catalog or Catalog(), config)
    if store_rows is not None:
        write_slopes(gcs, output, shard, store_rows)
    history.write(gcs, output, shard, table)
    rows = [{"run_id": run_id, **r.row(), "rank": None} for r in results]
    dest = task_tables.write(
        gcs, output, SHARD, shard, pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    )
    log.info(
        "pricing shard %d/%d: %d products",
        shard.index,
        shard.count,
        len(results),
        extra={"run_id": run_id, "task_index": shard.index, "products": len(results)},
    )
    return str(dest)


SUBSTITUTES_FILE = "substitutes.json"


def _write_substitutes(
    manifest: dict,
    filesystem: object,
    gcs: storage.Client,
    output: str,
    catalog: Catalog,
    config: PricingConfig,
) -> None:
    revenue = read_shard(manifest, Shard(0, 1), filesystem, columns=["product_id", "revenue"])
    tops = top_by_category(revenue, catalog, config.substitutes)
    members = sorted({p for group in tops.values() for p in group})
    rows = read_shard(
        manifest, Shard(0, 1), filesystem, COLUMNS, optional=OPTIONAL_COLUMNS, products=members
    )
    groups = fit_substitutes(
        rows,
        catalog,
        config.rules_by_category(),
        config.substitutes,
        config.spec,
        config.cost_ratio,
    )
    dest = GcsUri.parse(output).child(SUBSTITUTES_FILE)
    body = json.dumps([g.row() for g in groups]).encode()
    gcs.bucket(dest.bucket).blob(dest.path).upload_from_string(body)


def _read_substitutes(gcs: storage.Client, output: str) -> list[dict]:
    dest = GcsUri.parse(output).child(SUBSTITUTES_FILE)
    blob = gcs.bucket(dest.bucket).get_blob(dest.path)
    return json.loads(blob.download_as_bytes()) if blob is not None else []


def ranked(results: pa.Table) -> pa.Table:
    """``rank``: 1 for the recommended move with the largest expected gain, and so on;
    empty for products held."""
    rows = results.to_pylist()
    moves = sorted(
        (i for i, r in enumerate(rows) if r["decision"] == "move"),
        key=lambda i: (-rows[i]["expected_gain"], rows[i]["product_id"]),
    )
    rank: list[int | None] = [None] * len(rows)
    for position, i in enumerate(moves, 1):
        rank[i] = position
    column = results.schema.get_field_index("rank")
    return results.set_column(column, "rank", pa.array(rank, pa.int64()))


def merge(
    run_id: str,
    output: str,
    task_count: int,
    *,
    gcs: storage.Client,
    bq: bigquery.Client,
    results_table: str,
    artifact_uri: str,
    keyring: Keyring,
    config: PricingConfig | None = None,
) -> pa.Table:
    """Collect every shard (all must be there), replace the run's rows, price every store
    (``store_lists``), write the artifact and the report."""
    config = config or PricingConfig()
    dest = GcsUri.parse(output)
    tables = task_tables.read_all(gcs, output, SHARD, task_count)
    missing = [i for i, t in enumerate(tables) if t is None]
    if missing:
        raise BadInput(f"pricing run {run_id}: shard {missing[0]} of {task_count} is missing")
    results = ranked(pa.concat_tables(tables).sort_by("product_id"))
    run_date = dt.datetime.now(dt.UTC).date()
    publish_rows(gcs, bq, results, dest.child("_merged.parquet"), results_table, run_id, run_date)
    products = results.to_pylist()
    substitutes = _read_substitutes(gcs, output)
    stores = price_lists(gcs, output, task_count, products, config, run_date)
    if stores is not None:
        # Every store's prices beside the products': ``<results table>_stores``.
        rows = [{"run_id": run_id, **row, "valid_from": dt.date.fromisoformat(row["valid_from"])}
                for row in stores.rows]  # fmt: skip
        table = pa.Table.from_pylist(rows, schema=STORE_SCHEMA)
        uri = dest.child("_merged_stores.parquet")
        publish_rows(gcs, bq, table, uri, f"{results_table}_stores", run_id, run_date)
    artifact = {
        "kind": "pricing",
        "run_id": run_id,
        "products": products,
        "substitutes": substitutes,
        "stores": stores.rows if stores else [],
        "zones": stores.zones if stores else [],
        "store_summary": stores.summary if stores else {},
        "rules": {k: v.model_dump() for k, v in config.rules_by_category().items()},
        "history": history.collect(gcs, output, task_count),
    }
    # The serving API polls the pointer and swaps to the new model when it changes.
    publish(gcs, artifact_uri, json.dumps(artifact).encode(), keyring)
    # The report shows the newest promotion model's scores beside this run's prices.
    scores = ArtifactLayout.of(artifact_uri.rsplit("/", 2)[0]).latest_scores(gcs)
    page = render(run_id, products, scores, substitutes, stores)
    report = dest.child("report.html")
    gcs.bucket(report.bucket).blob(report.path).upload_from_string(page, content_type="text/html")
    return results


def merge_when_complete(
    run_id: str,
    output: str,
    task_count: int,
    *,
    gcs: storage.Client,
    **merge_kwargs: Any,
) -> bool:
    """Called by every task after its shard: the task that sees all shards merges.

    The set of shard versions is claimed create-only (``_merges/<digest>``), so two tasks that
    finish together do not both merge the same shards; a rerun task writes a new version of
    its shard, hence a new digest, and its merge replaces the run's rows again.
    """
    dest = GcsUri.parse(output)
    bucket = gcs.bucket(dest.bucket)
    versions = []
    for i in range(task_count):
        blob = bucket.get_blob(dest.child(shard_name(Shard(i, task_count))).path)
        if blob is None:
            return False
        versions.append(f"{blob.name}:{blob.generation}")
    digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16]
    try:
        bucket.blob(dest.child(f"_merges/{digest}").path).upload_from_string(
            b"", if_generation_match=0
        )
    except gexc.PreconditionFailed:
        return False
    merge(run_id, output, task_count, gcs=gcs, **merge_kwargs)
    return True
