"""The training input: a fetch run's manifest, checked, and one task's shard of its rows.

A job refuses to start (and writes nothing) on a manifest that is missing, on a run that never
completed (a plan but no manifest), and on a manifest listing a part that is gone. A task
reads only its shard (products with ``product_id % task_count == task_index``), filtered while
the Parquet parts are scanned, so its memory follows the shard, not the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.errors import PermanentError
from shared.fetch.layout import RunLayout
from shared.identifiers import GcsUri


class BadInput(PermanentError):
    """The job's input cannot be trusted; nothing was written."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise BadInput(f"task index {self.index} is outside 0..{self.count - 1}")


def load_manifest(gcs: storage.Client, manifest_uri: str) -> dict:
    """The manifest, after checking the run completed and every part it lists exists."""
    run = RunLayout(RunLayout.destination_of_manifest(GcsUri.parse(manifest_uri)))
    uri = run.manifest
    bucket = gcs.bucket(uri.bucket)
    try:
        manifest = json.loads(bucket.blob(uri.path).download_as_bytes())
    except gexc.NotFound:
        if bucket.blob(run.plan.path).exists():
            raise BadInput(f"fetch run at {run.dest} is not complete (no manifest yet)") from None
        raise BadInput(f"no manifest at {uri}") from None
    except json.JSONDecodeError:
        raise BadInput(f"manifest {uri} is not JSON") from None
    for key in ("run_id", "rows", "parts", "schema"):
        if key not in manifest:
            raise BadInput(f"manifest {uri} has no {key!r}")
    for part in manifest["parts"]:
        p = GcsUri.parse(part["uri"])
        blob = gcs.bucket(p.bucket).get_blob(p.path)
        if blob is None:
            raise BadInput(f"manifest {uri} lists {part['uri']}, which does not exist")
    return manifest


def read_shard(
    manifest: dict,
    shard: Shard,
    filesystem: object,
    columns: list[str] | None = None,
    optional: tuple[str, ...] = (),
    products: list[int] | None = None,
) -> pa.Table:
    """This shard's rows of the manifest's parts (product_id hash-partitioned); columns in
    ``optional`` are read where the parts have them; ``products`` reads those products instead
    of the shard."""
    paths = [part["uri"].removeprefix("gs://") for part in manifest["parts"]]
    if not paths:
        return pa.table({})
    dataset = pads.dataset(paths, format="parquet", filesystem=filesystem)
    product = pc.field("product_id")
    condition = None
    if products is not None:  # these products only, whichever shard they are in
        condition = product.isin(products)
    elif shard.count > 1:
        # product_id mod count (Arrow divides integers by truncation; product ids are positive)
        condition = product - (product / shard.count) * shard.count == shard.index
    if columns is not None:
        columns = [*columns, *(c for c in optional if c in dataset.schema.names)]
    return dataset.to_table(columns=columns, filter=condition)
