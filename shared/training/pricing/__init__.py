"""Price elasticity per product, and the regular price a category manager would sign.

Demand model, fitted per product on product x store x week cells by Poisson pseudo-maximum
likelihood (consistent for a log-linear mean; OLS on log(units) is biased where counts are
small). The default specification (``Spec``; each control can be switched off):

    E[units] = exp(e * log(regular) [regular cells] + d * log(paid / regular)
                   + r * log(regular) [deal cells] + b_promo * promo + b_feature * feature
                   + b_display * display + b_post * (week after a deal)
                   + store effect + week effect)

``e`` is the long-run elasticity a permanent change of the regular price meets, learned where
shoppers pay the regular price; ``d`` the short-run response to a temporary deal (stockpiling
included), which must not teach the regular price. Week effects absorb the week's demand,
whatever it is, and any deal or price move the retailer scheduled into it: the price response
is identified by stores at different regular prices in the same week (zones, roll-outs,
regional deals; two-way fixed effects, as in Hitsch, Hortacsu & Lin 2021). A chain that
moves every store at once cannot be told from its weeks' demand: the identification checks
say so (``weakly_identified``), as they do for too few weeks or weeks with price variation
across stores, or an interval without width. Standard errors are clustered by week by the
delete-one-week jackknife, with Student's t with G-1 degrees of freedom (G weeks).

Each product's elasticity is pulled toward a prior (``PricingConfig.prior``, N(-2.5, 1) from a
meta-analysis of published elasticities) by its own noise, before any price is chosen: the
products whose noise made them look inelastic would otherwise be the ones moved up.

The decision (``decide``) moves the *regular* price: over the prices the category's ``Rules``
allow (corridor, maximum change, minimum margin, never below cost, endings) it picks the one
with the highest expected weekly profit (or revenue) change, the expectation over joint draws
of the elasticity and the volume at the regular price (the fitted model's counterfactual
without deals, not the deal weeks' units) and, when the cost is assumed, the cost; the price is
chosen on half the draws and scored on the other half. It is recommended only when the 90%
interval of that change excludes zero and the alternative specification (regular-price weeks
only) points the same way; else the product is held with the reason (``Decision.code``).

Store prices: each store's own slope given the chain fit (``stores.store_slopes``, in the
tasks), pooled across stores and products (``stores.pool``: a two-level Fay-Herriot empirical
Bayes model with store covariates), and each product's stores grouped into price zones under
the chain's rules (``zones``), in the merge (``store_prices``).

Modules: ``config`` (specifications, rules, results), ``panel``, ``estimate``, ``decide``,
``fit``, ``stores``, ``zones``, ``store_prices``.
"""

from shared.training.pricing.config import (
    ALTERNATIVE,
    CONTROLS,
    CROSS_RANGE,
    DEFAULT_RULES,
    DEFAULT_SPEC,
    NAIVE,
    PLAIN,
    RECENT_WEEKS,
    Control,
    Decision,
    PriceResult,
    PricingConfig,
    Rules,
    Spec,
    StoreRules,
    rules_for,
)
from shared.training.pricing.decide import (
    _candidates,
    _draws,
    _mean_gain,
    allowed_prices,
    decide,
    joint_t_draws,
)
from shared.training.pricing.estimate import (
    _design,
    _full_rank,
    _poisson_fit,
    _week_jackknife_se,
    _week_jackknife_ses,
    _week_jackknife_shifts,
    _within,
    estimate,
    jackknife_cov,
)
from shared.training.pricing.fit import Catalog, fit_product, fit_products
from shared.training.pricing.panel import (
    baseline,
    regular_price,
    resolve_cost,
    weekly_cells,
    with_regular_and_after_deal,
    with_zero_weeks,
)

__all__ = [
    "ALTERNATIVE",
    "CONTROLS",
    "CROSS_RANGE",
    "DEFAULT_RULES",
    "DEFAULT_SPEC",
    "NAIVE",
    "PLAIN",
    "RECENT_WEEKS",
    "Catalog",
    "Control",
    "Decision",
    "PriceResult",
    "PricingConfig",
    "Rules",
    "Spec",
    "StoreRules",
    "_candidates",
    "_design",
    "_draws",
    "_full_rank",
    "_mean_gain",
    "_poisson_fit",
    "_week_jackknife_se",
    "_week_jackknife_ses",
    "_week_jackknife_shifts",
    "_within",
    "allowed_prices",
    "baseline",
    "decide",
    "estimate",
    "fit_product",
    "fit_products",
    "jackknife_cov",
    "joint_t_draws",
    "regular_price",
    "resolve_cost",
    "rules_for",
    "weekly_cells",
    "with_regular_and_after_deal",
    "with_zero_weeks",
]
