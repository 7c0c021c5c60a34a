"""The pricing model: recovers a known elasticity, and flags what it cannot estimate."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from shared.training.pricing import fit_products

SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("store_id", pa.int64()),
        ("product_id", pa.int64()),
        ("units", pa.int64()),
        ("revenue", pa.float64()),
        ("promo_id", pa.int64()),
        ("feature", pa.bool_()),
        ("display", pa.bool_()),
    ]
)


def transactions(product, prices, *, elasticity=-2.0, stores=6, weeks=60, seed=1, units=None):
    """Daily rows for one product: price per week from ``prices``, Poisson demand."""
    rng = np.random.default_rng(seed)
    rows = {
        k: []
        for k in (
            "date",
            "store_id",
            "product_id",
            "units",
            "revenue",
            "promo_id",
            "feature",
            "display",
        )
    }
    start = dt.date(2025, 1, 6)
    for week in range(weeks):
        price = prices[week % len(prices)]
        for store in range(1, stores + 1):
            for day in range(7):
                n = units if units is not None else rng.poisson(20 * store * price**elasticity)
                if n == 0:
                    continue
                rows["date"].append(start + dt.timedelta(days=7 * week + day))
                rows["store_id"].append(store)
                rows["product_id"].append(product)
                rows["units"].append(n)
                rows["revenue"].append(round(n * price, 2))
                rows["promo_id"].append(None)
                rows["feature"].append(False)
                rows["display"].append(False)
    return pa.table(rows, schema=SCHEMA)


def test_a_known_elasticity_is_recovered_with_an_honest_interval():
    table = transactions(1, [1.0, 1.1, 0.9, 1.2, 0.95], elasticity=-2.0)
    [result] = fit_products(table, unit_costs={1: 0.6})
    assert result.status == "ok"
    assert result.elasticity == pytest.approx(-2.0, abs=0.1)
    assert result.ci_low < -2.0 < result.ci_high
    # elastic demand: the revenue-maximising price is the bottom of the 10% corridor
    assert result.recommended_price == pytest.approx(result.current_price * 0.9, abs=0.01)
    assert result.expected_revenue_change > 0
    # margin-maximising price c*e/(1+e) = 1.2, clipped to the corridor's top
    assert result.margin_price == pytest.approx(result.current_price * 1.1, abs=0.01)


def test_a_single_price_is_flagged_not_estimated():
    [result] = fit_products(transactions(2, [1.5]))
    assert result.status == "insufficient_price_variation" and result.elasticity is None


def test_zero_sales_and_returns_are_flagged_without_crashing():
    sold = transactions(3, [1.0, 1.2], units=0, weeks=2)  # no rows at all for product 3
    returns = transactions(4, [1.0], units=-2, weeks=1)  # only returns
    mixed = transactions(5, [1.0, 1.1, 0.9, 1.2], elasticity=-1.5)
    with_returns = pa.concat_tables([mixed, transactions(5, [1.0], units=-1, weeks=1)])
    results = {
        r.product_id: r for r in fit_products(pa.concat_tables([sold, returns, with_returns]))
    }
    assert 3 not in results
    assert results[4].status == "no_sales" and results[4].returns_rows == 42
    assert results[5].status == "ok" and results[5].returns_rows == 42
    assert results[5].elasticity == pytest.approx(-1.5, abs=0.15)


def test_intervals_hold_the_true_elasticity_across_the_synthetic_retailer():
    """Coverage over many products, including weeks that cross a new year (a day-of-year mean
    over such a week once put them mid-year and made every interval too narrow)."""
    from shared.synthetic.generate import Shape, build_world
    from shared.synthetic.generate import transactions as synthetic

    world = build_world(Shape(n_stores=25, n_products=60, n_days=364), seed=3)
    table = pa.Table.from_batches(list(synthetic(world)))
    truth = dict(zip(world.truth["product_id"].to_pylist(), world.elasticity, strict=True))
    results = [r for r in fit_products(table) if r.status == "ok"]
    assert len(results) >= 50
    covered = np.mean([r.ci_low <= truth[r.product_id] <= r.ci_high for r in results])
    errors = [abs(r.elasticity - truth[r.product_id]) for r in results]
    assert covered >= 0.88, covered
    assert np.median(errors) <= 0.15
