"""Store prices under the chain's rules: zones of stores with one price each, chosen for the
product's profit over all its stores, and kept only where they beat the chain price.

Per product, over joint draws of the stores' elasticities (the chain's elasticity, the pooled
store effects drawn once for every product, each store x product's own deviation):

1. every store's allowed prices are its category's rules around its own regular price;
2. stores with too little evidence (``StoreRules.min_weeks`` weeks of their own sales, or no
   slope of their own) keep the chain price: the chain decision's move applied to them;
3. the others are grouped into at most ``max_zones`` zones, each at one price, every zone's
   price within ``max_spread`` of the others: sorted by the price best for each alone, the
   stores are cut into contiguous groups by dynamic programming (exact for that order), for
   every window of prices the spread allows;
4. zones and prices are chosen on half the draws and scored on the other half (the winner's
   curse, as for the chain's price); the zones are kept only when they beat the chain price in
   expectation and their gain over today's prices has an interval above zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.training.pricing.config import Rules, StoreRules
from shared.training.pricing.decide import _candidates

NO = -1e18  # a price a store may not have


def zone_prices(
    gain: np.ndarray, grid: np.ndarray, max_zones: int, max_spread: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(zone of each store, each zone's price, total gain) maximising the summed ``gain``
    (stores x grid, ``NO`` where not allowed), or None when no zones satisfy the rules."""
    n_s = gain.shape[0]
    allowed = gain > NO / 2
    if not allowed.any(axis=1).all():
        return None
    best_alone = np.argmax(np.where(allowed, gain, -np.inf), axis=1)
    order = np.argsort(grid[best_alone], kind="stable")
    g, ok = gain[order], allowed[order]
    totals = np.vstack([np.zeros(len(grid)), np.cumsum(np.where(ok, g, 0.0), axis=0)])
    refused = np.vstack([np.zeros(len(grid)), np.cumsum(~ok, axis=0)])
    found: tuple[float, np.ndarray, np.ndarray] | None = None
    for a in range(len(grid)):
        window = (grid >= grid[a] - 1e-9) & (grid <= grid[a] * (1 + max_spread) + 1e-9)
        cols = np.flatnonzero(window)
        # value[i, j]: stores i..j-1 (in order) at their best common price in the window.
        span = totals[None, :, cols] - totals[:, None, cols]
        blocked = (refused[None, :, cols] - refused[:, None, cols]) > 0
        span = np.where(blocked, -np.inf, span)
        value, pick = span.max(axis=2), cols[span.argmax(axis=2)]
        best = np.full((max_zones + 1, n_s + 1), -np.inf)
        back = np.zeros((max_zones + 1, n_s + 1), dtype=np.int64)
        best[0, 0] = 0.0
        for z in range(1, max_zones + 1):
            candidate = best[z - 1][:, None] + value  # (from i, to j)
            back[z] = np.argmax(candidate, axis=0)
            best[z] = candidate[back[z], np.arange(n_s + 1)]
        z_best = int(np.argmax(best[:, n_s]))
        total = float(best[z_best, n_s])
        if not math.isfinite(total) or (found is not None and total <= found[0]):
            continue
        zone_of, chosen, j = np.zeros(n_s, dtype=np.int64), [], n_s
        for z in range(z_best, 0, -1):
            i = int(back[z, j])
            chosen.append(float(grid[pick[i, j]]))
            zone_of[i:j] = z - 1
            j = i
        assignment = np.empty(n_s, dtype=np.int64)
        assignment[order] = zone_of
        found = (total, assignment, np.array(chosen[::-1]))
    if found is None:
        return None
    # Zones numbered by price, lowest first; zones that ended with the same price merged.
    levels = np.unique(found[2])
    return np.searchsorted(levels, found[2][found[1]]), levels, found[0]


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
    chain_price = regular * chain_ratio
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
