"""The synthetic retailer's demand: the one function every unit sold, every true elasticity and
every held-out week's profit comes from.

Units of product p in store s on day d are Poisson with mean::

    base[s, p] * season[c, d] * weekday[d] * exp(week_shock[c, w] + product_shift[p, w])
      * noise[s, p, w] * f_p(regular / reference; e[s, p]) * deal(price / regular)
      * promo_lift ** on_promo * feature_lift ** feature * display_lift ** display
      * (1 - dip[p]) ** (week after a deal) * prod over substitutes q (price_q / ref_q) ** cross

``f_p`` is the demand curve at the regular price: constant elasticity (``x ** e``), linear
(``1 + e (x - 1)``) or logit (a 40% share at the reference price); ``e[s, p]`` is its
elasticity at the reference price: the product's, plus the store's shift (its demographics
explain a third of it, the rest is the store's own) plus the pair's own difference. A store
sells from its opening week (in the hard world two stores open late in the history). A deal
multiplies demand by ``(f(price) / f(regular)) ** stockpile``: shoppers load their pantries
(``stockpile`` > 1 in the hard world) and buy less the week after (``dip``). In the easy world
every product is constant-elasticity, with no shocks, stockpiling or dip: the model's own
assumptions.
"""

from __future__ import annotations

import math

import numpy as np

from shared.synthetic.world import World

FORMS = ("constant", "linear", "logit")
LOGIT_SHARE = 0.4  # the logit products' share of their market at the reference price
WEEKDAY = np.array([0.85, 0.85, 0.9, 0.95, 1.15, 1.35, 0.95])  # Monday .. Sunday
FEATURE_LIFT = 1.35
DISPLAY_LIFT = 1.25


