"""Store-level elasticities and store prices: the pooling, the zones under the chain's rules,
and the volume at the regular price where a recent week was on deal everywhere."""

import datetime as dt
import itertools

import numpy as np
import pyarrow as pa
import pytest

from shared.training.pricing import Catalog, Rules, StoreRules, fit_products
from shared.training.pricing.store_prices import store_covariates, store_prices
from shared.training.pricing.stores import pool
from shared.training.pricing.zones import NO, choose, zone_prices


def simulated_slopes(seed=3, n_stores=30, n_products=80, small=(0, 1)):
    """Store slopes = product's + store effect (half explained by a covariate) + noise; the
    ``small`` stores have 100x the noise (a tenth of the data, twice over)."""
    rng = np.random.default_rng(seed)
    income = rng.standard_normal(n_stores)
    effect = 0.2 * income + rng.normal(0, 0.2, n_stores)
    product_e = rng.normal(-2.5, 0.5, n_products)
    rows = []
    for p, s in itertools.product(range(n_products), range(n_stores)):
        sd = 0.6 * (10 if s in small else 1)
        rows.append({"product_id": p + 1, "store_id": s + 1,
                     "slope": product_e[p] + effect[s] + rng.normal(0, sd),
                     "variance": sd**2, "weeks": 52, "cells": 60,
                     "regular_price": 2.99, "weekly_units": 20.0})  # fmt: skip
    covariates = {s + 1: [float(income[s])] for s in range(n_stores)}
    return rows, covariates, effect, product_e


def test_pooling_recovers_the_store_effects_and_a_small_store_is_pulled_to_its_covariates():
    rows, covariates, effect, _ = simulated_slopes()
    found = pool(
        np.array([r["product_id"] for r in rows]),
        np.array([r["store_id"] for r in rows]),
        np.array([r["slope"] for r in rows]),
        np.array([r["variance"] for r in rows]),
        covariates,
        ["income"],
    )
    truth = effect - effect.mean()
    assert np.corrcoef(found.effect, truth)[0, 1] > 0.9
    assert found.gamma[1] == pytest.approx(0.2 * np.std(list(covariates.values())), abs=0.08)
    assert 0.1 < found.tau_store < 0.3
    # The small stores lean on their covariates, the others on their own data.
    assert found.own_weight[:2].max() < 0.5 < found.own_weight[2:].min()
    assert np.abs(found.effect[:2] - found.predicted[:2]).max() < 0.1


def test_store_elasticities_agree_with_the_chain_and_small_stores_beat_the_chain_estimate():
    rows, covariates, effect, product_e = simulated_slopes()
    products = [{"product_id": p + 1, "status": "ok", "elasticity": float(e), "std_error": 0.05,
                 "weeks": 52, "regular_price": 2.99, "recommended_price": 2.99,
                 "unit_cost": 1.5, "category": None} for p, e in enumerate(product_e)]  # fmt: skip
    priced = store_prices(products, rows, covariates, ["income"], draws=200)
    by_product: dict[int, list[dict]] = {}
    for r in priced.rows:
        by_product.setdefault(r["product_id"], []).append(r)
    for p, members in by_product.items():
        mean = np.mean([m["elasticity"] for m in members])  # equal volumes
        assert mean == pytest.approx(product_e[p - 1], abs=1e-6)
    truth = effect - effect.mean()
    small = [r for r in priced.rows if r["store_id"] in (1, 2)]
    store_error = np.median([abs(r["elasticity"] - product_e[r["product_id"] - 1]
                                 - truth[r["store_id"] - 1]) for r in small])  # fmt: skip
    chain_error = np.median([abs(truth[r["store_id"] - 1]) for r in small])
    assert store_error <= chain_error
    assert priced.summary["method"].startswith("two-level Fay-Herriot")


def test_the_chain_models_holds_stand_at_every_store():
    """A product the chain model holds as inelastic is not moved to a corridor's top store by
    store: every store keeps today's price, and says why."""
    rows, covariates, _, product_e = simulated_slopes(n_products=4)
    products = [{"product_id": p + 1, "status": "ok", "elasticity": float(e), "std_error": 0.05,
                 "weeks": 52, "regular_price": 2.99, "recommended_price": 2.99, "unit_cost": 1.5,
                 "category": None, "reason_code": "inelastic" if p == 0 else "gain_uncertain",
                 "reason": "demand is inelastic"} for p, e in enumerate(product_e)]  # fmt: skip
    products[1]["elasticity"] = -0.5  # every store's own elasticity above -1 too
    priced = store_prices(products, rows, covariates, ["income"], draws=200)
    for pid in (1, 2):
        mine = [r for r in priced.rows if r["product_id"] == pid]
        assert all(r["recommended_price"] == r["current_price"] == 2.99 for r in mine)
        assert all(r["zone"] == 0 for r in mine)
    assert {r["reason_code"] for r in priced.rows if r["product_id"] == 1} == {"chain_hold"}
    assert "inelastic" in priced.rows[0]["reason"]


