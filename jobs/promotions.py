"""Cloud Run job ``promotions``: build one row per past promotion from the fetched
transactions, train the revenue model with a time-based holdout, publish the encrypted model,
its scores and the realised-performance table (see ``shared/training/promotions_job.py``).

Environment as for ``jobs.pricing``, plus ``RETAIL_PROMOTIONS_TABLE`` and
``RETAIL_PRODUCTS_TABLE`` (defaults ``<project>.retail.promotions`` / ``.products``).
"""

from __future__ import annotations

import os
import sys

from google.api_core import exceptions as gexc

from shared import clients, log
from shared.errors import PermanentError
from shared.fetch.library import gcs_filesystem
from shared.settings import Settings
from shared.training import promotions_job
from shared.training.artifacts import Keyring
from shared.training.dataset import Shard, load_manifest, read_shard


def main() -> int:
    log.configure()
    logger = log.get_logger("jobs.promotions")
    try:
        settings = Settings.from_env()
        run_id = os.environ["RETAIL_RUN_ID"]
        gcs = clients.storage_client(settings)
        bq = clients.bigquery_client(settings)
        manifest = load_manifest(gcs, os.environ["RETAIL_MANIFEST_URI"])
        transactions = read_shard(manifest, Shard(0, 1), gcs_filesystem(settings))
        source = f"{settings.project}.retail"
        promotions = bq.list_rows(
            os.environ.get("RETAIL_PROMOTIONS_TABLE", f"{source}.promotions")
        ).to_arrow(create_bqstorage_client=False)
        try:
            products = bq.list_rows(
                os.environ.get("RETAIL_PRODUCTS_TABLE", f"{source}.products")
            ).to_arrow(create_bqstorage_client=False)
        except gexc.NotFound:
            products = None  # analytics then has no category to filter on
        dataset = settings.results_dataset
        promotions_job.run(
            run_id,
            transactions,
            promotions,
            products,
            gcs=gcs,
            bq=bq,
            artifacts=settings.artifacts,
            results_table=f"{settings.project}.{dataset}.promotion_performance",
            keyring=Keyring.from_env(secret_client=clients.secret_client(settings)),
        )
    except (PermanentError, KeyError) as exc:
        logger.error("promotions job failed: %s", exc, extra={"error_type": type(exc).__name__})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
