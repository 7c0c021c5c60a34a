"""Substitutes: cross-price elasticities among a category's top products are recovered from
the synthetic retailer (known truth), and pricing them jointly earns the category more than
pricing them one by one."""

import numpy as np
import pyarrow as pa
import pytest

from bench.training_bench import true_category_gain
from shared.synthetic.generate import Shape, build_world, cross_truth, transactions
from shared.training.pricing import Catalog, PricingConfig
from shared.training.substitutes import fit_substitutes, top_by_category


@pytest.fixture(scope="module")
def retailer():
    world = build_world(Shape(n_stores=25, n_products=60, n_days=364), seed=3)
    table = pa.Table.from_batches(list(transactions(world)))
    return world, table, Catalog.of_rows(world.products.to_pylist())


def test_cross_price_elasticities_are_recovered(retailer):
    world, table, catalog = retailer
    groups = fit_substitutes(table, catalog, PricingConfig().rules_by_category(), 3)
    truth = {(p, q): c for p, q, c in cross_truth(world)}
    true_pairs, other_pairs = [], []
    for g in groups:
        for i, p in enumerate(g.products):
            for j, q in enumerate(g.products):
                if i != j and g.cross[i][j] is not None:
                    error = abs(g.cross[i][j] - truth.get((p, q), 0.0))
                    (true_pairs if (p, q) in truth else other_pairs).append(error)
    assert len(true_pairs) >= 6 and np.median(true_pairs) <= 0.15
    assert np.median(other_pairs) <= 0.10  # no substitution where there is none
    # the category's gain under the true demand: jointly at least as good as one by one (to
    # within 1%: chosen on half of the draws, the two can land on the same prices but one)
    joint = sum(true_category_gain(g, world, g.joint_prices) for g in groups if g.joint_prices)
    alone = sum(
        true_category_gain(g, world, g.independent_prices) for g in groups if g.joint_prices
    )
    assert joint > 0 and joint >= 0.99 * alone
    for g in groups:
        if g.decision == "move":
            assert g.gain_low > 0


def test_the_groups_are_each_categorys_top_products_by_revenue(retailer):
    _, table, catalog = retailer
    groups = top_by_category(table, catalog, 2)
    revenue = table.group_by("product_id").aggregate([("revenue", "sum")]).to_pylist()
    by_product = {r["product_id"]: r["revenue_sum"] for r in revenue}
    for category, members in groups.items():
        rest = [p for p, c in catalog.category.items() if c == category and p not in members]
        assert len(members) == 2
        assert min(by_product[m] for m in members) >= max(
            (by_product.get(p, 0) for p in rest), default=0
        )
