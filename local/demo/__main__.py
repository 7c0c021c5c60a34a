"""``python -m local.demo``: the main job's command line, its progress and its summary."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from local.demo.desk import visit as desk_visit
from local.demo.steps import (
    MOVER,
    StepFailed,
    access,
    ask_api,
    check_iam,
    fetch,
    load_retailer,
    save_report,
    start,
    training,
)
from local.stack import StackConfig, StackError, down


def _changes(n: int) -> str:
    return f"{n} change" if n == 1 else f"{n} changes"


def _jsonable(value: object) -> object:
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="transaction rows to generate")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=0,
        help="fetch streams (default: twice the environment's fetch instances, a fan-out wider "
        "than the instances)",
    )
    parser.add_argument("--airflow-port", type=int, default=8280)
    parser.add_argument("--airflow-home", type=Path, help="Airflow's home (default .local/airflow)")
    parser.add_argument("--keep", action="store_true", help="leave the stack and Airflow running")
    parser.add_argument("--json", type=Path, help="also write every step's observations here")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env()
    timings: list[tuple[str, float, str]] = []
    observed: dict[str, Any] = {}
    af = None

    def step(title: str) -> float:
        print(f"\n== {title}", flush=True)
        return time.perf_counter()

    try:
        t = step(f"1. local stack and Airflow ({cfg.state_dir})")
        af, cfg = start(cfg, args.airflow_port, args.airflow_home)
        timings.append(("stack + Airflow", time.perf_counter() - t, "up"))
        from shared.platform import function_shape
        from shared.settings import Settings

        settings = Settings.from_env()

        t = step(f"2. synthetic retailer, ~{args.rows:,} transaction rows -> BigQuery")
        data = observed["data"] = load_retailer(settings, args.rows)
        for table, n in data["rows"].items():
            print(f"  {table:<16}{n:>12,} rows")
        rows = data["rows"]["transactions"]
        timings.append(("generate + load", time.perf_counter() - t, f"{rows:,} rows"))

        t = step("3. fetch: request on fetch-requests -> Pub/Sub fan-out -> Parquet on GCS")
        parallelism = args.parallelism or 2 * function_shape("fetch_chunk", cfg.environment)[0]
        got = observed["fetch"] = fetch(
            cfg, settings, f"{settings.source_dataset}.transactions", parallelism
        )
        print(
            f"  run {got['run_id']}: {got['rows']:,} rows in {got['parts']} Parquet parts "
            f"({got['bytes'] / 1e6:,.1f} MB) in {got['seconds']:.1f} s "
            f"= {got['rows'] / got['seconds']:,.0f} rows/s"
        )
        print(f"  at {got['destination']}")
        for function, n in got["deliveries"].items():
            print(
                f"  {function}: {n['delivered']} deliveries, {n['refused_429']} refused with 429 "
                f"and retried (serves {n['capacity']} at once)"
            )
        print(f"  {got['dead_letters']} dead letters")
        if got["dead_letters"]:
            raise StepFailed(f"{got['dead_letters']} messages went to the dead-letter topic")
        if got["rows"] != rows:
            raise StepFailed(f"fetched {got['rows']:,} rows of {rows:,}")
        timings.append(("fetch", got["seconds"], f"{got['rows']:,} rows, exact"))

        t = step("4. training: fetch-complete -> launch_training -> Cloud Run jobs")
        trained = observed["training"] = training(cfg, settings, got["run_id"])
        for job, ex in trained["executions"].items():
            print(
                f"  job {job}: {ex['executions']} execution for the run, "
                f"{ex['tasks']} parallel task(s), {ex['seconds']:.1f} s"
            )
        print(f"  results.pricing rows by status: {trained['pricing_rows']}")
        s = trained["promotion_scores"]
        print(
            f"  promotion model holdout WAPE {s['model_wape']:.3f} vs naive {s['naive_wape']:.3f}"
            f" ({1 - s['model_wape'] / s['naive_wape']:.0%} better)"
        )
        print(f"  encrypted artifacts: {', '.join(trained['artifacts'])}")
        timings.append(("training", time.perf_counter() - t, "pricing + promotions"))

        t = step("5. prediction API (models picked up without restart)")
        asked = observed["api"] = ask_api(cfg, settings, got["run_id"])
        print(f"  GET /v1/prices: {asked['products_priced']} products; top-ranked decisions:")
        for p in asked["prices"]:
            print(
                f"    product {p['product_id']:>4}: elasticity {p['elasticity']:+.2f} "
                f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}], {p['decision']} "
                f"{p['regular_price']:.2f} -> {p['recommended_price']:.2f}: {p['reason']}"
            )
        if asked["store"] is not None:
            listed = asked["store_prices"]
            moves = [p for p in listed if p["decision"] == "move"]
            print(
                f"  GET /v1/prices?store={asked['store']}: {asked['store_total']} prices, "
                f"{len(moves)} change, valid from {listed[0]['valid_from']}; largest gains:"
            )
            for p in listed[:3]:
                print(
                    f"    product {p['product_id']:>4} zone {p['zone']}: {p['current_price']:.2f}"
                    f" -> {p['recommended_price']:.2f}, store elasticity {p['elasticity']:+.2f} "
                    f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}], {p['expected_gain']:+,.2f} a week"
                )
            z = asked["zones"]
            print(f"  GET /v1/prices/{z['product_id']}/zones:")
            for zone in z["zones"]:
                print(
                    f"    zone {zone['zone']}: {zone['price']:.2f} in {len(zone['stores'])} "
                    f"stores, {zone['expected_gain']:+,.2f} a week"
                )
            print(f"    chain price {z['chain_price']:.2f} in {len(z['chain_stores'])} stores")
        else:
            print("  store prices: no product priced by zone in this run")
        desk_url = cfg.client_env()["RETAIL_API_URL"]
        print(
            f"  the desk: {desk_url}/desk/ (development sign-in: paul@retail.example decides "
            "prices, sam@retail.example has store 1's list, maria@retail.example plans "
            "promotions)"
        )
        toured = observed["desk"] = desk_visit(desk_url, cfg.state_dir / "reports")
        print(
            f"  paul approved product {toured['approved']}; store 1's price list has "
            f"{toured['store_1_changes']} approved change(s); screenshots: "
            + (", ".join(toured["screenshots"]) or "none (no chromium: make browser)")
        )
        pred, plan = asked["prediction"], asked["plan"]
        print(
            f"  POST /v1/promotions:predict product {plan['product_id']}, 20% off for a week, "
            f"featured: revenue {pred['predicted_revenue']:,.0f} vs baseline "
            f"{pred['baseline_revenue']:,.0f} (uplift x{pred['uplift']:.2f})"
        )
        print(f"  GET /v1/promotions/analytics: {len(asked['past_promotions'])} past promotions")
        timings.append(("API", time.perf_counter() - t, f"{asked['products_priced']} prices"))

        t = step("6. access control: Scheduler tick -> sync_rbac -> Airflow roles")
        seen = observed["access"] = access(cfg, settings, af)
        print(f"  first reconcile: {_changes(seen['first_changes'])}")
        for who, dags in seen["before"].items():
            print(f"  {who} sees {sorted(dags)}")
        print(f"  {MOVER} moves from the pricing team to the promotions team")
        print(f"  next reconcile: {_changes(seen['second_changes'])}")
        print(f"  {MOVER} now sees {sorted(seen['after'])}")
        timings.append(("access control", time.perf_counter() - t, "access followed"))

        t = step("7. run report")
        report = save_report(settings, got["run_id"], cfg.state_dir / "reports")
        observed["report"] = str(report)
        print(f"  {report}")
        timings.append(("report", time.perf_counter() - t, report.name))

        t = step("8. IAM contract: every Google API call made above, against the grants")
        observed["iam"] = iam = check_iam(cfg)
        print(
            f"  {len(iam['deployables'])} deployables ({', '.join(iam['deployables'])}), "
            f"{iam['checks']} call -> permission checks, {len(iam['missing'])} missing"
        )
        if iam["missing"]:
            raise StepFailed(
                "calls not granted in the dev environment: " + "; ".join(iam["missing"])
            )
        timings.append(("IAM contract", time.perf_counter() - t, f"{iam['checks']} checks"))
        ok = True
    except (StackError, StepFailed, RuntimeError) as exc:
        print(f"error: {exc}")
        ok = False
    finally:
        if not args.keep:
            print("\n== stopping the stack and Airflow")
            down(cfg, say=lambda _m: None)
            if af is not None:
                from local.airflow import down as airflow_down

                airflow_down(af)
    print("\n== summary")
    for name, seconds, what in timings:
        print(f"  {name:<18}{seconds:>8.1f} s  {what}")
    total = sum(s for _, s, _ in timings)
    print(f"  {'total':<18}{total:>8.1f} s")
    if args.json:
        observed["ok"] = ok
        args.json.write_text(json.dumps(observed, indent=1, default=_jsonable))
    print("\nmain job " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
