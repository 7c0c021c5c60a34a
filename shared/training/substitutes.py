"""Substitutes: cross-price elasticities among a category's top products, and their regular
prices set jointly for the category's profit.

For each product i of a group (a category's top products by revenue), the own-price model of
``pricing.py`` gains the log prices of the other products j in the same store and week:

    E[units_i] = exp(e_i * log p_i + sum_j c_ij * log p_j + controls + store effect)

``c_ij > 0``: i sells more when j is dearer (substitutes). Standard errors are the same
delete-one-week jackknife. Where j did not sell in a store-week, its price there is its
chain-wide price that week (else its mean).

Joint pricing: with ``q_i(p) = q0_i * prod_j (p_j / p0_j) ** E_ij`` (``E_ii = e_i``), the
category's expected weekly profit over the elasticities' sampling distribution (own and cross
coefficients drawn together from one multivariate t with the week jackknife's joint covariance)
is maximised over the prices each product's rules allow, by coordinate ascent from the regular
prices on half the draws and scored on the other half; moved only when the 90% interval of the
category's gain excludes zero. A cross elasticity outside ``CROSS_RANGE`` is flagged and the
group is not priced jointly on it. Pricing the products one by one ignores that a cut on one
takes sales from the others.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.training.pricing import (
    CROSS_RANGE,
    DEFAULT_SPEC,
    Catalog,
    Rules,
    Spec,
    _candidates,
    _design,
    _full_rank,
    _mean_gain,
    _poisson_fit,
    _week_jackknife_shifts,
    baseline,
    jackknife_cov,
    joint_t_draws,
    resolve_cost,
    weekly_cells,
    with_regular_and_after_deal,
    with_zero_weeks,
)


@dataclass(frozen=True)
class Group:
    category: str
    products: list[int]
    own: list[float | None]
    own_se: list[float | None]
    cross: list[list[float | None]]  # cross[i][j]: effect of j's price on i's units
    cross_se: list[list[float | None]]
    regular: list[float]
    unit_cost: list[float | None]
    weekly_units: list[float]
    independent_prices: list[float] | None = None
    joint_prices: list[float] | None = None
    gain_independent: float | None = None  # category profit a week, expected
    gain_joint: float | None = None
    gain_low: float | None = None  # 90% interval of the joint gain
    gain_high: float | None = None
    decision: str = "hold"
    reason: str = ""
    # Implausible cross elasticities, named: the group is not priced jointly on them.
    flags: list[str] = dataclasses.field(default_factory=list)
    # (week pseudo-values of every coefficient, own_i then cross_ij in order), for the joint
    # covariance; not written out.
    _jackknife: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def row(self) -> dict:
        found = asdict(self)
        found.pop("_jackknife")
        return found


def top_by_category(table: pa.Table, catalog: Catalog, top: int) -> dict[str, list[int]]:
    """Each category's ``top`` products by revenue (one group ``"*"`` without categories)."""
    sums = table.group_by("product_id").aggregate([("revenue", "sum")])
    ranked = sorted(
        zip(sums["product_id"].to_pylist(), sums["revenue_sum"].to_pylist(), strict=True),
        key=lambda pr: (-pr[1], pr[0]),
    )
    groups: dict[str, list[int]] = {}
    for pid, _ in ranked:
        members = groups.setdefault(catalog.category.get(pid, "*"), [])
        if len(members) < top:
            members.append(pid)
    return {c: sorted(m) for c, m in groups.items() if len(m) >= 2}


def _store_week_log_price(cells: dict[str, np.ndarray]) -> dict[tuple[int, int], float]:
    units = cells["units"]
    key = cells["store_id"] * 100_000 + cells["week"]
    log_price = np.log(cells["price"])
    found, idx = np.unique(key, return_inverse=True)
    idx = idx.ravel()
    mean = np.bincount(idx, weights=log_price * units) / np.bincount(idx, weights=units)
    return dict(zip(found.tolist(), mean.tolist(), strict=True))


def _rival_column(cells: dict, rival: dict[str, np.ndarray]) -> np.ndarray:
    by_store_week = _store_week_log_price(rival)
    weeks = rival["week"]
    rival_log = np.log(rival["price"])
    by_week = {
        int(w): float(np.average(rival_log[weeks == w], weights=rival["units"][weeks == w]))
        for w in np.unique(weeks)
    }
    overall = float(np.average(rival_log, weights=rival["units"]))
    keys = (cells["store_id"] * 100_000 + cells["week"]).tolist()
    return np.array(
        [
            by_store_week.get(k, by_week.get(int(w), overall))
            for k, w in zip(keys, cells["week"].tolist(), strict=True)
        ]
    )


