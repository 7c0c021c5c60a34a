"""The decision: over the prices the rules allow, the one with the highest expected weekly change
in profit, recommended only when its interval excludes zero."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shared.training.pricing.config import Decision, Rules


def _candidates(low: float, high: float, endings: tuple[float, ...]) -> np.ndarray:
    """Prices in [low, high] (to the cent) ending in one of ``endings``."""
    if not endings:
        return np.arange(math.ceil(low * 100 - 1e-9), math.floor(high * 100 + 1e-9) + 1) / 100
    found = [
        round(euros + ending, 2)
        for euros in range(math.floor(low), math.floor(high) + 1)
        for ending in endings
        if low - 1e-9 <= euros + ending <= high + 1e-9
    ]
    return np.array(sorted(found))


def decide(
    regular: float,
    weekly_units: float,
    elasticity_draws: np.ndarray,
    rules: Rules,
    unit_cost: float | None,
) -> Decision:
    """The price to sign: the best expected gain over the allowed prices, moved to only when
    the ``rules.confidence`` interval of the gain excludes zero."""
    cost = unit_cost if rules.objective == "profit" else 0.0
    low_rule, low, high_rule, high = rules.bounds(regular, cost)

    def hold(code: str, reason: str, **kw: Any) -> Decision:
        base = {"candidate_price": regular, "expected_gain": 0.0, "gain_low": 0.0,
                "gain_high": 0.0, "base_value": 0.0, "binding_rule": None}  # fmt: skip
        return Decision("hold", reason, code, regular, **{**base, **kw})

    if rules.objective == "profit" and unit_cost is None:
        return hold("no_cost", "no unit cost: profit cannot be computed (give a cost table)")
    point = float(np.median(elasticity_draws))
    if point > -1 and rules.inelastic == "hold":
        return hold(
            "inelastic",
            f"demand estimated inelastic (elasticity {point:+.2f}"
            + (", the wrong sign" if point > 0 else "")
            + "): the model has no best price inside any corridor, only its top; "
            "review by hand (inelastic: edge recommends the top)",
        )
    grid = _candidates(low, high, rules.endings)
    if low > high or not len(grid):
        return hold(
            "no_feasible_price",
            f"no price satisfies the rules: {low_rule} needs >= {low:.2f}, "
            f"{high_rule} allows <= {high:.2f}",
        )
    prices = np.append(grid, regular)
    ratio = prices[:, None] / regular
    volume = weekly_units * ratio ** elasticity_draws[None, :]
    value = (prices[:, None] - cost) * volume  # (candidates, draws)
    gains = value - value[-1:]
    mean = gains.mean(axis=1)
    best = int(np.argmax(mean[:-1]))
    tail = (1 - rules.confidence) / 2
    lo, hi = np.quantile(gains[best], [tail, 1 - tail])
    price = float(prices[best])
    # A rule binds when the next allowed price beyond its edge would have been better.
    above = _candidates(price + 0.005, price + 2.0, rules.endings)[:1]
    below = _candidates(max(price - 2.0, 0.0), price - 0.005, rules.endings)[-1:]
    binding = None
    for beyond, rule in ((above, high_rule), (below, low_rule)):
        outside = len(beyond) and (beyond[0] > high + 1e-9 or beyond[0] < low - 1e-9)
        if outside and _mean_gain(
            beyond[0], regular, weekly_units, elasticity_draws, cost or 0
        ) > float(mean[best]):
            binding = rule
    base_value = float(value[-1].mean())
    found: dict[str, Any] = {
        "candidate_price": price,
        "expected_gain": float(mean[best]),
        "gain_low": float(lo),
        "gain_high": float(hi),
        "base_value": base_value,
        "binding_rule": binding,
    }
    level = f"{rules.confidence:.0%}"
    if mean[best] <= 0 or abs(price - regular) < 0.005:
        return hold(
            "regular_is_best", "the regular price is already the best inside the rules", **found
        )
    if lo <= 0:
        return hold(
            "gain_uncertain",
            f"{level} interval of the weekly {rules.objective} change at {price:.2f} is "
            f"[{lo:+,.2f}, {hi:+,.2f}]: it includes 0",
            **found,
        )
    return Decision(
        "move",
        f"{rules.objective} {mean[best]:+,.2f} a week expected at {price:.2f} "
        f"({level} interval [{lo:+,.2f}, {hi:+,.2f}])"
        + (f"; at the {binding} rule's edge" if binding else ""),
        "move",
        price,
        **found,
    )


def _mean_gain(
    price: float, regular: float, weekly_units: float, draws: np.ndarray, cost: float
) -> float:
    value = (price - cost) * weekly_units * (price / regular) ** draws
    return float((value - (regular - cost) * weekly_units).mean())


def _draws(e: float, se: float, weeks: int, seed: int, n: int = 4000) -> np.ndarray:
    """The elasticity's sampling distribution: e + se * t(G - 1)."""
    rng = np.random.default_rng(seed)
    return e + se * rng.standard_t(max(weeks - 1, 1), n)
