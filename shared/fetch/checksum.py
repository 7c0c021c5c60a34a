"""An order-independent content checksum of a table: proves nothing was lost or duplicated.

Each row is hashed (pandas' stable 64-bit row hash over the values) and the hashes are summed
modulo 2**64, so the result does not depend on row or part order but changes if any row is
missing, duplicated or altered. Each column is hashed as fixed-type values plus a null mask, so
the same rows give the same checksum however they are split into batches (pandas would turn an
int column into floats only in the batches that hold a null).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _stable(column: pa.Array) -> dict[str, object]:
    """A column as null mask + filled values of one numpy dtype, whatever the batch holds."""
    kind = column.type
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        column = column.cast(pa.int64() if kind.bit_width == 64 else pa.int32())
    elif pa.types.is_decimal(kind) or not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_boolean(column.type)
        or pa.types.is_string(column.type)
    ):
        column = column.cast(pa.string())
    zero = {"string": "", "bool": False}.get(str(column.type), 0)
    filled = pc.fill_null(column, pa.scalar(zero, column.type))
    return {
        "values": filled.to_numpy(zero_copy_only=False),
        "nulls": column.is_null().to_numpy(zero_copy_only=False),
    }


def checksum_batches(batches: Iterable[pa.RecordBatch], columns: list[str]) -> tuple[int, str]:
    """(rows, hex checksum) over ``columns`` of a stream of record batches; memory per batch."""
    total = 0
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        frame = pd.DataFrame(
            {
                f"{name}.{key}": value
                for name in columns
                for key, value in _stable(batch.column(name)).items()
            }
        )
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        total = (total + int(hashes.sum(dtype="uint64"))) % 2**64
        rows += batch.num_rows
    return rows, f"{total:016x}"


def checksum_table(table: pa.Table, columns: list[str] | None = None) -> tuple[int, str]:
    """(rows, hex checksum) of an Arrow table."""
    columns = columns or table.column_names
    return checksum_batches(table.to_batches(max_chunksize=250_000), columns)