def fit_group(
    table: pa.Table,
    category: str,
    products: list[int],
    catalog: Catalog,
    rules: Rules,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
    draws: int = 2000,
) -> Group:
    """Own and cross elasticities of ``products`` (rows of ``table``), then joint prices."""
    rows = table.filter(
        pc.and_(pc.is_in(table["product_id"], pa.array(products)), pc.greater(table["units"], 0))
    )
    all_cells = weekly_cells(rows)
    per: dict[int, dict[str, np.ndarray]] = {}
    for pid in products:
        mask = (all_cells["product_id"] == pid) & (all_cells["units"] > 0)
        per[pid] = {k: v[mask] for k, v in all_cells.items()}
    k = len(products)
    own: list[float | None] = [None] * k
    own_se: list[float | None] = [None] * k
    cross: list[list[float | None]] = [[None] * k for _ in range(k)]
    cross_se: list[list[float | None]] = [[None] * k for _ in range(k)]
    regular, cost, volume = [], [], []
    shifts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, pid in enumerate(products):
        cells = with_regular_and_after_deal(per[pid])
        p0, weekly_units = baseline(cells)
        regular.append(p0)
        cost.append(resolve_cost(catalog.unit_cost.get(pid), cost_ratio, p0)[0])
        volume.append(weekly_units)
        if spec.zero_weeks:
            cells = with_zero_weeks(cells)
        others = [j for j in range(k) if j != i]
        rival_cols = [_rival_column(cells, per[products[j]]) for j in others]
        base, _, _ = _design(cells, spec)
        x = np.column_stack([base[:, :1], *rival_cols, base[:, 1:]])
        x, identified, kept = _full_rank(x)
        if (
            not identified
            or not np.array_equal(kept[: 1 + len(others)], np.arange(1 + len(others)))
            or len(cells["units"]) - x.shape[1] < 5
        ):
            continue
        beta, mu = _poisson_fit(x, cells["units"])
        weeks, moved = _week_jackknife_shifts(x, cells["units"], mu, cells["week"])
        first = 1 + len(others)
        shifts[i] = (weeks, moved[:, :first])
        ses = np.sqrt(np.diag(jackknife_cov(moved[:, :first])))
        own[i], own_se[i] = float(beta[0]), float(ses[0])
        for n, j in enumerate(others):
            cross[i][j], cross_se[i][j] = float(beta[1 + n]), float(ses[1 + n])
    group = Group(category, products, own, own_se, cross, cross_se, regular, cost, volume)
    if len(shifts) == k:
        # One row per week of any product: a week a product did not sell in moves none of
        # its coefficients when left out.
        weeks = np.unique(np.concatenate([w for w, _ in shifts.values()]))
        pseudo = np.zeros((len(weeks), k * k))
        for i, (w, moved) in shifts.items():
            pseudo[np.searchsorted(weeks, w), i * k : i * k + k] = moved
        group = dataclasses.replace(group, _jackknife=pseudo)
    return _joint(group, rules, draws)


