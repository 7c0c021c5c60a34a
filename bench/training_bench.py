"""Pricing model benchmark: the synthetic retailer (true elasticities, costs and regular
prices known) and a real public panel (Dunnhumby's The Complete Journey, from PyPI).

    .venv/bin/python -m bench.training_bench [--rows 1000000] [--real-products 150]

Prints, in one run: the elasticity estimates against the truth on the easy world and the
process-pool speedup with 1 and 2 workers; then ``bench.pricing_worlds``' table (the easy and
the hard world side by side, the default and the naive estimator beside each: elasticity
error and coverage, profit at the decisions against the oracle's on held-out weeks, expected
against realised gains); the decisions (moved / held and why, rule edges, changes); joint
pricing of substitutes; the promotion model's holdout WAPE beside the naive uplift and a
plain gradient-boosted model on both worlds; then the decisions on the real panel, with the
default and the plain log-log elasticity per category side by side, and what the store-level
model supports and decides there; last, ``bench.store_prices``' table (store prices on the
hard world with the chain-only model beside, and their cost).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

# One BLAS thread per process, set before numpy loads: the speedup measured is the pool's.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", help="also write the run report (HTML) to this path")
    parser.add_argument(
        "--tasks",
        type=int,
        default=4,
        help="also simulate 1 and N Cloud Run tasks on Parquet parts (peak RSS per task)",
    )
    parser.add_argument("--real-products", type=int, default=150, help="0: skip the real data")
    parser.add_argument("--one-task", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_task:
        return _one_task(*args.one_task)
    from bench.pricing_worlds import world_and_table
    from shared.training.pricing_job import fit_in_pool

    world, table, catalog = world_and_table(args.rows, args.seed, hard=False)
    truth = dict(
        zip(
            world.truth["product_id"].to_pylist(),
            world.truth["true_elasticity"].to_pylist(),
            strict=True,
        )
    )
    print(f"{table.num_rows:,} transaction rows, {len(truth)} products\n")
    timings = {}
    results = None
    for workers in (1, 2):
        t0 = time.perf_counter()
        results = fit_in_pool(table, workers, catalog)
        timings[workers] = time.perf_counter() - t0
    assert results is not None
    ok = [r for r in results if r.status == "ok"]
    errors = np.array([abs(r.elasticity - truth[r.product_id]) for r in ok])
    covered = np.mean([r.ci_low <= truth[r.product_id] <= r.ci_high for r in ok])
    print(f"{'measure':<44}{'value':>10}  target")
    print(f"{'products estimated / flagged':<44}{len(ok):>6} / {len(results) - len(ok):<3}")
    print(f"{'  flags':<44}{dict(Counter(r.status for r in results if r.status != 'ok'))}")
    print(f"{'median |elasticity error|':<44}{np.median(errors):>10.3f}  <= 0.10")
    print(f"{'true value inside the 95% interval':<44}{covered:>10.1%}  90-98%")
    print(f"{'fit, 1 worker (s)':<44}{timings[1]:>10.2f}")
    print(f"{'fit, 2 workers (s)':<44}{timings[2]:>10.2f}")
    per_million = timings[2] / table.num_rows * 1e6
    print(f"{'fit per 1M rows, 2 workers (s)':<44}{per_million:>10.2f}")
    print(f"{'process-pool speedup':<44}{timings[1] / timings[2]:>9.2f}x  >= 1.7x")
    from bench.pricing_worlds import run

    run(args.rows, args.seed)
    _decisions("synthetic retailer", results)
    groups = _substitutes_table(table, world, catalog)

    scores = _promotion_table(table, world, args.rows, args.seed)
    if args.real_products:
        _real_panel(args.real_products)
    if args.tasks > 1:
        _simulate_tasks(table, args.tasks)
    from bench.store_prices import run as store_prices_table

    store_prices_table(args.rows, args.seed)
    if args.report:
        from shared.training.report import render

        rows = [r.row() for r in results]
        Path(args.report).write_text(render("bench", rows, scores, [g.row() for g in groups]))
        print(f"report: {args.report}")
    return 0


def true_category_gain(group, world, prices) -> float:
    """Weekly category profit change at ``prices`` against the regular prices, under the true
    own and cross elasticities and costs."""
    from shared.synthetic.generate import cross_truth

    cross = {(p, q): c for p, q, c in cross_truth(world)}
    idx = {pid: i for i, pid in enumerate(group.products)}
    p0, q0 = np.array(group.regular), np.array(group.weekly_units)
    cost = np.array(group.unit_cost, dtype=float)
    e = np.zeros((len(idx), len(idx)))
    for p, i in idx.items():
        e[i, i] = world.elasticity[p - 1]
        for q, j in idx.items():
            e[i, j] = e[i, j] if i == j else cross.get((p, q), 0.0)

    def value(x):
        return float(((x - cost) * q0 * np.exp(e @ np.log(x / p0))).sum())

    return value(np.array(prices)) - value(p0)


def _substitutes_table(table, world, catalog):
    from shared.synthetic.generate import cross_truth
    from shared.training.pricing import PricingConfig
    from shared.training.substitutes import fit_substitutes

    t0 = time.perf_counter()
    groups = fit_substitutes(table, catalog, PricingConfig().rules_by_category(), 3)
    seconds = time.perf_counter() - t0
    truth = {(p, q): c for p, q, c in cross_truth(world)}
    errors, substitute_errors = [], []
    totals = Counter()
    for g in groups:
        for i, p in enumerate(g.products):
            for j, q in enumerate(g.products):
                if i != j and g.cross[i][j] is not None:
                    errors.append(abs(g.cross[i][j] - truth.get((p, q), 0.0)))
                    if (p, q) in truth:
                        substitute_errors.append(errors[-1])
        if g.joint_prices:
            totals["independent"] += true_category_gain(g, world, g.independent_prices)
            totals["joint"] += true_category_gain(g, world, g.joint_prices)
    print(f"\nsubstitutes: top 3 products of {len(groups)} categories, {seconds:.1f} s")
    label = "median |cross-price error|, all pairs"
    print(f"  {label:<42}{np.median(errors):>8.3f}  ({len(errors)} pairs)")
    print(
        f"  {'  pairs that are true substitutes':<42}{np.median(substitute_errors):>8.3f}"
        f"  ({len(substitute_errors)} pairs, true 0.2-0.6)"
    )
    print(f"  {'true category profit a week, priced one by one':<42}{totals['independent']:>+8.1f}")
    print(f"  {'  priced jointly':<42}{totals['joint']:>+8.1f}")
    return groups


def gbm_wape(rows) -> float:
    """A gradient-boosted baseline from scikit-learn straight on the promotion's features and
    the product (log revenue, no baseline x uplift structure), on the same time split."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from shared.training.promotions import FEATURES, split_by_time, wape

    train, test = split_by_time(rows)
    names = [f for f in FEATURES if f in train and f != "product_mean_log_uplift"]

    def x(part):
        return np.column_stack([part[f] for f in names] + [part["product_id"]])

    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=7)
    model.fit(x(train), np.log(np.maximum(train["revenue"], 1e-6)))
    return wape(test["revenue"], np.exp(model.predict(x(test))))


