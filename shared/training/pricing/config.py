"""Configuration and results of the pricing model: the specification, the category rules, a
product's decision and result."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Control = Literal[
    "deal", "curvature", "promo", "feature", "display", "post_deal", "week", "seasonality",
    "store",
]  # fmt: skip
CONTROLS: tuple[Control, ...] = (
    "deal", "curvature", "promo", "feature", "display", "post_deal", "week", "seasonality",
    "store",
)  # fmt: skip
RECENT_WEEKS = 8  # the window the regular price and the baseline volume are read from
# Where an estimated cross-price elasticity is believable: beyond it, flagged, not acted upon.
CROSS_RANGE = (-0.5, 1.0)


class Rules(BaseModel):
    """A category manager's rules for one category (fractions of the regular price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: Literal["profit", "revenue"] = "profit"
    corridor: float = Field(default=0.10, gt=0, le=0.5)  # +- around the regular price
    max_change: float = Field(default=0.10, gt=0, le=0.5)  # per pricing period
    min_margin: float = Field(default=0.20, ge=0, lt=1)  # (price - cost) / price
    # Allowed endings of a price's cents (e.g. 0.99, 0.49); empty: any cent.
    endings: tuple[float, ...] = (0.29, 0.49, 0.79, 0.99)
    confidence: float = Field(default=0.90, gt=0.5, lt=1)  # of the gain's interval
    # Demand estimated inelastic (e > -1): under a constant elasticity, profit rises with the
    # price without limit, so the "best" price is the top of the rules by construction.
    # hold (default): say so and hold; edge: recommend the top anyway.
    inelastic: Literal["hold", "edge"] = "hold"

    def bounds(self, regular: float, cost: float | None) -> tuple[str, float, str, float]:
        """(rule, lowest allowed price, rule, highest allowed price) around ``regular``: the
        corridor, the maximum change and, with a ``cost``, the minimum margin."""
        found = {
            "corridor": (regular * (1 - self.corridor), regular * (1 + self.corridor)),
            "max_change": (regular * (1 - self.max_change), regular * (1 + self.max_change)),
        }
        if cost:
            found["min_margin"] = (cost / (1 - self.min_margin), math.inf)
        low_rule, low = max(((k, b[0]) for k, b in found.items()), key=lambda kv: kv[1])
        high_rule, high = min(((k, b[1]) for k, b in found.items()), key=lambda kv: kv[1])
        return low_rule, low, high_rule, high


