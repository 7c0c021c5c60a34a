"""Cloud Run job ``pricing``: one task fits its shard of products; the last one merges.

Environment: ``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT`` (set by Cloud Run, or by the
local runner), ``RETAIL_MANIFEST_URI`` and ``RETAIL_RUN_ID`` (execution overrides),
``RETAIL_RESULTS_DATASET`` (default ``<prefix>results``), ``RETAIL_PRODUCTS_TABLE`` (unit costs
and categories), artifact keys (see
``shared/training/artifacts.py``), and the usual ``Settings`` variables.
"""

from __future__ import annotations

import os
import sys

from shared import clients, log
from shared.errors import PermanentError
from shared.fetch.library import gcs_filesystem
from shared.settings import Settings
from shared.training.artifacts import Keyring
from shared.training.dataset import Shard
from shared.training.pricing_job import CONFIG_PATH, load_config, merge_when_complete, run_task


def main() -> int:
    log.configure()
    logger = log.get_logger("jobs.pricing")
    try:
        settings = Settings.from_env()
        shard = Shard(
            int(os.environ.get("CLOUD_RUN_TASK_INDEX", "0")),
            int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1")),
        )
        manifest = os.environ["RETAIL_MANIFEST_URI"]
        run_id = os.environ["RETAIL_RUN_ID"]
        output = f"gs://{settings.data_bucket}/training/pricing/{run_id}"
        gcs = clients.storage_client(settings)
        bq = clients.bigquery_client(settings)
        run_task(
            manifest,
            run_id,
            shard,
            output,
            gcs=gcs,
            filesystem=gcs_filesystem(settings),
            bq=bq,
            # Rules per category and the specification (``PricingConfig``): an analyst's
            # file at a fixed place in the data bucket; the defaults without one.
            config=load_config(f"gs://{settings.data_bucket}/{CONFIG_PATH}", gcs),
            products_table=os.environ.get("RETAIL_PRODUCTS_TABLE"),
        )
        dataset = settings.results_dataset
        merge_when_complete(
            run_id,
            output,
            shard.count,
            gcs=gcs,
            bq=bq,
            results_table=f"{settings.project}.{dataset}.pricing",
            artifact_uri=f"{settings.artifacts}/pricing/{run_id}.model",
            keyring=Keyring.from_env(secret_client=clients.secret_client(settings)),
        )
    except (PermanentError, KeyError) as exc:
        logger.error("pricing task failed: %s", exc, extra={"error_type": type(exc).__name__})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
