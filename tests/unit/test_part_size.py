"""Parts are cut at a row count chosen from the row width, so memory per part is bounded."""

from google.cloud.bigquery import SchemaField

from shared.fetch.worker import row_width, rows_per_part

NARROW = [SchemaField("id", "INT64"), SchemaField("day", "DATE"), SchemaField("ok", "BOOL")]
WIDE = [SchemaField(f"s{i}", "STRING") for i in range(200)]
NESTED = [
    SchemaField("id", "INT64"),
    SchemaField("lines", "RECORD", mode="REPEATED", fields=[SchemaField("sku", "STRING")]),
]


def test_width_follows_types_nesting_and_repetition():
    assert row_width(NARROW) == 9 + 5 + 2
    assert row_width(WIDE) == 200 * 49
    assert row_width(NESTED) == 9 + 49 * 4 + 1


def test_a_wide_table_gets_fewer_rows_per_part_than_a_narrow_one():
    narrow = rows_per_part(NARROW, target_mb=32, max_rows=10_000_000)
    wide = rows_per_part(WIDE, target_mb=32, max_rows=10_000_000)
    assert narrow == 32 * 2**20 // 16
    assert wide == 32 * 2**20 // (200 * 49)
    assert rows_per_part(NARROW, target_mb=32, max_rows=4000) == 4000


def test_measured_bytes_win_when_the_schema_underestimates():
    # 1 KB per row measured (long strings), the selected half of the columns
    rows = rows_per_part(WIDE, target_mb=32, max_rows=10**9, measured_row_bytes=40_000, share=0.5)
    assert rows == 32 * 2**20 // 20_000
