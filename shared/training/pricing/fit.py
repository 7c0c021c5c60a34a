"""Fitting products: one product end to end (panel, estimate, decide), and every product of a
table with its catalog of categories and costs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

from shared.training.pricing.config import (
    ALTERNATIVE,
    DEFAULT_RULES,
    DEFAULT_SPEC,
    PLAIN,
    RECENT_WEEKS,
    PriceResult,
    Rules,
    Spec,
    rules_for,
)
from shared.training.pricing.decide import _draws, decide, joint_t_draws
from shared.training.pricing.estimate import _within, cross_store_weeks, estimate
from shared.training.pricing.panel import (
    baseline,
    regular_price,
    resolve_cost,
    weekly_cells,
    with_regular_and_after_deal,
    with_zero_weeks,
)
from shared.training.pricing.stores import store_slopes


def fit_product(
    cells: dict[str, np.ndarray],
    product_id: int,
    *,
    unit_cost: float | None = None,
    rules: Rules = DEFAULT_RULES,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
    cost_uncertainty: float = 0.10,
    alternative: Spec | None = ALTERNATIVE,
    min_cells: int = 30,
    min_price_variation: float = 0.02,
    returns_rows: int = 0,
    prior: tuple[float, float] | None = None,
    stores: list[dict] | None = None,
) -> PriceResult:
    """Elasticity and the price decision of one product from its weekly cells.

    A move is recommended only when the ``alternative`` specification, fitted on the same
    product, points the same way; otherwise the product is held and the reason says the data
    cannot decide between them. ``stores``: a list the stores' own slopes, prices and volumes
    are added to (``stores.store_slopes``), one row per store of the product."""
    sold = cells["units"] > 0
    if not sold.any():
        return _no_sales(product_id, returns_rows)
    given = {k: v[sold] for k, v in cells.items()}
    regular = regular_price(given)
    cells = with_regular_and_after_deal(given)
    simple_units = baseline(cells)[1]
    unit_cost, cost_source = resolve_cost(unit_cost, cost_ratio, regular)
    if spec.zero_weeks:
        cells = with_zero_weeks(cells)
    if spec.cells == "regular":
        quiet = (cells["promo"] < 0.5) & (cells["post_deal"] < 0.5)
        cells = {k: v[quiet] for k, v in cells.items()}
    units, week = cells["units"], cells["week"]
    n = len(units)
    log_price = np.log(cells["regular"] if "deal" in spec.controls else cells["price"])
    within = _within(log_price, cells["store_id"]) if n else log_price
    variation = float(np.std(within)) if n else 0.0
    base: dict[str, Any] = {
        "n_cells": n,
        "price_variation": variation,
        "regular_price": regular,
        "unit_cost": unit_cost,
        "cost_source": cost_source,
        "weekly_units": simple_units,
        "objective": rules.objective,
        "returns_rows": returns_rows,
        "method": spec.name,
    }
    held: dict[str, Any] = {
        "decision": "hold",
        "recommended_price": regular,
        "reason_code": "not_estimated",
    }
    if stores is not None and (n < min_cells or variation < min_price_variation):
        stores.extend(store_slopes(cells, None, product_id))
    if n < min_cells:
        return PriceResult(
            product_id, "too_few_observations", reason=f"{n} cells (< {min_cells})", **held, **base
        )
    what = "regular price" if "deal" in spec.controls else "price"
    if variation < min_price_variation:
        return PriceResult(
            product_id,
            "insufficient_price_variation",
            reason=f"log {what} varies by {variation:.3f} inside stores (< {min_price_variation})",
            **held,
            **base,
        )
    fit = estimate(cells, spec)
    why, weeks = fit.why, fit.weeks
    if "week" in spec.controls:
        varying = cross_store_weeks(cells, log_price)
        too_few = (
            f"{varying} weeks in which stores sold at different {what}s "
            f"(< {spec.min_varying_weeks}): too few to tell the {what}'s effect from the "
            "week's demand"
        )
    else:
        varying = len(np.unique(week[np.abs(within) > 0.01]))
        too_few = f"{varying} weeks carry price variation (< {spec.min_varying_weeks})"
    if why is None and weeks < spec.min_weeks:
        why = f"{weeks} weeks of sales (< {spec.min_weeks})"
    if why is None and varying < spec.min_varying_weeks:
        why = too_few
    plain = estimate(cells, PLAIN, with_se=False).elasticity if spec != PLAIN else fit.elasticity
    base.update(weeks=weeks, varying_weeks=varying, elasticity_plain=_finite(plain),
                deal_elasticity=fit.deal, post_deal=fit.post_deal)  # fmt: skip
    if stores is not None:
        stores.extend(store_slopes(cells, fit if why is None else None, product_id))
    if why is not None:
        return PriceResult(
            product_id,
            "weakly_identified",
            elasticity=_finite(fit.elasticity),
            identification=why,
            reason=f"weakly identified: {why}",
            r2=_finite(fit.r2),
            **held,
            **base,
        )
    e, se = fit.elasticity, fit.se
    pull = 1.0
    if prior is not None:
        # The prior (``PricingConfig.prior``): the estimate pulled toward its mean by how noisy
        # it is (the normal-normal posterior).
        mean_e, spread = prior
        pull = spread / (spread + se * se)
        base["elasticity_unpooled"] = e
        e, se = mean_e + pull * (e - mean_e), math.sqrt(pull) * se
    volume_draws = None
    if fit.baseline and fit.cov is not None and math.isfinite(fit.baseline) and fit.baseline > 0:
        base["weekly_units"] = fit.baseline
        mean = np.array([fit.elasticity, math.log(fit.baseline)])
        joint = joint_t_draws(mean, fit.cov, weeks - 1, product_id)
        # The volume's draws are clipped to a factor e either way: exp of a t has no mean.
        shift = np.clip(joint[:, 1] - mean[1], -1.0, 1.0)
        elasticity_draws = e + math.sqrt(pull) * (joint[:, 0] - fit.elasticity)
        volume_draws = np.exp(shift)
    else:
        elasticity_draws = _draws(e, se, weeks, product_id)
    cost_draws = None
    if cost_source == "assumed" and cost_uncertainty and unit_cost:
        rng = np.random.default_rng(product_id + 1)
        cost_draws = unit_cost * np.exp(
            cost_uncertainty * rng.standard_normal(len(elasticity_draws))
        )
    recent = cells["week"] > cells["week"].max() - RECENT_WEEKS
    mean_regular = float(np.average(cells["regular"][recent], weights=units[recent] + 1e-9))
    choice = decide(regular, base["weekly_units"], elasticity_draws, rules, unit_cost,
                    volume_draws=volume_draws, cost_draws=cost_draws,
                    mean_regular=mean_regular)  # fmt: skip
    t95 = float(stats.t.ppf(0.975, weeks - 1))  # type: ignore[attr-defined]
    if choice.decision == "move" and alternative is not None and alternative != spec:
        other = fit_product(
            given,
            product_id,
            unit_cost=unit_cost,
            rules=rules,
            spec=alternative,
            alternative=None,
            min_cells=min_cells,
            min_price_variation=min_price_variation,
        )
        base["alternative"] = other.reason_code
        agrees = other.status != "ok" or _same_way(choice.recommended_price, other, regular)
        if not agrees:
            choice = dataclasses.replace(
                choice,
                decision="hold",
                code="specification_sensitive",
                recommended_price=regular,
                reason=(
                    f"the data cannot decide: this specification moves to "
                    f"{choice.recommended_price:.2f} ({choice.reason}); fitted on regular-price "
                    f"weeks only (elasticity {other.elasticity:+.2f}), {other.reason}"
                ),
            )
    return PriceResult(
        product_id,
        "ok",
        elasticity=e,
        ci_low=e - t95 * se,
        ci_high=e + t95 * se,
        std_error=se,
        r2=fit.r2,
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


def _same_way(price: float, other: PriceResult, regular: float) -> bool:
    """Whether ``other``'s best price inside the rules gains on the same side of ``regular``."""
    if other.reason_code == "inelastic" or not (other.expected_gain or 0) > 0:
        return False
    candidate = other.candidate_price or regular
    return (candidate - regular) * (price - regular) > 0


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

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Catalog:
        """From products rows (``product_id``, and ``unit_cost`` / ``category`` where known:
        a missing or null one is left out)."""
        cost: dict[int, float] = {}
        category: dict[int, str] = {}
        for row in rows:
            pid = int(row["product_id"])
            if row.get("unit_cost") is not None:
                cost[pid] = float(row["unit_cost"])
            if row.get("category") is not None:
                category[pid] = str(row["category"])
        return cls(cost, category)


