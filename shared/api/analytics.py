"""Realised performance of past promotions, read from BigQuery (the table the promotion job
writes). Filters become query parameters, never SQL text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from google.cloud import bigquery

from shared.identifiers import TableRef

COLUMNS = (
    "promo_id",
    "product_id",
    "category",
    "region",
    "mechanic",
    "discount",
    "start_date",
    "end_date",
    "stores",
    "feature",
    "display",
    "revenue",
    "baseline_revenue",
    "uplift",
    "predicted_revenue",
)


@dataclass(frozen=True)
class Filters:
    product_id: int | None = None
    category: str | None = None
    store_id: int | None = None
    mechanic: str | None = None
    start: dt.date | None = None  # promotions running on or after this day
    end: dt.date | None = None  # ... and on or before this one


class PromotionAnalytics:
    def __init__(self, bq: bigquery.Client, performance_table: str, stores_table: str) -> None:
        self.bq = bq
        self.performance = TableRef.parse(performance_table)
        self.stores = TableRef.parse(stores_table)

    def _where(self, filters: Filters) -> tuple[str, list[bigquery.ScalarQueryParameter]]:
        """The filters as a WHERE clause ("" for none) and its parameters."""
        where, params = [], []

        def equal(column: str, kind: str, value: str | int | None) -> None:
            if value is not None:
                where.append(f"{column} = @{column}")
                params.append(bigquery.ScalarQueryParameter(column, kind, value))

        equal("product_id", "INT64", filters.product_id)
        equal("category", "STRING", filters.category)
        equal("mechanic", "STRING", filters.mechanic)
        if filters.start is not None:
            where.append("end_date >= @period_start")
            params.append(bigquery.ScalarQueryParameter("period_start", "DATE", filters.start))
        if filters.end is not None:
            where.append("start_date <= @period_end")
            params.append(bigquery.ScalarQueryParameter("period_end", "DATE", filters.end))
        if filters.store_id is not None:
            # A promotion reaches a store when it ran chain-wide or in the store's region.
            where.append(
                "(region = 'all' OR region IN "
                f"(SELECT region FROM {self.stores.sql} WHERE store_id = @store_id))"
            )
            params.append(bigquery.ScalarQueryParameter("store_id", "INT64", filters.store_id))
        return (f" WHERE {' AND '.join(where)}" if where else ""), params

    def _rows(self, sql: str, params: list[bigquery.ScalarQueryParameter]) -> list[dict]:
        job = self.bq.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        return [dict(row.items()) for row in job.result()]

    def page(self, filters: Filters, limit: int, offset: int) -> tuple[list[dict], bool]:
        """One page of promotions, newest first; and whether another page follows."""
        where, params = self._where(filters)
        rows = self._rows(
            f"SELECT {', '.join(COLUMNS)} FROM {self.performance.sql}{where}"
            f" ORDER BY start_date DESC, promo_id LIMIT {int(limit) + 1} OFFSET {int(offset)}",
            params,
        )
        for row in rows:
            for key in ("start_date", "end_date"):
                row[key] = row[key].isoformat()
        return rows[:limit], len(rows) > limit

    def summary(self, filters: Filters, points: int = 400) -> dict[str, Any]:
        """The filtered promotions summed up: their uplift (revenue over baseline revenue,
        summed, so a large promotion counts for more) by mechanic, category and month of
        start; and the newest ``points`` with a prediction made before they ran, beside what
        they realised, with the error of all such predictions (WAPE)."""
        where, params = self._where(filters)
        total = (
            "COUNT(*) AS promotions, SUM(revenue) AS revenue, "
            "SUM(baseline_revenue) AS baseline_revenue"
        )
        groups = {
            "mechanic": "mechanic",
            "category": "COALESCE(category, '-')",
            "month": "EXTRACT(YEAR FROM start_date) * 100 + EXTRACT(MONTH FROM start_date)",
        }
        out: dict[str, Any] = {}
        for name, expression in groups.items():
            rows = self._rows(
                f"SELECT {expression} AS key, {total} FROM {self.performance.sql}{where} "
                "GROUP BY key ORDER BY key",
                params,
            )
            for row in rows:
                row["uplift"] = (
                    row["revenue"] / row["baseline_revenue"] if row["baseline_revenue"] else None
                )
                if name == "month":
                    row["key"] = f"{int(row['key']) // 100}-{int(row['key']) % 100:02d}"
            out[f"by_{name}"] = rows
        predicted = f"{where} {'AND' if where else 'WHERE'} predicted_revenue IS NOT NULL"
        out["points"] = self._rows(
            "SELECT promo_id, product_id, mechanic, start_date, revenue, predicted_revenue "
            f"FROM {self.performance.sql}{predicted} "
            f"ORDER BY start_date DESC, promo_id LIMIT {int(points)}",
            params,
        )
        error = self._rows(
            "SELECT COUNT(*) AS n, SUM(ABS(revenue - predicted_revenue)) AS miss, "
            f"SUM(revenue) AS revenue FROM {self.performance.sql}{predicted}",
            params,
        )[0]
        out["predicted"] = error["n"]
        out["wape"] = error["miss"] / error["revenue"] if error["n"] and error["revenue"] else None
        out["promotions"] = sum(row["promotions"] for row in out["by_mechanic"])
        return out
