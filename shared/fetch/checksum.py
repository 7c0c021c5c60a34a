"""An order-independent content checksum of a table: proves nothing was lost or duplicated.

Each row is hashed (pandas' stable 64-bit row hash over the values) and the hashes are summed
modulo 2**64, so the result does not depend on row or part order but changes if any row is
missing, duplicated or altered.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa


def checksum_batches(batches: Iterable[pa.RecordBatch], columns: list[str]) -> tuple[int, str]:
    """(rows, hex checksum) over ``columns`` of a stream of record batches; memory per batch."""
    total = 0
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        frame = batch.select(columns).to_pandas()
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        total = (total + int(hashes.sum(dtype="uint64"))) % 2**64
        rows += batch.num_rows
    return rows, f"{total:016x}"


def checksum_table(table: pa.Table, columns: list[str] | None = None) -> tuple[int, str]:
    """(rows, hex checksum) of an Arrow table."""
    columns = columns or table.column_names
    return checksum_batches(table.to_batches(max_chunksize=250_000), columns)