class Spec(BaseModel):
    """The demand specification: which controls sit beside the price.

    ``deal``: the regular (shelf) price and the deal depth log(paid / regular) enter
    separately, so the long-run elasticity a permanent change meets is learned from regular
    prices and not from temporary deals (a short-run response swollen by stockpiling);
    without it one log(price) coefficient learns from both. ``post_deal``: the week after a
    deal in the same store (pantry loading). ``week``: a fixed effect per week (time effects:
    the week's demand, whatever it is, and deals or price moves scheduled into it).
    ``seasonality``: two yearly harmonics instead (what the week effects already hold).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    controls: tuple[Control, ...] = ("deal", "promo", "feature", "display", "post_deal",
                                     "week", "store")  # fmt: skip
    # model: every cell; regular: only cells at the regular price (deals and the week after
    # them left out), the alternative the decision is checked against.
    cells: Literal["all", "regular"] = "all"
    # Local likelihood around today's regular price (a log-price bandwidth); none: every cell
    # counts alike.
    bandwidth: float | None = Field(default=None, gt=0)
    min_weeks: int = Field(default=8, ge=3)  # weeks (clusters) with sales
    min_varying_weeks: int = Field(default=4, ge=2)  # weeks with a price off the store's usual
    # Store-weeks without a sale enter with 0 units at the chain's price (``with_zero_weeks``).
    # Off by default: where most store-weeks are empty (a household panel) the imputed price
    # dominates the fit (the benchmark shows both on the real panel).
    zero_weeks: bool = False

    @property
    def name(self) -> str:
        name = "+".join(self.controls) if self.controls else "plain log-log"
        return name + (", regular-price weeks only" if self.cells == "regular" else "")

    @property
    def method(self) -> str:
        """What the estimator is, in the words a report gives it."""
        if "week" not in self.controls:
            return (
                "Poisson PML, one log-price coefficient, no time effects: prices are assumed "
                "not to react to demand"
            )
        return (
            "Poisson PML with store and week fixed effects (two-way fixed effects: the price "
            "response is identified by stores at different regular prices in the same week, "
            "zone roll-outs and regional deals; Hitsch, Hortacsu & Lin 2021), the regular "
            "price and the deal depth separately, the week after a deal controlled for; "
            "standard errors by the delete-one-week jackknife (MacKinnon, Nielsen & Webb 2023)"
        )


class StoreRules(BaseModel):
    """The chain's rules for store prices, over each category's ``Rules`` (which every store's
    price obeys around its own regular price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # Price zones per product: stores grouped so that each zone has one price.
    max_zones: int = Field(default=3, ge=1, le=20)
    # The largest difference between two prices store-level pricing sets for a product, as a
    # fraction of the lower one.
    max_spread: float = Field(default=0.25, ge=0, le=1)
    # A store with fewer weeks of its own sales of the product, or whose own regular price
    # never moved, keeps the chain price.
    min_weeks: int = Field(default=13, ge=1)
    # Columns of the stores table that may explain why stores differ (numbers, or categories
    # of a few values); those missing are left out.
    covariates: tuple[str, ...] = ("income_index", "size_index", "format")


DEFAULT_SPEC = Spec()
PLAIN = Spec(controls=())
# The estimator as it was: one price coefficient, seasonality for time (the benchmark prints it
# beside the default).
NAIVE = Spec(controls=("promo", "feature", "display", "seasonality", "store"))
# The alternative every move is checked against: regular-price weeks only (deals and the
# weeks after them left out).
ALTERNATIVE = Spec(controls=("deal", "post_deal", "week", "store"), cells="regular")
DEFAULT_RULES = Rules()


def rules_for(rules: Mapping[str, Rules], category: str | None) -> Rules:
    """The rules of ``category`` in ``rules`` (``PricingConfig.rules_by_category``): its own,
    else the ``"*"`` rules, else the defaults."""
    return rules.get(category or "*") or rules.get("*") or DEFAULT_RULES


@dataclass(frozen=True)
class Decision:
    """The price to sign for one product and why."""

    decision: str  # move | hold
    reason: str
    # move | regular_is_best | no_other_price | gain_uncertain | inelastic | inelastic_possible |
    # no_feasible_price | no_cost
    code: str
    recommended_price: float
    candidate_price: float  # the best price inside the rules (= recommended when moving)
    expected_gain: float  # per week, in currency, at the candidate price
    gain_low: float
    gain_high: float
    base_value: float  # expected weekly profit (or revenue) at the regular price
    binding_rule: str | None  # the rule whose edge the candidate sits on, if any


class PricingConfig(BaseModel):
    """The pricing job's configuration (``RETAIL_PRICING_CONFIG``, a JSON or YAML file or
    ``gs://`` object; every field has a default)::

        rules: {"*": {objective: profit, corridor: 0.10, max_change: 0.05, min_margin: 0.20,
                      endings: [0.29, 0.49, 0.79, 0.99]},
                dairy: {max_change: 0.03}}        # per category, over the "*" rules
        spec: {controls: [promo, feature, display, seasonality, store]}
        products_table: project.dataset.products  # unit_cost, category; default: the
                                                  # fetched table's dataset's ``products``
        cost_ratio: 0.7   # an *assumed* unit cost (x regular price) where none is known
        cost_uncertainty: 0.1  # its relative standard deviation, carried into the gains
        prior: [-2.5, 1.0]  # mean and sd every elasticity is pulled toward (null: none)
        substitutes: 3    # top products per category priced jointly (0: off)
        stores: {max_zones: 3, max_spread: 0.25, min_weeks: 13}  # store prices (StoreRules)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    spec: Spec = DEFAULT_SPEC
    products_table: str | None = None
    stores_table: str | None = None  # store covariates; default: beside the products table
    cost_ratio: float | None = Field(default=None, gt=0, lt=1)
    cost_uncertainty: float = Field(default=0.10, ge=0, lt=1)
    # (mean, sd) of own-price elasticities before the data: Bijmolt, van Heerde & Pieters
    # (2005), a meta-analysis of 1,851 price elasticities, put their mean at -2.62; the sd of 1
    # lets a well-measured product (standard error 0.2) keep 96% of its own estimate.
    prior: tuple[float, float] | None = (-2.5, 1.0)

    def prior_variance(self) -> tuple[float, float] | None:
        """(mean, variance) of the prior, as ``fit_products`` takes it."""
        return (self.prior[0], self.prior[1] ** 2) if self.prior else None

    # Cross-price elasticities among each category's top products by revenue, and their
    # prices set jointly for the category's profit (0: off).
    substitutes: int = Field(default=3, ge=0, le=8)
    stores: StoreRules = StoreRules()

    def rules_by_category(self) -> dict[str, Rules]:
        """Each category's rules: its own fields over the ``"*"`` rules over the defaults."""
        default = Rules(**self.rules.get("*", {}))
        merged = {"*": default}
        for name, fields in self.rules.items():
            if name != "*":
                merged[name] = Rules(**{**default.model_dump(), **fields})
        return merged


@dataclass(frozen=True)
class PriceResult:
    product_id: int
    # ok | weakly_identified | insufficient_price_variation | too_few_observations | no_sales
    status: str
    n_cells: int
    elasticity: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    std_error: float | None = None
    r2: float | None = None
    price_variation: float | None = None
    weeks: int | None = None
    varying_weeks: int | None = None
    identification: str | None = None  # why weakly identified
    elasticity_plain: float | None = None  # the plain log-log fit, beside the default
    elasticity_unpooled: float | None = None  # before the empirical-Bayes pull
    deal_elasticity: float | None = None  # the short-run response to a temporary deal
    post_deal: float | None = None  # log change of demand the week after a deal
    method: str | None = None  # the specification's name
    alternative: str | None = None  # the alternative specification's decision
    regular_price: float | None = None
    unit_cost: float | None = None
    cost_source: str | None = None  # table | assumed (cost_ratio x regular price)
    weekly_units: float | None = None
    objective: str | None = None
    decision: str | None = None  # move | hold
    reason: str | None = None
    # move | regular_is_best | no_other_price | gain_uncertain | inelastic | inelastic_possible |
    # no_feasible_price | no_cost | specification_sensitive | not_estimated (see status)
    reason_code: str | None = None
    recommended_price: float | None = None
    candidate_price: float | None = None
    expected_gain: float | None = None  # per week, currency
    gain_low: float | None = None  # 90% interval of the gain
    gain_high: float | None = None
    expected_change: float | None = None  # gain / the objective's value at the regular price
    binding_rule: str | None = None
    category: str | None = None
    returns_rows: int = 0

    def row(self) -> dict:
        return asdict(self)
