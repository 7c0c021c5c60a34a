"""Fitting products: one product end to end (panel, estimate, decide), and every product of a
table with its catalog of categories and costs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

from shared.training.pricing.config import (
    DEFAULT_RULES,
    DEFAULT_SPEC,
    PLAIN,
    PriceResult,
    Rules,
    Spec,
)
from shared.training.pricing.decide import _draws, decide
from shared.training.pricing.estimate import _within, estimate
from shared.training.pricing.panel import baseline, resolve_cost, weekly_cells, with_zero_weeks


def fit_product(
    cells: dict[str, np.ndarray],
    product_id: int,
    *,
    unit_cost: float | None = None,
    rules: Rules = DEFAULT_RULES,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
    min_cells: int = 30,
    min_price_variation: float = 0.02,
    returns_rows: int = 0,
) -> PriceResult:
    """Elasticity and the price decision of one product from its weekly cells."""
    sold = cells["units"] > 0
    if not sold.any():
        return _no_sales(product_id, returns_rows)
    cells = {k: v[sold] for k, v in cells.items()}
    regular, weekly_units = baseline(cells)
    unit_cost, cost_source = resolve_cost(unit_cost, cost_ratio, regular)
    if spec.zero_weeks:
        cells = with_zero_weeks(cells)
    units, week = cells["units"], cells["week"]
    n = len(units)
    log_price = np.log(cells["price"])
    within = _within(log_price, cells["store_id"])
    variation = float(np.std(within))
    base: dict[str, Any] = {
        "n_cells": n,
        "price_variation": variation,
        "regular_price": regular,
        "unit_cost": unit_cost,
        "cost_source": cost_source,
        "weekly_units": weekly_units,
        "objective": rules.objective,
        "returns_rows": returns_rows,
    }
    held: dict[str, Any] = {
        "decision": "hold",
        "recommended_price": regular,
        "reason_code": "not_estimated",
    }
    if n < min_cells:
        return PriceResult(
            product_id, "too_few_observations", reason=f"{n} cells (< {min_cells})", **held, **base
        )
    if variation < min_price_variation:
        return PriceResult(
            product_id,
            "insufficient_price_variation",
            reason=f"log price varies by {variation:.3f} inside stores (< {min_price_variation})",
            **held,
            **base,
        )
    e, se, weeks, why, r2 = estimate(cells, spec)
    varying = len(np.unique(week[np.abs(within) > 0.01]))
    if why is None and weeks < spec.min_weeks:
        why = f"{weeks} weeks of sales (< {spec.min_weeks})"
    if why is None and varying < spec.min_varying_weeks:
        why = f"{varying} weeks carry price variation (< {spec.min_varying_weeks})"
    plain = estimate(cells, PLAIN, with_se=False)[0] if spec != PLAIN else e
    base.update(weeks=weeks, varying_weeks=varying, elasticity_plain=_finite(plain))
    if why is not None:
        return PriceResult(
            product_id,
            "weakly_identified",
            elasticity=_finite(e),
            identification=why,
            reason=f"weakly identified: {why}",
            r2=_finite(r2),
            **held,
            **base,
        )
    t95 = float(stats.t.ppf(0.975, weeks - 1))  # type: ignore[attr-defined]
    choice = decide(regular, weekly_units, _draws(e, se, weeks, product_id), rules, unit_cost)
    return PriceResult(
        product_id,
        "ok",
        elasticity=e,
        ci_low=e - t95 * se,
        ci_high=e + t95 * se,
        std_error=se,
        r2=r2,
        decision=choice.decision,
        reason=choice.reason,
        reason_code=choice.code,
        recommended_price=choice.recommended_price,
        candidate_price=choice.candidate_price,
        expected_gain=choice.expected_gain,
        gain_low=choice.gain_low,
        gain_high=choice.gain_high,
        expected_change=choice.expected_gain / choice.base_value if choice.base_value else None,
        binding_rule=choice.binding_rule,
        **base,
    )


def _no_sales(product_id: int, returns_rows: int) -> PriceResult:
    return PriceResult(
        product_id,
        "no_sales",
        0,
        decision="hold",
        reason=f"no sales, {returns_rows} return rows",
        reason_code="not_estimated",
        returns_rows=returns_rows,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Catalog:
    """What the products table tells the pricing job: unit cost and category per product."""

    unit_cost: dict[int, float] = field(default_factory=dict)
    category: dict[int, str] = field(default_factory=dict)


def fit_products(
    table: pa.Table,
    catalog: Catalog | None = None,
    *,
    rules: dict[str, Rules] | None = None,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
    **options: Any,
) -> list[PriceResult]:
    """Fit every product in ``table`` (one shard's transactions), in product order; ``rules``
    by category (key ``"*"`` for the default).

    Rows with negative units (returns) are counted per product and left out of the fit.
    """
    catalog = catalog or Catalog()
    rules = rules or {}
    default = rules.get("*", DEFAULT_RULES)
    units = table["units"].to_numpy()
    returns = units < 0
    returns_by_product: dict[int, int] = {}
    if returns.any():
        ids, counts = np.unique(table["product_id"].to_numpy()[returns], return_counts=True)
        returns_by_product = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        table = table.filter(pa.array(~returns))
    if table.num_rows == 0:
        return [_no_sales(p, n) for p, n in returns_by_product.items()]
    cells = weekly_cells(table)
    order = np.argsort(cells["product_id"], kind="stable")
    cells = {k: v[order] for k, v in cells.items()}
    products, starts = np.unique(cells["product_id"], return_index=True)
    bounds = [*starts[1:], len(cells["product_id"])]
    results = []
    for product, start, end in zip(products, starts, bounds, strict=True):
        part = {k: v[start:end] for k, v in cells.items()}
        pid = int(product)
        fitted = fit_product(
            part,
            pid,
            unit_cost=catalog.unit_cost.get(pid),
            rules=rules.get(catalog.category.get(pid, "*"), default),
            spec=spec,
            cost_ratio=cost_ratio,
            returns_rows=returns_by_product.pop(pid, 0),
            **options,
        )
        results.append(dataclasses.replace(fitted, category=catalog.category.get(pid)))
    results += [_no_sales(p, n) for p, n in returns_by_product.items()]
    return results