def _promotion_table(table, world, rows: int, seed: int) -> dict:
    """Holdout WAPE of promoted-week revenue: the model, the naive uplift, a plain GBM; on the
    easy and the hard world."""
    from bench.pricing_worlds import world_and_table
    from shared.training.promotions import evaluate, promotion_rows

    print(
        f"\n{'promotion revenue, holdout WAPE':<44}{'model':>8}{'naive':>8}{'GBM':>8}  promotions"
    )
    found = {}
    hard_world, hard_table, _ = world_and_table(rows, seed, True)
    for name, t, w in (("easy", table, world), ("hard", hard_table, hard_world)):
        promo_rows = promotion_rows(t, w.promotions)
        scores = evaluate(promo_rows)
        found[name] = scores
        print(
            f"  {name + ' world':<42}{scores['model_wape']:>8.3f}{scores['naive_wape']:>8.3f}"
            f"{gbm_wape(promo_rows):>8.3f}  {scores['holdout_promotions']:.0f} held out"
        )
    return found["easy"]


def _decisions(label: str, results) -> None:
    ok = [r for r in results if r.status == "ok"]
    moves = [r for r in ok if r.decision == "move"]
    edge = [r for r in moves if r.binding_rule]
    print(f"\n{label}: decisions")
    print(f"  {'products / estimated':<42}{len(results):>6} / {len(ok)}")
    print(f"  {'not estimated':<42}{dict(Counter(r.status for r in results if r.status != 'ok'))}")
    print(
        f"  {'recommended to move':<42}{len(moves):>6}  "
        f"({len(moves) / max(len(results), 1):.0%} of products)"
    )
    print(
        f"  {'  of them at a rule edge':<42}{len(edge):>6}  "
        f"{dict(Counter(r.binding_rule for r in edge))}"
    )
    print(f"  {'  edge share of all products':<42}{len(edge) / max(len(results), 1):>6.0%}  < 50%")
    reasons = Counter(r.reason_code for r in ok if r.decision == "hold")
    print(f"  {'held, by reason':<42}{dict(reasons.most_common(4))}")
    if moves:
        change = np.array([r.recommended_price / r.regular_price - 1 for r in moves])
        q = np.quantile(change, [0, 0.25, 0.5, 0.75, 1])
        print(
            f"  {'price change of moves (min/q1/med/q3/max)':<42}"
            + " ".join(f"{v:+.1%}" for v in q)
        )


