import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shared.synthetic.generate import (
    START,
    TRANSACTIONS_SCHEMA,
    Shape,
    build_world,
    transactions,
)


@pytest.fixture(scope="module")
def world():
    return build_world(Shape.for_rows(300_000), seed=11)


@pytest.fixture(scope="module")
def sales(world):
    return pa.Table.from_batches(list(transactions(world))).to_pandas()


def test_same_seed_same_data_other_seed_other_data(world):
    again = build_world(world.shape, seed=11)
    assert again.promotions.equals(world.promotions)
    first = next(transactions(world))
    assert next(transactions(again)).equals(first)
    assert not next(transactions(build_world(world.shape, seed=12))).equals(first)


def test_size_argument_scales_rows(world, sales):
    assert len(sales) == pytest.approx(300_000, rel=0.25)
    assert len(sales) == pytest.approx(world.expected_rows, rel=0.05)
    small = build_world(Shape.for_rows(5_000), seed=1)
    assert sum(b.num_rows for b in transactions(small)) == pytest.approx(5_000, rel=0.3)


def test_batches_are_bounded_by_the_day_block(world):
    pairs = len(world.pair_store)
    for batch in transactions(world, days_per_batch=7):
        assert batch.schema == TRANSACTIONS_SCHEMA
        assert batch.num_rows <= 7 * pairs


def test_shapes_match_grocery_panels(world, sales):
    e = world.truth.column("true_elasticity").to_numpy()
    assert np.mean((e <= -1) & (e >= -4)) > 0.9
    on_promo_weeks = (world.promo_index >= 0).any(axis=1).mean()
    assert 0.2 <= on_promo_weeks <= 0.5
    promo = sales[sales.promo_id.notna()]
    depth = 1 - promo.price / promo.regular_price
    assert 0.18 <= depth.median() <= 0.3
    by_cell = sales.assign(on=sales.promo_id.notna()).groupby(["store_id", "product_id", "on"])
    lift = by_cell.units.mean().unstack().dropna()
    assert 2 <= (lift[True] / lift[False]).median() <= 5
    store_units = sales.groupby("store_id").units.sum()
    assert store_units.max() > 2.5 * store_units.median()  # skewed store sizes
    assert (sales.units > 0).all() and (sales.revenue >= 0).all()


def test_elasticity_is_recoverable_from_regular_price_changes(world, sales):
    """The truth written alongside is what the data says: a within-store log-log slope on
    non-promoted weeks lands near each product's true elasticity."""
    regular = sales[sales.promo_id.isna()].copy()
    regular["week"] = (pd.to_datetime(regular.date) - pd.Timestamp(START)).dt.days // 7
    weekly = regular.groupby(["product_id", "store_id", "week"]).agg(
        units=("units", "sum"), price=("price", "mean")
    )
    weekly = weekly[weekly.units > 0].reset_index()
    weekly["lq"] = np.log(weekly.units)
    weekly["lp"] = np.log(weekly.price)
    category = dict(
        zip(world.products["product_id"].to_pylist(), world.product_category, strict=True)
    )
    weekly["category"] = weekly.product_id.map(category)
    for col in ("lq", "lp"):  # store-product and category-week (seasonality) effects out
        weekly[col] -= weekly.groupby(["product_id", "store_id"])[col].transform("mean")
        weekly[col] -= weekly.groupby(["category", "week"])[col].transform("mean")
    truth = dict(
        zip(
            world.truth["product_id"].to_pylist(),
            world.truth["true_elasticity"].to_pylist(),
            strict=True,
        )
    )
    errors = []
    for pid, g in weekly.groupby("product_id"):
        if g.lp.std() < 0.03 or len(g) < 100:
            continue
        slope = (g.lp * g.lq).sum() / (g.lp**2).sum()
        errors.append(abs(slope - truth[pid]))
    assert len(errors) > 20
    assert np.median(errors) < 0.35
