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


def allowed_prices(regular: float, rules: Rules, unit_cost: float | None) -> np.ndarray:
    """The prices ``rules`` allow a product at ``regular`` (its cost bounds the margin when
    the objective is profit): what ``decide`` chooses among, and what a person may override
    with."""
    cost = unit_cost if rules.objective == "profit" else 0.0
    _, low, _, high = rules.bounds(regular, cost)
    return _candidates(low, high, rules.endings)


def decide(
    regular: float,
    weekly_units: float,
    elasticity_draws: np.ndarray,
    rules: Rules,
    unit_cost: float | None,
    *,
    volume_draws: np.ndarray | None = None,
    cost_draws: np.ndarray | None = None,
    mean_regular: float | None = None,
) -> Decision:
    """The price to sign: the best expected gain over the allowed prices, moved to only when
    the ``rules.confidence`` interval of the gain excludes zero.

    The draws carry what is uncertain: the elasticity, the volume at the regular price
    (``volume_draws``, a multiplier) and an assumed cost (``cost_draws``). The price is chosen
    on half the draws and its gain scored on the other half: scored on the draws that chose
    it, the best of many prices looks better than it is (the winner's curse).

    ``mean_regular``: the stores' volume-weighted regular price where zones differ from
    ``regular`` (the price the rules and endings apply to); a candidate moves every store by
    its ratio to ``regular``, so the value is computed at each store's own price."""
    cost = unit_cost if rules.objective == "profit" else 0.0
    low_rule, low, high_rule, high = rules.bounds(regular, cost)

    def hold(code: str, reason: str, **kw: Any) -> Decision:
        base = {"candidate_price": regular, "expected_gain": 0.0, "gain_low": 0.0,
                "gain_high": 0.0, "base_value": 0.0, "binding_rule": None}  # fmt: skip
        return Decision("hold", reason, code, regular, **{**base, **kw})

    if rules.objective == "profit" and unit_cost is None:
        return hold("no_cost", "no unit cost: profit cannot be computed (give a cost table)")
    point = float(np.median(elasticity_draws))
    surely_above = float(np.quantile(elasticity_draws, 0.025))
    if surely_above > -1 and rules.inelastic == "hold":
        return hold(
            "inelastic",
            f"demand is inelastic: the 95% interval of the elasticity lies above -1 "
            f"(from {surely_above:+.2f}, median {point:+.2f}"
            + (", the wrong sign" if point > 0 else "")
            + "): the model has no best price inside any corridor, only its top; "
            "review by hand (inelastic: edge recommends the top)",
        )
    if point > -1 and rules.inelastic == "hold":
        return hold(
            "inelastic_possible",
            f"the elasticity's median {point:+.2f} is above -1, where the model's best price is "
            f"the top of any corridor, but its 95% interval reaches {surely_above:+.2f}: the "
            "data cannot say whether demand is inelastic; review by hand",
        )
    grid = allowed_prices(regular, rules, unit_cost)
    if low > high or not len(grid):
        return hold(
            "no_feasible_price",
            f"no price satisfies the rules: {low_rule} needs >= {low:.2f}, "
            f"{high_rule} allows <= {high:.2f}",
        )
    others = grid[np.abs(grid - regular) >= 0.005]
    if not len(others):
        endings = "/".join(f"{e:.2f}"[1:] for e in rules.endings) or "any cent"
        return hold(
            "no_other_price",
            f"no allowed price other than the regular {regular:.2f}: {low_rule} allows "
            f">= {low:.2f}, {high_rule} <= {high:.2f}, endings {endings}",
        )
    prices = np.append(others, regular)
    ratio = prices[:, None] / regular
    volume = weekly_units * (1.0 if volume_draws is None else volume_draws[None, :])
    units = volume * ratio ** elasticity_draws[None, :]
    unit_costs: float | np.ndarray = (
        (cost or 0.0) if cost_draws is None or not cost else cost_draws[None, :]
    )
    shelf = prices[:, None] * ((mean_regular or regular) / regular)
    value = (shelf - unit_costs) * units  # (candidates, draws)
    gains = value - value[-1:]
    chooser, scorer = gains[:, 0::2], gains[:, 1::2] if gains.shape[1] > 1 else gains
    best = int(np.argmax(chooser[:-1].mean(axis=1)))
    scored = scorer[best]
    mean = float(scored.mean())
    tail = (1 - rules.confidence) / 2
    lo, hi = np.quantile(scored, [tail, 1 - tail])
    price = float(prices[best])
    # A rule binds when the next allowed price beyond its edge would have been better.
    above = _candidates(price + 0.005, price + 2.0, rules.endings)[:1]
    below = _candidates(max(price - 2.0, 0.0), price - 0.005, rules.endings)[-1:]
    binding = None
    for beyond, rule in ((above, high_rule), (below, low_rule)):
        outside = len(beyond) and (beyond[0] > high + 1e-9 or beyond[0] < low - 1e-9)
        if outside and _mean_gain(
            beyond[0], regular, weekly_units, elasticity_draws, cost or 0
        ) > _mean_gain(price, regular, weekly_units, elasticity_draws, cost or 0):
            binding = rule
    base_value = float(value[-1].mean())
    found: dict[str, Any] = {
        "candidate_price": price,
        "expected_gain": mean,
        "gain_low": float(lo),
        "gain_high": float(hi),
        "base_value": base_value,
        "binding_rule": binding,
    }
    level = f"{rules.confidence:.0%}"
    if mean <= 0:
        return hold(
            "regular_is_best",
            f"the regular price is the best allowed: the best other, {price:.2f}, "
            f"would change weekly {rules.objective} by {mean:+,.2f}",
            **found,
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
        f"{rules.objective} {mean:+,.2f} a week expected at {price:.2f} "
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


def joint_t_draws(
    mean: np.ndarray, cov: np.ndarray, df: int, seed: int, n: int = 4000
) -> np.ndarray:
    """(n, k) draws of a multivariate Student's t with ``df`` degrees of freedom (G - 1 for G
    week clusters) around ``mean`` with scale ``cov``: coefficients estimated together vary
    together (a jackknife covariance, not independent normals)."""
    rng = np.random.default_rng(seed)
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    root = vectors * np.sqrt(np.maximum(values, 0.0))
    z = rng.standard_normal((n, len(mean))) @ root.T
    scale = np.sqrt(max(df, 1) / rng.chisquare(max(df, 1), n))
    return mean[None, :] + z * scale[:, None]
