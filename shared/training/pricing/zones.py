"""Store prices under the chain's rules: zones of stores with one price each, chosen for the
product's profit over all its stores, and kept only where they beat the chain price.

Per product, over joint draws of the stores' elasticities (the chain's elasticity, the pooled
store effects drawn once for every product, each store x product's own deviation):

1. every store's allowed prices are its category's rules around its own regular price;
2. stores with too little evidence (``StoreRules.min_weeks`` weeks of their own sales, or no
   slope of their own) keep the chain price: the chain decision's move applied to them;
3. the others are grouped into at most ``max_zones`` zones, each at one price, every zone's
   price within ``max_spread`` of the others: every allowed set of zone prices is tried, each
   store in the zone whose price is best for it (exact);
4. zones and prices are chosen on half the draws and scored on the other half (the winner's
   curse, as for the chain's price); the zones are kept only when they beat the chain price in
   expectation and their gain over today's prices has an interval above zero.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from shared.training.pricing.config import Rules, StoreRules
from shared.training.pricing.decide import _candidates

NO = -1e18  # a price a store may not have


def zone_prices(
    gain: np.ndarray, grid: np.ndarray, max_zones: int, max_spread: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(zone of each store, each zone's price, total gain) maximising the summed ``gain``
    (stores x grid, ``NO`` where not allowed), or None when no zones satisfy the rules.

    Exact: every set of at most ``max_zones`` prices within the spread is tried, each store
    taking the best of them it is allowed (a few thousand sets for a 30-price grid)."""
    allowed = gain > NO / 2
    if not allowed.any(axis=1).all():
        return None
    found: tuple[float, tuple[int, ...]] | None = None
    for size in range(1, min(max_zones, len(grid)) + 1):
        sets = np.array(list(itertools.combinations(range(len(grid)), size)), dtype=np.int64)
        prices = grid[sets]
        sets = sets[prices.max(axis=1) <= prices.min(axis=1) * (1 + max_spread) + 1e-9]
        if not len(sets):
            continue
        values = gain[:, sets]  # (stores, sets, size)
        best = values.max(axis=2)
        feasible = (best > NO / 2).all(axis=0)
        if not feasible.any():
            continue
        totals = np.where(feasible, np.where(best > NO / 2, best, 0.0).sum(axis=0), -np.inf)
        k = int(np.argmax(totals))
        if found is None or totals[k] > found[0] + 1e-12:
            found = (float(totals[k]), tuple(int(i) for i in sets[k]))
    if found is None:
        return None
    total, chosen = found
    picks = np.array(chosen)[np.argmax(gain[:, list(chosen)], axis=1)]
    levels = np.unique(picks)  # the prices some store takes, lowest first
    return np.searchsorted(levels, picks), grid[levels], total


def chain_prices(regular: np.ndarray, ratio: float, rules: Rules, cost: float) -> np.ndarray:
    """The chain decision at each store: its regular price times the chain's ratio, at the
    nearest price its rules allow (endings, corridor, margin); today's where the chain holds."""
    if abs(ratio - 1) < 1e-9:
        return regular.astype(np.float64).copy()
    found = []
    for r in regular.tolist():
        _, low, _, high = rules.bounds(r, cost or None)
        grid = _candidates(low, high, rules.endings)
        target = r * ratio
        found.append(float(grid[np.argmin(np.abs(grid - target))]) if len(grid) else r)
    return np.array(found)


@dataclass(frozen=True)
class StoreChoice:
    """One product's store prices."""

    price: np.ndarray  # (stores,) the price each store is recommended
    zone: np.ndarray  # (stores,) its zone (1..), 0: the chain price
    code: str  # zones | chain_price | chain_price_uncertain | no_zones | no_evidence
    reason: str
    gains: np.ndarray  # (stores, scoring draws) each store's gain at its price vs today
    chain_gains: np.ndarray  # (stores, scoring draws) at the chain decision's prices
    zone_prices: np.ndarray


def choose(
    regular: np.ndarray,
    volume: np.ndarray,
    draws: np.ndarray,
    evidence: np.ndarray,
    cost: float,
    chain_ratio: float,
    rules: Rules,
    chain: StoreRules,
) -> StoreChoice:
    """The stores' prices for one product (see the module): ``regular``, ``volume`` and
    ``evidence`` per store, ``draws`` (stores x draws) of their elasticities, ``cost`` the
    unit cost (0 for revenue), ``chain_ratio`` the chain decision's price / regular price."""
    cost = cost if rules.objective == "profit" else 0.0

    def value(price: np.ndarray, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Gain of store rows ``s`` at ``price`` (their shapes) under draws ``d``, vs today."""
        r, v = regular[s], volume[s]
        units = (price / r)[..., None] ** d
        return v[..., None] * ((price - cost)[..., None] * units - (r - cost)[..., None])

    everyone = np.arange(len(regular))
    chain_price = chain_prices(regular, chain_ratio, rules, cost)
    chain_gains = value(chain_price, everyone, draws)[:, 1::2]

    def keep_chain(code: str, reason: str) -> StoreChoice:
        return StoreChoice(chain_price, np.zeros(len(regular), np.int64), code, reason,
                           chain_gains, chain_gains, np.array([]))  # fmt: skip

    chosen = np.flatnonzero(evidence)
    if not len(chosen):
        return keep_chain("no_evidence", "no store has enough of its own sales and price moves")
    bounds = [rules.bounds(float(r), cost or None) for r in regular[chosen]]
    grid = _candidates(min(b[1] for b in bounds), max(b[3] for b in bounds), rules.endings)
    if not len(grid):
        return keep_chain("no_zones", "no price the rules allow")
    allowed = np.array([(grid >= b[1] - 1e-9) & (grid <= b[3] + 1e-9) for b in bounds])
    at = value(np.broadcast_to(grid, allowed.shape), chosen[:, None], draws[chosen][:, None, :])
    choose_on = np.where(allowed, at[..., 0::2].mean(axis=-1), NO)
    solved = zone_prices(choose_on, grid, chain.max_zones, chain.max_spread)
    if solved is None:
        return keep_chain(
            "no_zones",
            f"no {chain.max_zones} zone(s) within {chain.max_spread:.0%} of each other fit "
            "every store's rules",
        )
    assignment, prices, _ = solved
    price, zone = chain_price.copy(), np.zeros(len(regular), np.int64)
    price[chosen], zone[chosen] = prices[assignment], assignment + 1
    gains = value(price, everyone, draws)[:, 1::2]
    total, versus = gains.sum(axis=0), gains.sum(axis=0) - chain_gains.sum(axis=0)
    tail = (1 - rules.confidence) / 2
    low = float(np.quantile(total, tail))
    level = f"{rules.confidence:.0%}"
    if float(versus.mean()) <= 0:
        return keep_chain(
            "chain_price",
            f"store prices would not beat the chain price: {rules.objective} "
            f"{float(versus.mean()):+,.2f} a week against it",
        )
    if low <= 0:
        return keep_chain(
            "chain_price_uncertain",
            f"store prices' {level} interval of the weekly {rules.objective} change includes 0 "
            f"(from {low:+,.2f}): the chain price stands",
        )
    return StoreChoice(
        price,
        zone,
        "zones",
        f"{len(prices)} zone(s) at {', '.join(f'{p:.2f}' for p in prices)}: {rules.objective} "
        f"{float(versus.mean()):+,.2f} a week over the chain price",
        gains,
        chain_gains,
        prices,
    )
