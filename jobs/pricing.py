"""Cloud Run job ``pricing``: one task fits its shard of products; the last one merges.

Its settings (``shared.settings``): the task index and count Cloud Run sets, the run and its
manifest (the execution's overrides), the results dataset, the products table (unit costs and
categories) and the artifact keys. Rules per category and the specification come from an
analyst's file at a fixed place in the data bucket, the defaults without one.
"""

from __future__ import annotations

import sys

from jobs.runner import JobContext, run
from shared.training.artifacts import ArtifactLayout
from shared.training.dataset import Shard
from shared.training.pricing_job import CONFIG_PATH, load_config, merge_when_complete, run_task


def train(ctx: JobContext) -> None:
    """Fit this task's shard, then merge if every shard is in."""
    settings, task = ctx.settings, ctx.settings.task
    shard = Shard(task.index, task.count)
    output = f"gs://{settings.data_bucket}/training/pricing/{task.run_id}"
    config = load_config(f"gs://{settings.data_bucket}/{CONFIG_PATH}", ctx.gcs)
    run_task(
        task.manifest_uri,
        task.run_id,
        shard,
        output,
        gcs=ctx.gcs,
        filesystem=ctx.filesystem,
        bq=ctx.bq,
        config=config,
        products_table=settings.products_table,
    )
    merge_when_complete(
        task.run_id,
        output,
        shard.count,
        gcs=ctx.gcs,
        bq=ctx.bq,
        results_table=settings.results_table("pricing"),
        artifact_uri=str(ArtifactLayout.of(settings.artifacts).model("pricing", task.run_id)),
        keyring=ctx.keyring(),
        config=config,
    )


def main() -> int:
    return run("pricing", train)


if __name__ == "__main__":
    sys.exit(main())
