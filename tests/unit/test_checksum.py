"""The content checksum proves equality of row multisets, however the rows are batched."""

import datetime as dt

import pyarrow as pa

from shared.fetch.checksum import checksum_table

TABLE = pa.table(
    {
        "id": pa.array([1, None, 3, 4, 5, 6], pa.int64()),
        "day": pa.array([dt.date(2024, 1, d) for d in range(1, 6)] + [None], pa.date32()),
        "price": pa.array([1.5, 2.0, None, 4.25, 5.0, 6.0]),
        "name": pa.array(["a", "b", "c", None, "e", "f"]),
        "flag": pa.array([True, False, None, True, False, True]),
    }
)


def test_batching_and_order_do_not_change_the_checksum():
    whole = checksum_table(TABLE)
    assert checksum_table(pa.concat_tables([TABLE.slice(3), TABLE.slice(0, 3)])) == whole
    # a batch with no nulls in 'id' next to one with: pandas alone would hash them differently
    assert checksum_table(pa.concat_tables([TABLE.slice(0, 1), TABLE.slice(1)])) == whole
    assert whole[0] == 6


def test_a_lost_doubled_or_changed_row_changes_it():
    whole = checksum_table(TABLE)
    assert checksum_table(TABLE.slice(1)) != whole
    assert checksum_table(pa.concat_tables([TABLE, TABLE.slice(0, 1)]))[1] != whole[1]
    changed = TABLE.set_column(0, "id", pa.array([1, None, 3, 4, 5, 7], pa.int64()))
    assert checksum_table(changed) != whole
    # a NULL is not the same as the fill value used for hashing it
    zeroed = TABLE.set_column(0, "id", pa.array([1, 0, 3, 4, 5, 6], pa.int64()))
    assert checksum_table(zeroed) != whole