def _joint(group: Group, rules: Rules, draws: int) -> Group:
    k = len(group.products)
    if any(e is None for e in group.own) or any(c is None for c in group.unit_cost):
        return dataclasses.replace(
            group, reason="an elasticity or a unit cost is missing in the group"
        )
    flags = [
        f"{group.products[j]}'s price on {group.products[i]}'s units: {c:+.2f}, outside the "
        f"plausible [{CROSS_RANGE[0]:+.2f}, {CROSS_RANGE[1]:+.2f}]"
        for i in range(k)
        for j in range(k)
        if i != j
        for c in [group.cross[i][j]]
        if c is not None and not CROSS_RANGE[0] <= c <= CROSS_RANGE[1]
    ]
    if flags or group._jackknife is None:
        why = (
            "implausible cross elasticities, not acted upon: " + "; ".join(flags)
            if flags
            else "a product's cross elasticities could not all be estimated"
        )
        return dataclasses.replace(group, reason=why, flags=flags)
    # Own and cross coefficients drawn together: one multivariate t with the jackknife's joint
    # covariance (substitutes' prices move together, so their coefficients do), G - 1 degrees
    # of freedom for G weeks.
    centre = np.zeros(k * k)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        centre[i * k] = float(group.own[i])  # type: ignore[arg-type]
        for n, j in enumerate(others):
            centre[i * k + 1 + n] = float(group.cross[i][j] or 0.0)
    flat = joint_t_draws(centre, jackknife_cov(group._jackknife), len(group._jackknife) - 1,
                         len(group.products) * 7919 + group.products[0], draws)  # fmt: skip
    e = np.zeros((draws, k, k))
    for i in range(k):
        others = [j for j in range(k) if j != i]
        e[:, i, i] = flat[:, i * k]
        for n, j in enumerate(others):
            e[:, i, j] = flat[:, i * k + 1 + n]
    p0 = np.array(group.regular)
    c = np.array(group.unit_cost, dtype=float)
    q0 = np.array(group.weekly_units)
    grids = []
    for i in range(k):
        _, low, _, high = rules.bounds(p0[i], c[i])
        # inelastic for sure: the 95% interval (about 2 standard errors) lies above -1
        surely = float(group.own[i]) - 2 * float(group.own_se[i] or 0.0) > -1  # type: ignore[arg-type]
        inelastic = surely and rules.inelastic == "hold"
        grids.append(
            np.array([p0[i]])
            if inelastic
            else np.append(_candidates(low, high, rules.endings), p0[i])
        )

    # Chosen on half the draws, scored on the other half (the winner's curse).
    chooser, scorer = e[0::2], e[1::2]

    def value(prices: np.ndarray, draws: np.ndarray) -> np.ndarray:
        log_ratio = np.log(prices / p0)  # (k,)
        units = q0 * np.exp(np.einsum("dij,j->di", draws, log_ratio))  # (draws, k)
        return ((prices - c) * units).sum(axis=1)

    base = value(p0, chooser)

    # Priced one by one: each product's best price on its own elasticity, the others ignored.
    independent = np.array(
        [
            grids[i][
                int(
                    np.argmax(
                        [_mean_gain(p, p0[i], q0[i], chooser[:, i, i], c[i]) for p in grids[i]]
                    )
                )
            ]
            for i in range(k)
        ]
    )
    prices = p0.copy()
    for _ in range(10):
        changed = False
        for i in range(k):
            scores = []
            for candidate in grids[i]:
                trial = prices.copy()
                trial[i] = candidate
                scores.append(float((value(trial, chooser) - base).mean()))
            pick = grids[i][int(np.argmax(scores))]
            if pick != prices[i]:
                prices[i], changed = pick, True
        if not changed:
            break
    base = value(p0, scorer)
    gain = value(prices, scorer) - base
    low, high = np.quantile(gain, [(1 - rules.confidence) / 2, (1 + rules.confidence) / 2])
    mean = float(gain.mean())
    moved = not np.allclose(prices, p0) and low > 0
    reason = (
        f"category profit {mean:+,.2f} a week expected ({rules.confidence:.0%} interval "
        f"[{low:+,.2f}, {high:+,.2f}])"
        if moved
        else "the regular prices are already the best jointly"
        if np.allclose(prices, p0)
        else f"{rules.confidence:.0%} interval of the category's gain [{low:+,.2f}, "
        f"{high:+,.2f}] includes 0"
    )
    return dataclasses.replace(
        group,
        independent_prices=[round(float(p), 2) for p in independent],
        joint_prices=[round(float(p), 2) for p in prices],
        gain_independent=float((value(independent, scorer) - base).mean()),
        gain_joint=mean,
        gain_low=float(low),
        gain_high=float(high),
        decision="move" if moved else "hold",
        reason=reason,
    )


def fit_substitutes(
    table: pa.Table,
    catalog: Catalog,
    rules_by_category: dict[str, Rules],
    top: int,
    spec: Spec = DEFAULT_SPEC,
    cost_ratio: float | None = None,
) -> list[Group]:
    """Every category's group of top products (categories with at least two)."""
    default = rules_by_category.get("*", Rules())
    return [
        fit_group(
            table, name, members, catalog, rules_by_category.get(name, default), spec, cost_ratio
        )
        for name, members in sorted(top_by_category(table, catalog, top).items())
    ]
