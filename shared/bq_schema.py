"""Arrow schemas as BigQuery schemas: one mapping for every table the platform loads."""

from __future__ import annotations

import pyarrow as pa
from google.cloud import bigquery

_BQ_TYPES = {
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.string(): "STRING",
    pa.large_string(): "STRING",
    pa.bool_(): "BOOL",
    pa.date32(): "DATE",
}


def bq_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """The BigQuery schema of an Arrow schema of plain columns."""
    return [
        bigquery.SchemaField(
            f.name, _BQ_TYPES[f.type], mode="NULLABLE" if f.nullable else "REQUIRED"
        )
        for f in schema
    ]