def _real_panel(top: int) -> None:
    from local.real_retail import complete_journey
    from shared.training.pricing import Catalog, PricingConfig
    from shared.training.pricing_job import fit_in_pool

    table, category = complete_journey(top)
    config = PricingConfig(cost_ratio=0.7)
    found: list[dict] = []
    results = fit_in_pool(table, 2, Catalog({}, category), config, found)
    ok = [r for r in results if r.status == "ok"]
    print(
        f"\nreal panel: The Complete Journey, {table.num_rows:,} store-day-price rows of the "
        f"{top} most-sold shelf products; no costs in the data: unit cost assumed "
        f"{config.cost_ratio:.0%} of the regular price"
    )
    e = np.array([r.elasticity for r in ok])
    width = np.array([r.ci_high - r.ci_low for r in ok])
    print(
        f"  {'elasticity (q10/q25/med/q75/q90)':<42}"
        + " ".join(f"{v:+.2f}" for v in np.quantile(e, [0.1, 0.25, 0.5, 0.75, 0.9]))
    )
    print(f"  {'95% interval width (median)':<42}{np.median(width):>6.2f}")
    print(f"  {'interval excludes -1 (elastic for sure)':<42}{sum(r.ci_high < -1 for r in ok):>6}")
    filled = fit_in_pool(
        table,
        2,
        Catalog({}, category),
        config.model_copy(update={"spec": config.spec.model_copy(update={"zero_weeks": True})}),
    )
    e_filled = np.array([r.elasticity for r in filled if r.status == "ok"])
    label = "  with zero-sale store-weeks filled"
    print(
        f"  {label:<42}"
        + " ".join(f"{v:+.2f}" for v in np.quantile(e_filled, [0.1, 0.25, 0.5, 0.75, 0.9]))
        + f"  ({sum(r.decision == 'move' for r in filled)} moves)"
    )
    _decisions("real panel", results)
    _real_stores(results, found, config)
    from local.real_retail import promotion_events
    from shared.training.promotions import evaluate, promotion_rows

    marked, events = promotion_events(table)
    promo_rows = promotion_rows(marked, events)
    scores = evaluate(promo_rows)
    print(
        f"\n  {'promotion revenue, holdout WAPE':<42}{'model':>8}{'naive':>8}{'GBM':>8}\n"
        f"  {'  display/mailer events of the real panel':<42}{scores['model_wape']:>8.3f}"
        f"{scores['naive_wape']:>8.3f}{gbm_wape(promo_rows):>8.3f}  "
        f"{scores['holdout_promotions']:.0f} of {len(promo_rows['revenue'])} held out"
    )
    by_cat: dict[str, list] = {}
    for r in ok:
        by_cat.setdefault(category[r.product_id], []).append(r)
    print(f"\n  {'category (>= 4 products)':<32}{'n':>4}{'default':>10}{'plain log-log':>15}")
    for name, rows in sorted(by_cat.items(), key=lambda kv: -len(kv[1])):
        if len(rows) >= 4:
            d = np.median([r.elasticity for r in rows])
            plain = np.median([r.elasticity_plain for r in rows])
            print(f"  {name[:31]:<32}{len(rows):>4}{d:>+10.2f}{plain:>+15.2f}")


