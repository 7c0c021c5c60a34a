"""Structured row filters turned into a safe Storage Read API ``row_restriction``.

A filter is data (column, operator, typed values), never SQL text: columns must exist in the
table's schema, each value is checked against the column's type and rendered as a literal of
that type, so nothing from a message can change the shape of the expression.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

from shared.errors import InvalidRequest, SourceNotFound
from shared.identifiers import quote_column
from shared.messages import Predicate, Scalar

_INTS = {"INTEGER", "INT64"}
_FLOATS = {"FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"}
_BOOLS = {"BOOLEAN", "BOOL"}


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def literal(value: Scalar, bq_type: str, column: str) -> str:
    """Render ``value`` as a SQL literal of the column's BigQuery type."""
    bad = InvalidRequest(f"row_filter: value {value!r} does not fit column {column!r} ({bq_type})")
    if bq_type in _BOOLS:
        if not isinstance(value, bool):
            raise bad
        return "TRUE" if value else "FALSE"
    if bq_type in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return str(value)
    if bq_type in _FLOATS:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise bad
        return repr(float(value)) if bq_type.startswith("FLOAT") else f"NUMERIC '{value}'"
    if bq_type == "STRING":
        if not isinstance(value, str):
            raise bad
        return _string(value)
    if bq_type == "DATE":
        try:
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except ValueError:
            raise bad from None
        return f"DATE '{day.isoformat()}'"
    if bq_type in {"TIMESTAMP", "DATETIME"}:
        try:
            moment = (
                value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
            )
        except ValueError:
            raise bad from None
        return f"{bq_type} '{moment.isoformat(sep=' ')}'"
    raise InvalidRequest(f"row_filter: column {column!r} of type {bq_type} cannot be filtered")


def row_restriction(predicates: Sequence[Predicate], column_types: Mapping[str, str]) -> str:
    """AND the predicates into one expression; '' when there are none."""
    parts = []
    for pred in predicates:
        if pred.column not in column_types:
            raise SourceNotFound(f"row_filter: column {pred.column!r} does not exist in the source")
        col, bq_type = quote_column(pred.column), column_types[pred.column]
        values = [literal(v, bq_type, pred.column) for v in pred.values]
        match pred.op:
            case "is null":
                parts.append(f"{col} IS NULL")
            case "is not null":
                parts.append(f"{col} IS NOT NULL")
            case "in":
                parts.append(f"{col} IN ({', '.join(values)})")
            case "not in":
                parts.append(f"NOT ({col} IN ({', '.join(values)}))")
            case "between":
                parts.append(f"({col} >= {values[0]} AND {col} <= {values[1]})")
            case op:
                parts.append(f"{col} {op} {values[0]}")
    return " AND ".join(parts)
