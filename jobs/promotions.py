"""Cloud Run job ``promotions``: build one row per past promotion from the fetched
transactions, train the revenue model with a time-based holdout, write the encrypted model
and its holdout scores.

Environment as for ``jobs.pricing``, plus ``RETAIL_PROMOTIONS_TABLE`` (default
``<project>.retail.promotions``).
"""

from __future__ import annotations

import json
import os
import pickle
import sys

from shared import clients, log
from shared.errors import PermanentError
from shared.fetch.library import gcs_filesystem
from shared.identifiers import GcsUri
from shared.settings import Settings
from shared.training.artifacts import Keyring, encrypt
from shared.training.dataset import Shard, load_manifest, read_shard
from shared.training.promotions import evaluate, promotion_rows, train


def main() -> int:
    log.configure()
    logger = log.get_logger("jobs.promotions")
    try:
        settings = Settings.from_env()
        run_id = os.environ["RETAIL_RUN_ID"]
        gcs = clients.storage_client(settings)
        manifest = load_manifest(gcs, os.environ["RETAIL_MANIFEST_URI"])
        transactions = read_shard(manifest, Shard(0, 1), gcs_filesystem(settings))
        table = os.environ.get("RETAIL_PROMOTIONS_TABLE", f"{settings.project}.retail.promotions")
        promotions = (
            clients.bigquery_client(settings)
            .list_rows(table)
            .to_arrow(create_bqstorage_client=False)
        )
        rows = promotion_rows(transactions, promotions)
        if len(rows["revenue"]) < 20:
            raise PermanentError(f"only {len(rows['revenue'])} promotions with a baseline")
        scores = evaluate(rows)
        model = train(rows)  # the holdout scored it; the served model learns from everything
        keyring = Keyring.from_env()
        base = GcsUri.parse(f"gs://{settings.data_bucket}/artifacts/promotions")
        bucket = gcs.bucket(base.bucket)
        bucket.blob(base.child(f"{run_id}.model").path).upload_from_string(
            encrypt(pickle.dumps(model), keyring)
        )
        bucket.blob(base.child(f"{run_id}.scores.json").path).upload_from_string(
            json.dumps({"run_id": run_id, **scores}, indent=1)
        )
        logger.info(
            "promotion model %s: WAPE %.3f (naive %.3f)",
            run_id,
            scores["model_wape"],
            scores["naive_wape"],
            extra={"run_id": run_id, **scores},
        )
    except (PermanentError, KeyError) as exc:
        logger.error("promotions job failed: %s", exc, extra={"error_type": type(exc).__name__})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