def _real_stores(results, found, config) -> None:
    """What the store-level model supports and decides on the real panel (no store
    demographics in it: the store effects have no covariates)."""
    from shared.training.pricing.store_prices import store_prices

    priced = store_prices([r.row() for r in results], found, rules=config.rules_by_category(),
                          chain=config.stores)  # fmt: skip
    own = [r for r in priced.rows if r["evidence"] == "own"]
    enough = [r for r in own if r["weeks"] >= config.stores.min_weeks]
    s = priced.summary
    print(f"\n  store level: {s['stores']} stores x {len(results)} products: {len(priced.rows):,} "
          f"store x product cells sold, {len(own):,} with an own slope, {len(enough):,} of "
          f"them with >= {config.stores.min_weeks} weeks (evidence for a store price)")  # fmt: skip
    if "tau_store" in s:
        zoned, open_ = s["products_with_zones"], s["products_priced"]
        print(f"  store effects spread {s['tau_store']:.2f}; products priced by zone "
              f"{zoned} of the {open_} the chain does not hold")  # fmt: skip
    codes = Counter(r["reason_code"] for r in priced.rows)
    print(f"  store x product decisions: {dict(codes.most_common())}")
    mean, low, high = s["store_vs_chain"]
    print(f"  store prices over one chain price: {mean:+,.2f} a week [{low:+,.2f}, {high:+,.2f}]")


def _one_task(parts_dir: str, index: str, count: str) -> int:
    """One simulated Cloud Run task: read its shard of the parts, fit on 2 workers."""
    import json

    import pyarrow.fs as pafs

    from bench.fetch_bench import peak_rss_mb
    from shared.training.dataset import Shard, read_shard
    from shared.training.pricing_job import COLUMNS, fit_in_pool

    manifest = {"parts": [{"uri": str(p)} for p in sorted(Path(parts_dir).glob("*.parquet"))]}
    t0 = time.perf_counter()
    shard = read_shard(manifest, Shard(int(index), int(count)), pafs.LocalFileSystem(), COLUMNS)
    results = fit_in_pool(shard, 2)
    print(
        json.dumps(
            {
                "rows": shard.num_rows,
                "products": len(results),
                "seconds": time.perf_counter() - t0,
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent.
                "peak_mb": peak_rss_mb(),
            }
        )
    )
    return 0


def _simulate_tasks(table: pa.Table, tasks: int) -> None:
    """1 task vs ``tasks`` tasks over the same Parquet parts, each task in its own process."""
    import json
    import subprocess
    import sys
    import tempfile

    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        for i, start in enumerate(range(0, table.num_rows, 200_000)):
            pq.write_table(table.slice(start, 200_000), f"{tmp}/part-{i:05d}.parquet")
        print(f"\n{'tasks':>6}{'task':>6}{'rows':>12}{'products':>10}{'wall s':>8}{'peak MB':>9}")
        for count in (1, tasks):
            for index in range(count):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.training_bench",
                        "--one-task",
                        tmp,
                        str(index),
                        str(count),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{count:>6}{index:>6}{r['rows']:>12,}{r['products']:>10}"
                    f"{r['seconds']:>8.2f}{r['peak_mb']:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    raise SystemExit(main())
