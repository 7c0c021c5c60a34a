"""Every store's price list: the pooled store elasticities (``stores.pool``) and each product's
zones (``zones.choose``), with the chain's total gain of store prices over one chain price.

Run once over every product (the merge of the pricing job), since the store effects are
learned from all of them: its cost is one pass over the store x product cells, with
``DRAWS`` draws each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.training.pricing.config import Rules, StoreRules, rules_for
from shared.training.pricing.decide import _draws
from shared.training.pricing.stores import Pooled, pool
from shared.training.pricing.zones import chain_prices, choose

DRAWS = 1000
# The chain's holds that store prices must not overrule: the product's elasticity itself is in
# doubt (inelastic, the specifications disagree) or no price is possible.
CHAIN_HOLDS = frozenset(
    {"inelastic", "inelastic_possible", "specification_sensitive", "no_feasible_price",
     "no_cost"}
)  # fmt: skip
EVIDENCE = ("own", "pooled")  # the store's own slope entered; only its store effect did


def store_covariates(
    rows: Iterable[Mapping[str, Any]], names: Sequence[str]
) -> tuple[dict[int, list[float]], list[str]]:
    """(covariates per store id, their names) from stores-table rows: a number as it is, a
    category of at most 10 values as one indicator per value but the first."""
    rows = list(rows)
    columns: list[tuple[str, Any]] = []
    for name in names:
        values = [r.get(name) for r in rows]
        present = [v for v in values if v is not None]
        if not present:
            continue
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            columns.append((name, None))
        elif len(set(map(str, present))) <= 10:
            for level in sorted(set(map(str, present)))[1:]:
                columns.append((f"{name}={level}", level))
    found: dict[int, list[float]] = {}
    for r in rows:
        vector = []
        for label, level in columns:
            value = r.get(label.split("=")[0])
            if level is None:
                vector.append(math.nan if value is None else float(value))
            else:
                vector.append(math.nan if value is None else float(str(value) == level))
        found[int(r["store_id"])] = vector
    return found, [label for label, _ in columns]


@dataclass(frozen=True)
class StorePrices:
    rows: list[dict]  # one per store x product
    zones: list[dict]  # one per product x zone
    summary: dict[str, Any] = field(default_factory=dict)


def store_prices(
    products: Sequence[Mapping[str, Any]],
    slopes: Sequence[Mapping[str, Any]],
    covariates: Mapping[int, Sequence[float]] | None = None,
    names: Sequence[str] = (),
    *,
    rules: Mapping[str, Rules] | None = None,
    chain: StoreRules | None = None,
    draws: int = DRAWS,
) -> StorePrices:
    """Store prices of every product (``products``: the chain results' rows; ``slopes``: the
    tasks' store rows, ``stores.store_slopes``, as ``store_lists.SLOPE_SCHEMA`` holds them)."""
    chain = chain or StoreRules()
    rules = rules or {}
    by_product = {int(p["product_id"]): p for p in products}
    estimated = [s for s in slopes if _ok(by_product.get(int(s["product_id"])))]
    pooled = None
    if estimated:
        relative = _relative_prices(estimated)
        pooled = pool(
            np.array([s["product_id"] for s in estimated]),
            np.array([s["store_id"] for s in estimated]),
            np.array([s["slope"] for s in estimated], dtype=np.float64),
            np.array([s["variance"] for s in estimated], dtype=np.float64),
            covariates or {},
            names,
            relative=relative,
            curvature=np.array([s.get("curvature", 0.0) for s in estimated], dtype=np.float64),
            curvature_variance=np.array(
                [s.get("curvature_variance", np.inf) for s in estimated], dtype=np.float64
            ),
        )
    shared = np.random.default_rng(0).standard_normal((draws, len(pooled.stores) if pooled else 0))
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(estimated):
        groups.setdefault(int(s["product_id"]), []).append(i)
    rows, zones = [], []
    versus, store_total, chain_total = (
        np.zeros(draws // 2),
        np.zeros(draws // 2),
        np.zeros(draws // 2),
    )
    counts = {"products_with_zones": 0, "products_priced": 0}
    for s in slopes:
        if not _ok(by_product.get(int(s["product_id"]))):
            rows.append(_held(s, by_product.get(int(s["product_id"]))))
    for pid, members in sorted(groups.items()):
        product = by_product[pid]
        rule = rules_for(rules, product.get("category"))
        found = _price_product(product, [estimated[i] for i in members], members, pooled, shared,
                               rule, chain, draws)  # fmt: skip
        rows += found[0]
        zones += found[1]
        if found[2] is not None:
            gains, chain_gains = found[2]
            store_total += gains
            chain_total += chain_gains
            versus += gains - chain_gains
            counts["products_priced"] += 1
            counts["products_with_zones"] += bool(found[1])
    summary = _summary(
        pooled, versus, store_total, chain_total, counts, rows, rules_for(rules, None)
    )
    return StorePrices(sorted(rows, key=lambda r: (r["store_id"], r["product_id"])), zones, summary)


def _relative_prices(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """log of each store's regular price over its product's volume-weighted mean (log)."""
    product = np.array([r["product_id"] for r in rows])
    log_price = np.log(np.array([r["regular_price"] for r in rows], dtype=np.float64))
    weight = np.array([max(r["weekly_units"], 0.0) for r in rows], dtype=np.float64) + 1e-9
    _, pi = np.unique(product, return_inverse=True)
    pi = pi.ravel()
    mean = np.bincount(pi, weight * log_price) / np.bincount(pi, weight)
    return log_price - mean[pi]


def _ok(product: Mapping[str, Any] | None) -> bool:
    return bool(product) and product.get("status") == "ok"  # type: ignore[union-attr]


def _held(slope: Mapping[str, Any], product: Mapping[str, Any] | None) -> dict:
    """A store's row for a product the chain model did not estimate: today's price, held."""
    reason = (product or {}).get("reason") or "the product is not estimated"
    return {
        "store_id": int(slope["store_id"]), "product_id": int(slope["product_id"]),
        "category": (product or {}).get("category"), "zone": 0,
        "current_price": slope["regular_price"], "recommended_price": slope["regular_price"],
        "decision": "hold", "reason_code": "not_estimated", "reason": reason,
        "expected_gain": 0.0, "gain_low": 0.0, "gain_high": 0.0, "elasticity": None,
        "ci_low": None, "ci_high": None, "evidence": "none", "weeks": slope["weeks"],
        "weekly_units": slope["weekly_units"],
    }  # fmt: skip


def _price_product(
    product: Mapping[str, Any],
    members: list[Mapping[str, Any]],
    index: list[int],
    pooled: Pooled | None,
    shared: np.ndarray,
    rule: Rules,
    chain: StoreRules,
    draws: int,
) -> tuple[list[dict], list[dict], tuple[np.ndarray, np.ndarray] | None]:
    assert pooled is not None
    pid = int(product["product_id"])
    at = np.searchsorted(pooled.stores, [m["store_id"] for m in members])
    regular = np.array([m["regular_price"] for m in members], dtype=np.float64)
    volume = np.array([max(m["weekly_units"], 0.0) for m in members], dtype=np.float64)
    weight = volume / volume.sum() if volume.sum() > 0 else np.full(len(members), 1 / len(members))
    rng = np.random.default_rng([pid, 11])
    effect = pooled.effect[at][:, None] + np.sqrt(pooled.effect_var[at])[:, None] * shared.T[at]
    own = np.array(index)
    pair = pooled.pair_mean[own][:, None] + np.sqrt(pooled.pair_var[own])[:, None] * (
        rng.standard_normal((len(members), draws))
    )
    deviation = effect + pair
    deviation -= (weight[:, None] * deviation).sum(axis=0)
    e, se = float(product["elasticity"]), float(product["std_error"] or 0.0)
    e_draws = _draws(e, se, int(product.get("weeks") or 2), pid, draws)[None, :] + deviation
    evidence = np.array(
        [math.isfinite(m["variance"]) and m["weeks"] >= chain.min_weeks for m in members]
    )
    cost = product.get("unit_cost")
    regular_chain = float(product.get("regular_price") or 0) or float(np.median(regular))
    ratio = float(product.get("recommended_price") or regular_chain) / regular_chain
    low, high = np.quantile(e_draws, [0.025, 0.975], axis=1)
    point = e + deviation.mean(axis=1)
    base = [
        {"store_id": int(m["store_id"]), "product_id": pid, "category": product.get("category"),
         "current_price": float(regular[k]), "elasticity": float(point[k]),
         "ci_low": float(low[k]), "ci_high": float(high[k]),
         "evidence": EVIDENCE[0] if math.isfinite(m["variance"]) else EVIDENCE[1],
         "weeks": int(m["weeks"]), "weekly_units": float(volume[k])}
        for k, m in enumerate(members)
    ]  # fmt: skip
    code = product.get("reason_code")
    blocked = code in CHAIN_HOLDS or (rule.objective == "profit" and cost is None)
    if not chain.enabled or blocked:
        why = (
            "store prices are off"
            if not chain.enabled
            else f"the chain model holds the product ({code}): {product.get('reason')}"
        )
        shelf = chain_prices(regular, ratio, rule, float(cost or 0.0))
        chained = [_row(b, float(shelf[k]), 0, "chain_hold", why) for k, b in enumerate(base)]
        return chained, [], None
    # A store whose own elasticity is above -1 has no best price inside any corridor (the
    # chain holds such products for review): it keeps the chain price.
    evidence &= np.median(e_draws, axis=1) < -1
    choice = choose(regular, volume, e_draws, evidence, float(cost or 0.0), ratio, rule, chain)
    tail = (1 - rule.confidence) / 2
    rows = []
    for k, b in enumerate(base):
        gains = choice.gains[k]
        lo, hi = np.quantile(gains, [tail, 1 - tail])
        if choice.zone[k]:
            code, why = "zone_price", f"zone {choice.zone[k]}: {choice.reason}"
        elif evidence[k] or choice.code != "zones":
            code, why = choice.code, choice.reason
        else:
            code = "little_evidence"
            why = (
                f"{b['weeks']} weeks of own sales (< {chain.min_weeks}) or no own price move: "
                "keeps the chain price"
            )
        rows.append(_row(b, float(choice.price[k]), int(choice.zone[k]), code, why,
                         float(gains.mean()), float(lo), float(hi)))  # fmt: skip
    zones = [
        {"product_id": pid, "zone": z + 1, "price": float(p),
         "stores": [b["store_id"] for b, zz in zip(base, choice.zone, strict=True) if zz == z + 1],
         "expected_gain": float(choice.gains[choice.zone == z + 1].sum(axis=0).mean())}
        for z, p in enumerate(choice.zone_prices)
    ]  # fmt: skip
    return rows, zones, (choice.gains.sum(axis=0), choice.chain_gains.sum(axis=0))


def _row(base: dict, price: float, zone: int, code: str, reason: str, gain: float = 0.0,
         low: float = 0.0, high: float = 0.0) -> dict:  # fmt: skip
    moved = abs(price - base["current_price"]) >= 0.005
    return {**base, "zone": zone, "recommended_price": round(price, 2),
            "decision": "move" if moved else "hold", "reason_code": code, "reason": reason,
            "expected_gain": gain, "gain_low": low, "gain_high": high}  # fmt: skip


def _summary(
    pooled: Pooled | None,
    versus: np.ndarray,
    store_total: np.ndarray,
    chain_total: np.ndarray,
    counts: dict[str, int],
    rows: list[dict],
    rule: Rules,
) -> dict[str, Any]:
    tail = (1 - rule.confidence) / 2

    def interval(values: np.ndarray) -> list[float]:
        return [float(values.mean()), *map(float, np.quantile(values, [tail, 1 - tail]))]

    summary: dict[str, Any] = {
        **counts,
        "stores": len({r["store_id"] for r in rows}),
        "cells": len(rows),
        "moves": sum(r["decision"] == "move" for r in rows),
        "confidence": rule.confidence,
        "store_vs_chain": interval(versus),  # weekly, [mean, low, high]
        "store_vs_today": interval(store_total),
        "chain_vs_today": interval(chain_total),
    }
    if pooled is not None:
        summary.update(
            method="two-level Fay-Herriot empirical Bayes (Morris 1983; Montgomery 1997)",
            tau_store=pooled.tau_store,
            tau_pair=pooled.tau_pair,
            covariates=dict(zip(pooled.covariate_names, map(float, pooled.gamma), strict=True)),
            explained=pooled.explained,
            curvature=list(pooled.kappa),
        )
    return summary
