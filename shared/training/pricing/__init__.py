"""Price elasticity per product, and the regular price a category manager would sign.

Demand model, fitted per product on product x store x week cells by Poisson pseudo-maximum
likelihood (consistent for a log-linear mean; OLS on log(units) is biased where counts are
small). The default specification (``Spec``; each control can be switched off):

    E[units] = exp(e * log(price) + b_promo * promo + b_feature * feature
                   + b_display * display + seasonality (two yearly harmonics) + store effect)

Store effects mean elasticity is identified by price changes over time inside a store, not by
which stores are expensive. Standard errors are clustered by week (a week's promotions and
price steps are shared by its stores), by the delete-one-week jackknife, with critical values
of Student's t with G-1 degrees of freedom (G weeks). A product is ``weakly_identified`` (no
estimate is claimed) when its design is rank-deficient in the price, too few weeks carry price
variation, there are too few weeks, or the interval has no width.

The decision (``decide``) moves the *regular* (non-promoted) price, the base promotions are
cut from: over the prices the category's ``Rules`` allow (corridor around the regular price,
maximum change, minimum margin, never below cost, price endings) it picks the one with the
highest expected weekly profit (or revenue) change, where the expectation is over the
elasticity's sampling distribution; the move is recommended only when the 90% interval of
that change excludes zero, else the product is held with the reason.

Modules: ``config`` (specification, rules, results), ``panel``, ``estimate``, ``decide``,
``fit``.
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
)
from shared.training.pricing.decide import _candidates, _draws, _mean_gain, decide, joint_t_draws
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
    "baseline",
    "decide",
    "estimate",
    "fit_product",
    "fit_products",
    "jackknife_cov",
    "joint_t_draws",
    "regular_price",
    "resolve_cost",
    "weekly_cells",
    "with_regular_and_after_deal",
    "with_zero_weeks",
]