def relative_demand(form: np.ndarray, e: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Demand at ``x`` = price / reference price, 1 at ``x`` = 1, elasticity ``e`` there."""
    constant = x**e
    linear = np.maximum(1 + e * (x - 1), 0.02)
    alpha = -e / (1 - LOGIT_SHARE)
    share = 1 / (1 + (1 - LOGIT_SHARE) / LOGIT_SHARE * np.exp(alpha * (x - 1)))
    return np.where(form == 0, constant, np.where(form == 1, linear, share / LOGIT_SHARE))


def elasticity_at(form: np.ndarray, e: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The curve's own-price elasticity at ``x`` (what a permanent small change meets)."""
    linear = e * x / np.maximum(1 + e * (x - 1), 0.02)
    alpha = -e / (1 - LOGIT_SHARE)
    share = 1 / (1 + (1 - LOGIT_SHARE) / LOGIT_SHARE * np.exp(alpha * (x - 1)))
    logit = -alpha * x * (1 - share)
    return np.where(form == 0, e, np.where(form == 1, linear, logit))


def pair_elasticity(world: World) -> np.ndarray:
    """e[s, p] of each carried pair: the product's, shifted by the store's (demographics and
    what they do not explain) and by the pair's own difference."""
    e = (
        world.elasticity[world.pair_product]
        + world.store_shift[world.pair_store]
        + world.pair_shift
    )
    return np.minimum(e, -1.05) if world.hard else e


def _cents(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def daily_mean(world: World, day: int, price_ratio: np.ndarray | None = None) -> dict:
    """Expected units of every carried pair on ``day`` and the prices behind them.

    ``price_ratio`` (per product): the held-out counterfactual, every zone's regular price
    times the ratio and no promotion; otherwise the retailer's own prices and deals."""
    pp, ps = world.pair_product, world.pair_store
    region, zone = world.store_region[ps], world.store_zone[ps]
    category = world.product_category[pp]
    week = day // 7
    regular = world.regular_price[pp, zone, week]
    if price_ratio is not None:
        regular = _cents(regular * price_ratio[pp])
        promo = np.full(len(pp), -1)
    else:
        promo = world.promo_index[pp, region, week]
    on_promo = promo >= 0
    safe = np.where(on_promo, promo, 0)
    has = len(world.promo_discount) > 0
    discount = np.where(on_promo, world.promo_discount[safe] if has else 0.0, 0.0)
    feature = on_promo & (world.promo_feature[safe] if has else False)
    display = on_promo & (world.promo_display[safe] if has else False)
    price = _cents(regular * (1 - discount))
    before = world.promo_index[pp, region, week - 1] >= 0 if week > 0 else np.zeros(len(pp), bool)
    after_deal = before & ~on_promo
    form, e = world.demand_form[pp], pair_elasticity(world)
    reference = world.reference_price[pp]
    at_regular = relative_demand(form, e, regular / reference)
    deal = (relative_demand(form, e, price / reference) / at_regular) ** world.stockpile[pp]
    # The substitutes' shelf prices in the pair's store that day.
    everywhere = world.regular_price[:, :, week]
    promo_all = world.promo_index[:, :, week]
    off = np.zeros(promo_all.shape)
    if has:
        off = np.where(promo_all >= 0, world.promo_discount[np.maximum(promo_all, 0)], 0.0)
    cross = np.ones(len(pp))
    for k in range(world.substitutes.shape[1]):
        sub = np.maximum(world.substitutes[pp, k], 0)
        shelf = _cents(everywhere[sub, zone] * (1 - off[sub, region]))
        effect = (shelf / world.reference_price[sub]) ** world.cross_elasticity[pp, k]
        cross *= np.where(world.substitutes[pp, k] >= 0, effect, 1.0)
    season = 1 + world.season_amp[category] * np.sin(
        2 * math.pi * day / 364 + world.season_phase[category]
    )
    is_open = world.store_open_week[ps] <= week
    mean = (
        world.pair_base
        * is_open
        * season
        * WEEKDAY[day % 7]
        * np.exp(world.week_shock[category, week] + world.product_shift[pp, week])
        * world.pair_noise(week)
        * at_regular
        * deal
        * np.where(on_promo, world.promo_lift[pp], 1.0)
        * np.where(feature, FEATURE_LIFT, 1.0)
        * np.where(display, DISPLAY_LIFT, 1.0)
        * np.where(after_deal, 1 - world.dip[pp], 1.0)
        * cross
    )
    return {"mean": mean, "price": price, "regular": regular, "promo": promo,
            "feature": feature, "display": display}  # fmt: skip


def holdout_volume(world: World) -> np.ndarray:
    """Each pair's expected units over the held-out weeks at f = 1 (no price effect), with
    those weeks' own shocks: what a price is multiplied by to give held-out units."""
    total = np.zeros(len(world.pair_product))
    ones = np.ones(world.shape.n_products)
    first = world.training_weeks * 7
    for day in range(first, first + world.holdout_weeks * 7):
        found = daily_mean(world, day, ones)
        x = found["regular"] / world.reference_price[world.pair_product]
        total += found["mean"] / relative_demand(
            world.demand_form[world.pair_product], pair_elasticity(world), x
        )
    return total / world.holdout_weeks


def holdout_profit(
    world: World, product: int, ratios: np.ndarray, volume: np.ndarray
) -> np.ndarray:
    """Expected weekly profit of ``product`` (a position) over the held-out weeks at each of
    ``ratios`` x its regular prices (others unchanged); ``volume`` from ``holdout_volume``."""
    rows = world.pair_product == product
    zone = world.store_zone[world.pair_store[rows]]
    regular = world.regular_price[product, zone, world.training_weeks]
    e = pair_elasticity(world)[rows]
    form = np.full(len(e), world.demand_form[product])
    cost = world.unit_cost[product]
    out = []
    for r in np.atleast_1d(ratios):
        price = _cents(regular * r)
        units = volume[rows] * relative_demand(form, e, price / world.reference_price[product])
        out.append(float(((price - cost) * units).sum()))
    return np.array(out)


def true_elasticities(world: World, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per product, per pair) elasticity at the final regular price: a permanent change's
    response; the product's is the stores' weighted by their held-out units."""
    pp, ps = world.pair_product, world.pair_store
    regular = world.regular_price[pp, world.store_zone[ps], world.training_weeks]
    x = regular / world.reference_price[pp]
    form, e = world.demand_form[pp], pair_elasticity(world)
    per_pair = elasticity_at(form, e, x)
    weight = volume * relative_demand(form, e, x)
    n = world.shape.n_products
    total = np.bincount(pp, weights=weight, minlength=n)
    product = np.bincount(pp, weights=weight * per_pair, minlength=n) / np.maximum(total, 1e-12)
    return np.where(total > 0, product, world.elasticity), per_pair


def deal_response(world: World, depth: float = 0.2) -> np.ndarray:
    """The short-run response to a ``depth`` deal, as an elasticity: log(units ratio) /
    log(price ratio), at the reference price, stockpiling included (per product)."""
    form, e = world.demand_form, world.elasticity
    ratio = relative_demand(form, e, np.full(len(e), 1 - depth)) ** world.stockpile
    return np.log(ratio) / math.log(1 - depth)
