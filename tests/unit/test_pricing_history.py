"""A product's weekly history as the pricing artifact carries it."""

import datetime as dt

import pyarrow as pa

from shared.training.pricing import history


def sales(rows):
    dates, products, units, revenue, promo = zip(*rows, strict=True)
    return pa.table({"date": pa.array(dates, pa.date32()), "product_id": list(products),
                     "units": list(units), "revenue": list(revenue),
                     "promo_id": pa.array(promo, pa.int64())})  # fmt: skip


def test_weeks_start_on_monday_and_sum_units_price_paid_and_promotion_share():
    table = sales([
        (dt.date(2026, 1, 5), 1, 2.0, 4.0, None),   # Monday
        (dt.date(2026, 1, 11), 1, 3.0, 6.0, None),  # Sunday, the same week
        (dt.date(2026, 1, 14), 1, 4.0, 6.0, 7),     # on promotion
        (dt.date(2026, 1, 26), 2, 1.0, 5.0, None),
    ])  # fmt: skip
    kept = history.payload(history.weekly(table))
    assert kept["weeks"] == ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert kept["products"]["1"] == {"units": [5.0, 4.0, None, None],
                                     "price": [2.0, 1.5, None, None],
                                     "promo_share": [0.0, 1.0, None, None]}  # fmt: skip
    assert kept["products"]["2"]["units"] == [None, None, None, 1.0]


def test_only_the_newest_weeks_are_kept():
    table = sales([(dt.date(2025, 1, 6) + dt.timedelta(weeks=w), 1, 1.0 + w, 2.0, None)
                   for w in range(10)])  # fmt: skip
    kept = history.payload(history.weekly(table), weeks=4)
    assert kept["weeks"][0] == "2025-02-17" and len(kept["weeks"]) == 4
    assert kept["products"]["1"]["units"] == [7.0, 8.0, 9.0, 10.0]
