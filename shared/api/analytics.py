"""Realised performance of past promotions, read from BigQuery (the table the promotion job
writes). Filters become query parameters, never SQL text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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

    def page(self, filters: Filters, limit: int, offset: int) -> tuple[list[dict], bool]:
        """One page of promotions, newest first; and whether another page follows."""
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
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self.performance.sql}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY start_date DESC, promo_id LIMIT {int(limit) + 1} OFFSET {int(offset)}"
        )
        job = self.bq.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        rows = [dict(row.items()) for row in job.result()]
        for row in rows:
            for key in ("start_date", "end_date"):
                row[key] = row[key].isoformat()
        return rows[:limit], len(rows) > limit
