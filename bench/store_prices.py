"""Store prices on the hard synthetic retailer (stores' elasticities differ by demographics,
format and what these do not explain; two small stores open late), with the chain-only model
beside: store-level elasticities against the truth, and the decisions' profit on held-out
weeks against the store-level oracle's (true demand, the same rules: per-store corridors, at
most ``max_zones`` zones, their spread) and against one chain price. Then the fit's cost: per
million rows and per store x product cell, 1 and 2 worker processes, and the merge.

    .venv/bin/python -m bench.store_prices [--rows 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

TARGETS = {
    "store elasticity: median |error|": "<= 0.25",
    "corr(estimated, true store difference)": ">= 0.6",
    "store 95% interval coverage": "90-98%",
    "profit / store-level oracle's (held out)": ">= 93%",
    "small stores (<= 1/10 median data): median |error|": "<= chain's",
}


def held_out_profit(world, volume, product: int, stores: np.ndarray, prices: np.ndarray) -> float:
    """True weekly profit of ``product`` (a position) over the held-out weeks with each store
    (positions) at its price."""
    from shared.synthetic.demand import pair_elasticity, relative_demand

    rows = np.flatnonzero(world.pair_product == product)
    where = {int(world.pair_store[r]): r for r in rows}
    pairs = np.array([where[int(s)] for s in stores])
    e = pair_elasticity(world)[pairs]
    form = np.full(len(pairs), world.demand_form[product])
    units = volume[pairs] * relative_demand(form, e, prices / world.reference_price[product])
    return float(((prices - world.unit_cost[product]) * units).sum())


def oracle(world, volume, product, stores, regular, rules, chain) -> float:
    """The store-level oracle's held-out profit: the same rules, true demand, every store."""
    from shared.training.pricing.decide import _candidates
    from shared.training.pricing.zones import NO, zone_prices

    cost = float(world.unit_cost[product])
    bounds = [rules.bounds(float(r), cost) for r in regular]
    grid = _candidates(min(b[1] for b in bounds), max(b[3] for b in bounds), rules.endings)
    if not len(grid):
        return held_out_profit(world, volume, product, stores, regular)
    today = np.array([held_out_profit(world, volume, product, stores[i : i + 1], regular[i : i + 1])
                      for i in range(len(stores))])  # fmt: skip
    gain = np.full((len(stores), len(grid)), NO)
    for i, b in enumerate(bounds):
        for j, g in enumerate(grid):
            if b[1] - 1e-9 <= g <= b[3] + 1e-9:
                at = held_out_profit(world, volume, product, stores[i : i + 1], np.array([g]))
                gain[i, j] = at - today[i]
    solved = zone_prices(gain, grid, chain.max_zones, chain.max_spread)
    best_chain = today.sum()
    if solved is None:
        return best_chain
    return max(best_chain, today.sum() + solved[2])


