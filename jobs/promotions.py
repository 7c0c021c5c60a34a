"""Cloud Run job ``promotions``: build one row per past promotion from the fetched
transactions, train the revenue model with a time-based holdout, publish the encrypted model,
its scores and the realised-performance table (see ``shared/training/promotions_job.py``).

Its settings as for ``jobs.pricing``, plus the promotions and products tables.
"""

from __future__ import annotations

import sys

from google.api_core import exceptions as gexc

from jobs.runner import JobContext, run
from shared.training import promotions_job
from shared.training.dataset import Shard, load_manifest, read_shard


def train(ctx: JobContext) -> None:
    """Train on the whole run (one task) and publish the model and its tables."""
    settings, task = ctx.settings, ctx.settings.task
    manifest = load_manifest(ctx.gcs, task.manifest_uri)
    transactions = read_shard(manifest, Shard(0, 1), ctx.filesystem)
    promotions = ctx.bq.list_rows(settings.promotions_table).to_arrow(create_bqstorage_client=False)
    try:
        products = ctx.bq.list_rows(settings.products_table).to_arrow(create_bqstorage_client=False)
    except gexc.NotFound:
        products = None  # analytics then has no category to filter on
    promotions_job.run(
        task.run_id,
        transactions,
        promotions,
        products,
        gcs=ctx.gcs,
        bq=ctx.bq,
        artifacts=settings.artifacts,
        results_table=settings.results_table("promotion_performance"),
        keyring=ctx.keyring(),
    )


def main() -> int:
    return run("promotions", train)


if __name__ == "__main__":
    sys.exit(main())
