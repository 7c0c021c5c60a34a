"""What the API takes and gives, as pydantic models: they validate every request and the OpenAPI
document (``shared/api/openapi.py``) is generated from them, so the two cannot disagree."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shared.training.promotions import MECHANIC_CODES, PlannedPromotion

MAX_PAGE = 500
MAX_OFFSET = 10**9
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20
MAX_ID = 2**53  # ids travel as JSON numbers: exact up to 2**53
MAX_STORES = 100_000
MAX_JSON_DEPTH = 8  # the deepest valid body is {"promotions": [{...}]}
MAX_DURATION_DAYS = 91
Mechanic = Literal["tpr", "multibuy", "bogo"]
MECHANICS: tuple[str, ...] = tuple(MECHANIC_CODES)
if set(MECHANICS) != {"tpr", "multibuy", "bogo"}:
    raise RuntimeError("the promotion model's mechanics changed: update schemas.Mechanic")


def _whole(value: object) -> object:
    """JSON has one number type: 7.0 is an integer to JSON Schema, so it is one here too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD`` (a date parser also takes ``20250101`` and timestamps)."""
    if isinstance(value, str) and len(value) != 10:
        raise ValueError("must be a date (YYYY-MM-DD)")
    return value


WholeInt = Annotated[int, BeforeValidator(_whole)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Text = Annotated[str, Field(min_length=1, max_length=64)]


# ----------------------------------------------------------------------------- requests


class PromotionIn(BaseModel):
    """A planned promotion, as the request states it (strict JSON types, no unknown fields)."""

    model_config = ConfigDict(strict=True, extra="forbid", title="PlannedPromotion")
    product_id: WholeInt = Field(ge=1, le=MAX_ID)
    mechanic: Mechanic
    discount: float = Field(gt=0, lt=1)
    start_date: dt.date
    duration_days: WholeInt = Field(ge=1, le=MAX_DURATION_DAYS)
    feature: bool = False
    display: bool = False
    # Bounded to what a retailer has: the model multiplies by it, and an unbounded integer
    # (10**308) would make the answer infinite, which JSON cannot carry.
    # The bounds before the validator: pydantic drops them from a union's schema otherwise.
    stores: Annotated[int, Field(ge=1, le=MAX_STORES), BeforeValidator(_whole)] | None = None

    def planned(self) -> PlannedPromotion:
        """The promotion as the model takes it."""
        return PlannedPromotion(
            product_id=self.product_id,
            mechanic=self.mechanic,
            discount=self.discount,
            start=self.start_date,
            duration_days=self.duration_days,
            feature=self.feature,
            display=self.display,
            stores=self.stores,
        )


class BatchIn(BaseModel):
    """Up to ``MAX_BATCH`` planned promotions in one request."""

    model_config = ConfigDict(strict=True, extra="forbid", title="PlannedPromotionBatch")
    promotions: list[PromotionIn] = Field(min_length=1, max_length=MAX_BATCH)


class ProductPath(BaseModel):
    product_id: int = Field(ge=1, le=MAX_ID)


class Page(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class PricesQuery(Page):
    decision: Literal["move", "hold"] | None = None
    # rank: the moves by expected gain, largest first.
    order: Literal["product_id", "rank"] | None = None
    # A store's price list (its prices, not the chain's); zone: only that zone's prices (0:
    # the stores that keep the chain price), with or without a store.
    store: int | None = Field(default=None, ge=1, le=MAX_ID)
    zone: int | None = Field(default=None, ge=0, le=100)


class AnalyticsQuery(Page):
    product_id: int | None = Field(default=None, ge=1, le=MAX_OFFSET)
    category: Text | None = None
    store_id: int | None = Field(default=None, ge=1, le=MAX_OFFSET)
    mechanic: Mechanic | None = None
    start: IsoDate | None = None  # promotions running on or after this day
    end: IsoDate | None = None  # ... and on or before this one


# ----------------------------------------------------------------------------- responses


class ErrorDetail(BaseModel):
    status: int
    reason: str
    field: str | None


class Error(BaseModel):
    """Every error: ``field`` names the offending input (``promotions[3].discount``)."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    pricing_run_id: str | None
    promotions_run_id: str | None


class Price(BaseModel):
    """What an analyst signs off: the decision and its reason, the price, the expected weekly
    gain with its 90% interval, the elasticity with its 95% interval (and the plain one)."""

    product_id: int
    status: str
    rank: int | None = None
    decision: str | None = None
    reason: str | None = None
    reason_code: str | None = None
    objective: str | None = None
    binding_rule: str | None = None
    cost_source: str | None = None
    identification: str | None = None
    elasticity: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    elasticity_plain: float | None = None
    regular_price: float | None = None
    unit_cost: float | None = None
    recommended_price: float | None = None
    candidate_price: float | None = None
    expected_gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None
    expected_change: float | None = None
    # A store's price (``?store=``): the store, its zone for the product (0: it keeps the
    # chain price), its price today, whether its own data entered its elasticity (own) or only
    # its store effect (pooled), and the day the price applies from.
    store_id: int | None = None
    zone: int | None = None
    current_price: float | None = None
    evidence: str | None = None
    valid_from: dt.date | None = None
    category: str | None = None
    model_run_id: str


# The fields of a price as the model's rows hold them (everything but the run it came from).
PRICE_FIELDS: tuple[str, ...] = tuple(f for f in Price.model_fields if f != "model_run_id")


class PriceList(BaseModel):
    items: list[Price]
    total: int
    model_run_id: str


class Zone(BaseModel):
    """Stores of one product that share a price (zones are numbered by price, 1 the lowest)."""

    zone: int
    price: float
    stores: list[int]
    expected_gain: float  # weekly, over the stores' prices today


class ZoneList(BaseModel):
    """A product's zones; stores in none keep the chain price (``chain_stores``)."""

    product_id: int
    zones: list[Zone]
    chain_stores: list[int]
    chain_price: float | None
    model_run_id: str


class Prediction(BaseModel):
    product_id: int
    predicted_revenue: float
    baseline_revenue: float
    uplift: float
    model_run_id: str


class PredictionBatch(BaseModel):
    predictions: list[Prediction]
    model_run_id: str


class PromotionPerformance(BaseModel):
    promo_id: int
    product_id: int
    category: str | None = None
    region: str | None = None
    mechanic: str | None = None
    discount: float | None = None
    start_date: dt.date
    end_date: dt.date
    stores: int | None = None
    feature: bool | None = None
    display: bool | None = None
    revenue: float
    baseline_revenue: float | None = None
    uplift: float | None = None
    # The revenue predicted by a model trained only on the promotions before this one; null
    # for the earliest, which had too little history before them.
    predicted_revenue: float | None = None


class AnalyticsPage(BaseModel):
    """A page of past promotions, newest first; ``next_offset`` is null on the last page."""

    items: list[PromotionPerformance]
    next_offset: int | None