def brute_force(gain, grid, zones, spread):
    best = -np.inf
    n = gain.shape[0]
    for assignment in itertools.product(range(zones), repeat=n):
        for prices in itertools.product(range(len(grid)), repeat=zones):
            used = {prices[a] for a in assignment}
            levels = [grid[i] for i in used]
            if max(levels) > min(levels) * (1 + spread) + 1e-9:
                continue
            value = sum(gain[s, prices[a]] for s, a in enumerate(assignment))
            best = max(best, value)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_zones_are_the_best_the_rules_allow(seed):
    rng = np.random.default_rng(seed)
    grid = np.array([1.99, 2.29, 2.49, 2.79, 2.99])
    gain = rng.normal(0, 1, (5, len(grid)))
    gain[rng.random(gain.shape) < 0.2] = NO
    gain[:, 2] = rng.normal(0, 1, 5)  # every store may take the middle price
    solved = zone_prices(gain, grid, 2, 0.15)
    assert solved is not None
    assignment, prices, total = solved
    assert len(prices) <= 2 and prices.max() <= prices.min() * 1.15 + 1e-9
    chosen = gain[np.arange(5), np.searchsorted(grid, prices[assignment])]
    assert (chosen > NO / 2).all() and chosen.sum() == pytest.approx(total)
    assert total == pytest.approx(brute_force(gain, grid, 2, 0.15))


def test_a_store_with_little_evidence_keeps_the_chain_price_and_alike_stores_keep_it_all():
    rules = Rules(corridor=0.2, max_change=0.2, endings=())
    chain = StoreRules(max_zones=2, max_spread=0.5)
    regular, volume = np.full(4, 3.0), np.full(4, 50.0)
    rng = np.random.default_rng(1)
    # Two elastic stores, two inelastic-ish ones: zones pay; store 3 has no evidence.
    draws = np.array([-4.0, -4.0, -1.6, -1.6])[:, None] + 0.05 * rng.standard_normal((4, 400))
    evidence = np.array([True, True, True, False])
    found = choose(regular, volume, draws, evidence, 1.5, 1.0, rules, chain)
    assert found.code == "zones" and found.zone[3] == 0 and found.price[3] == 3.0
    assert found.price[0] < 3.0 < found.price[2] and found.zone[0] != found.zone[2]
    # Alike stores: store prices cannot beat the chain's own optimum.
    same = np.full((4, 400), -3.0) + 0.05 * rng.standard_normal((4, 400))
    # Cost 1.5, e = -3: the optimum 2.25 lies below the rules' floor, 2.40, the chain's price.
    ratio = 2.25 / 3.0
    alike = choose(regular, volume, same, np.full(4, True), 1.5, ratio, rules, chain)
    assert alike.code in ("chain_price", "chain_price_uncertain")
    assert np.allclose(alike.price, 2.40)  # the chain's move, at the nearest allowed price


def test_store_covariates_take_numbers_and_a_few_categories():
    rows = [{"store_id": 1, "income_index": 0.5, "format": "hyper"},
            {"store_id": 2, "income_index": None, "format": "express"},
            {"store_id": 3, "income_index": -0.2, "format": "super"}]  # fmt: skip
    found, names = store_covariates(rows, ("income_index", "format", "missing"))
    assert names == ["income_index", "format=hyper", "format=super"]
    assert found[1] == [0.5, 1.0, 0.0] and np.isnan(found[2][0]) and found[3][2] == 1.0


def test_the_regular_price_volume_ignores_a_recent_week_every_store_spent_on_deal():
    """A week on deal everywhere cannot tell the week's demand from the deal's: the volume
    at the regular price was extrapolated from it (1,000x on the hard world's product 41)."""
    rng = np.random.default_rng(5)
    rows = []
    for store, week in itertools.product(range(1, 7), range(30)):
        regular = 3.0 * (1.1 if (week + store) % 9 < 4 else 1.0)
        deal = week == 27  # everywhere, the same depth
        price = regular * (0.6 if deal else 1.0)
        units = rng.poisson(40 * (regular / 3.0) ** -2.5 * (2.5 if deal else 1.0))
        day = dt.date(2024, 1, 1) + dt.timedelta(weeks=week)
        rows.append({"date": day, "store_id": store, "product_id": 1,
                     "units": int(units), "revenue": round(units * price, 2),
                     "regular_price": regular, "promo_id": 1 if deal else None,
                     "feature": False, "display": False})  # fmt: skip
    table = pa.Table.from_pylist(rows).cast(
        pa.schema(
            [
                ("date", pa.date32()),
                ("store_id", pa.int64()),
                ("product_id", pa.int64()),
                ("units", pa.int64()),
                ("revenue", pa.float64()),
                ("regular_price", pa.float64()),
                ("promo_id", pa.int64()),
                ("feature", pa.bool_()),
                ("display", pa.bool_()),
            ]
        )
    )
    result = fit_products(table, Catalog({1: 1.5}))[0]
    assert result.status == "ok"
    regular_weeks = [
        r["units"]
        for r in rows
        if r["promo_id"] is None and r["date"] >= dt.date(2024, 1, 1) + dt.timedelta(weeks=22)
    ]
    assert result.weekly_units == pytest.approx(np.mean(regular_weeks) * 6, rel=0.3)