def fit_products(
    table: pa.Table,
    catalog: Catalog | None = None,
    *,
    rules: dict[str, Rules] | None = None,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
    prior: tuple[float, float] | None = None,
    stores: list[dict] | None = None,
    **options: Any,
) -> list[PriceResult]:
    """Fit every product in ``table`` (one shard's transactions), in product order; ``rules``
    by category (key ``"*"`` for the default).

    ``prior`` (mean, variance): each product's elasticity is pulled toward it by its own
    noise before its price is decided. Priced one by one on unpulled estimates, the products
    whose noise made them look inelastic are the ones moved up (the winner's curse across
    products). The prior is fixed, not estimated from the products at hand: a product's price
    must not depend on which others share its shard.

    Rows with negative units (returns) are counted per product and left out of the fit.
    ``stores``: a list each product's store rows are added to (see ``fit_product``).
    """
    catalog = catalog or Catalog()
    rules = rules or {}
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
    parts = [
        (int(product), {k: v[start:end] for k, v in cells.items()})
        for product, start, end in zip(products, starts, bounds, strict=True)
    ]
    results = [
        dataclasses.replace(
            fit_product(
                part,
                pid,
                unit_cost=catalog.unit_cost.get(pid),
                rules=rules_for(rules, catalog.category.get(pid)),
                spec=spec,
                cost_ratio=cost_ratio,
                returns_rows=returns_by_product.get(pid, 0),
                prior=prior,
                stores=stores,
                **options,
            ),
            category=catalog.category.get(pid),
        )
        for pid, part in parts
    ]
    fitted = set(products.tolist())
    returns_by_product = {p: n for p, n in returns_by_product.items() if p not in fitted}
    results += [_no_sales(p, n) for p, n in returns_by_product.items()]
    return results