def run(rows: int, seed: int) -> dict[str, dict[str, float]]:
    from bench.pricing_worlds import world_and_table
    from shared.synthetic.demand import holdout_volume
    from shared.training.pricing import PricingConfig
    from shared.training.pricing.store_prices import store_covariates, store_prices
    from shared.training.pricing_job import fit_in_pool

    world, table, catalog = world_and_table(rows, seed, hard=True)
    config = PricingConfig()
    timings: dict[str, float] = {}
    for workers in (1, 2):
        found: list[dict] = []
        t0 = time.perf_counter()
        results = fit_in_pool(table, workers, catalog, config, stores=found)
        timings[f"fit {workers}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit_in_pool(table, 2, catalog, config)
    timings["chain only 2"] = time.perf_counter() - t0
    products = [r.row() for r in results]
    covariates, names = store_covariates(world.stores.to_pylist(), config.stores.covariates)
    t0 = time.perf_counter()
    priced = store_prices(products, found, covariates, names, rules=config.rules_by_category(),
                          chain=config.stores)  # fmt: skip
    timings["merge"] = time.perf_counter() - t0
    measured = _measure(world, holdout_volume(world), products, priced, config)
    cells = len(found)
    print(f"\nstore prices, hard world: {table.num_rows:,} rows, {cells:,} store x product cells, "
          f"{len({r['store_id'] for r in found})} stores")  # fmt: skip
    print(f"{'measure':<52}{'chain only':>12}{'store level':>13}   target")
    for label, values in measured.items():
        chain, store = values.get("chain", np.nan), values.get("store", np.nan)
        show = (
            _percent
            if "coverage" in label or label.startswith(("profit", "store prices"))
            else _plain
        )
        print(f"{label:<52}{show(chain):>12}{show(store):>13}   {TARGETS.get(label, '')}")
    s = priced.summary
    mean, low, high = s["store_vs_chain"]
    print(f"\nexpected weekly profit of store prices over one chain price (model, "
          f"{s['confidence']:.0%} interval): {mean:+,.0f} [{low:+,.0f}, {high:+,.0f}]")  # fmt: skip
    print(f"store effects: tau {s['tau_store']:.3f}, pairs' own tau {s['tau_pair']:.3f}, "
          f"covariates explain {s['explained']:.0%}; products with zones "
          f"{s['products_with_zones']}/{s['products_priced']}")  # fmt: skip
    print(f"\n{'cost':<52}{'seconds':>12}")
    for label, key in (("fit, chain only, 2 workers", "chain only 2"),
                       ("fit with store slopes, 1 worker", "fit 1"),
                       ("fit with store slopes, 2 workers", "fit 2"),
                       ("merge: pooling and store prices", "merge")):  # fmt: skip
        print(f"{label:<52}{timings[key]:>12.2f}")
    print(f"{'fit per 1M rows, 2 workers':<52}{timings['fit 2'] / table.num_rows * 1e6:>12.2f}")
    print(f"{'fit per 1,000 store x product cells, 2 workers':<52}"
          f"{timings['fit 2'] / cells * 1e3:>12.2f}")  # fmt: skip
    print(f"{'merge per 1,000 cells':<52}{timings['merge'] / cells * 1e3:>12.2f}")
    print(f"{'speed-up, 1 -> 2 workers':<52}{timings['fit 1'] / timings['fit 2']:>11.2f}x")
    return measured


def _plain(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f}"


def _percent(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.1%}"


def _measure(world, volume, products, priced, config) -> dict[str, dict[str, float]]:
    from shared.training.pricing.zones import chain_prices

    truth = world.store_truth.to_pandas().set_index(["store_id", "product_id"])["true_elasticity"]
    chain_truth = dict(zip(world.truth["product_id"].to_pylist(),
                           world.truth["true_elasticity"].to_pylist(), strict=True))  # fmt: skip
    chain = {p["product_id"]: p for p in products}
    rows = [r for r in priced.rows if r["elasticity"] is not None]
    true = np.array([truth[(r["store_id"], r["product_id"])] for r in rows])
    est = np.array([r["elasticity"] for r in rows])
    chain_est = np.array([chain[r["product_id"]]["elasticity"] for r in rows])
    chain_low = np.array([chain[r["product_id"]]["ci_low"] for r in rows])
    chain_high = np.array([chain[r["product_id"]]["ci_high"] for r in rows])
    true_chain = np.array([chain_truth[r["product_id"]] for r in rows])
    low, high = np.array([r["ci_low"] for r in rows]), np.array([r["ci_high"] for r in rows])
    units = {}
    for r in priced.rows:
        units[r["store_id"]] = units.get(r["store_id"], 0.0) + r["weekly_units"]
    median_units = float(np.median(list(units.values())))
    small = np.array([units[r["store_id"]] <= median_units / 10 for r in rows])
    by_product: dict[int, list[dict]] = {}
    for r in priced.rows:
        by_product.setdefault(r["product_id"], []).append(r)
    totals = {"store": 0.0, "chain": 0.0, "oracle": 0.0}
    per_product: list[tuple[float, float]] = []
    rules = config.rules_by_category()
    for pid, members in by_product.items():
        p, stores = pid - 1, np.array([m["store_id"] - 1 for m in members])
        regular = np.array([m["current_price"] for m in members])
        product = chain[pid]
        ratio = (product.get("recommended_price") or product["regular_price"]) / (
            product["regular_price"] or 1.0
        )
        rule = rules.get(product.get("category") or "*", rules["*"])
        prices = np.array([m["recommended_price"] for m in members])
        store_profit = held_out_profit(world, volume, p, stores, prices)
        # One chain price: the chain decision's move at every store, at its nearest allowed price.
        snapped = chain_prices(regular, ratio, rule, float(world.unit_cost[p]))
        chain_profit = held_out_profit(world, volume, p, stores, snapped)
        totals["store"] += store_profit
        totals["chain"] += chain_profit
        per_product.append((store_profit, chain_profit))
        totals["oracle"] += oracle(world, volume, p, stores, regular, rule, config.stores)
    pairs = np.array(per_product)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(pairs), (2000, len(pairs)))
    boot = pairs[picks].sum(axis=1)
    ratio_low, ratio_high = np.quantile(boot[:, 0] / boot[:, 1], [0.05, 0.95])
    gained = boot[:, 0] - boot[:, 1]
    print(
          f"\nheld out (true demand): store prices' weekly profit over one chain price's "
          f"{totals['store'] - totals['chain']:+,.0f} (90% bootstrap over products "
          f"[{np.quantile(gained, 0.05):+,.0f}, {np.quantile(gained, 0.95):+,.0f}]), ratio "
          f"{totals['store'] / totals['chain']:.2%} [{ratio_low:.2%}, {ratio_high:.2%}]"
    )  # fmt: skip
    return {
        "store elasticity: median |error|": {
            "chain": float(np.median(np.abs(chain_est - true))),
            "store": float(np.median(np.abs(est - true))),
        },
        "corr(estimated, true store difference)": {
            "store": float(np.corrcoef(est - chain_est, true - true_chain)[0, 1]),
        },
        "store 95% interval coverage": {
            "chain": float(np.mean((chain_low <= true) & (true <= chain_high))),
            "store": float(np.mean((low <= true) & (true <= high))),
        },
        "profit / store-level oracle's (held out)": {
            "chain": totals["chain"] / totals["oracle"],
            "store": totals["store"] / totals["oracle"],
        },
        "store prices' profit / one chain price's (held out)": {
            "store": totals["store"] / totals["chain"],
        },
        "small stores (<= 1/10 median data): median |error|": {
            "chain": float(np.median(np.abs(chain_est - true)[small])) if small.any() else np.nan,
            "store": float(np.median(np.abs(est - true)[small])) if small.any() else np.nan,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    run(args.rows, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
