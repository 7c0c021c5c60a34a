"""Generate a retailer's history from a demand model whose parameters are known.

Units sold of product p in store s on day d are Poisson with mean::

    base[s, p] * season[category(p), d] * weekday[d]
      * (price / reference_price[p]) ** elasticity[p]
      * promo_lift[p] ** on_promo * feature_lift ** feature * display_lift ** display
      * product over p's substitutes q of (price[q] / reference_price[q]) ** cross[p, q]

(substitutes: the three most popular products of each category, each one's demand rising
with the others' prices, cross-price elasticities in [0.2, 0.6]; ``World.cross_truth``)
so later models can be checked against ``elasticity`` and ``promo_lift`` (the ``product_truth``
table). Shapes follow grocery panel data: elasticities mostly in [-4, -1], promotions on a fifth
to half of product-weeks at ~20-25% off lifting sales 2-5x, and skewed store and product sizes.
Everything is a pure function of (shape, seed); transactions come out in day blocks, so memory
is bounded by one block whatever the size.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

REGIONS = ("north", "south", "east", "west", "central")
FORMATS = ("hyper", "super", "express")
CATEGORIES = (
    "dairy", "bakery", "produce", "meat", "frozen",
    "beverages", "snacks", "household", "personal_care", "pantry",
)  # fmt: skip
MECHANICS = ("tpr", "multibuy", "bogo")
FEATURE_LIFT = 1.35
DISPLAY_LIFT = 1.25
WEEKDAY = np.array([0.85, 0.85, 0.9, 0.95, 1.15, 1.35, 0.95])  # Monday .. Sunday
START = dt.date(2024, 1, 1)  # a Monday
# Share of (store, product) cells with a row: assortment x days with at least one unit sold.
_ROW_DENSITY = 0.55
GROUP = 3  # substitutes: the top products of a category
SUBSTITUTES = GROUP - 1


@dataclass(frozen=True)
class Shape:
    """How big the retailer is."""

    n_stores: int
    n_products: int
    n_days: int

    @classmethod
    def for_rows(cls, rows: int) -> Shape:
        """A shape whose transactions table has roughly ``rows`` rows."""
        if rows < 1_000:
            raise ValueError("rows must be at least 1000")
        n_days = 364 if rows >= 200_000 else 182 if rows >= 20_000 else 91
        cells = rows / _ROW_DENSITY / n_days
        n_stores = max(3, round(math.sqrt(cells / 8)))
        n_products = max(5, round(cells / n_stores))
        return cls(n_stores, n_products, n_days)


TRANSACTIONS_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("store_id", pa.int64(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("units", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("regular_price", pa.float64(), nullable=False),
        pa.field("revenue", pa.float64(), nullable=False),
        pa.field("promo_id", pa.int64()),
        pa.field("feature", pa.bool_(), nullable=False),
        pa.field("display", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class World:
    """The retailer's fixed parameters; dimension tables and the demand model's inputs."""

    shape: Shape
    seed: int
    stores: pa.Table
    products: pa.Table
    truth: pa.Table
    promotions: pa.Table
    # Model internals, indexed by position: pairs carried, weekly prices and promotions.
    pair_store: np.ndarray  # (pairs,) store index
    pair_product: np.ndarray  # (pairs,) product index
    pair_base: np.ndarray  # (pairs,) mean daily units at reference price
    store_region: np.ndarray  # (stores,)
    product_category: np.ndarray  # (products,)
    reference_price: np.ndarray  # (products,)
    elasticity: np.ndarray  # (products,)
    promo_lift: np.ndarray  # (products,)
    season_amp: np.ndarray  # (categories,)
    season_phase: np.ndarray  # (categories,)
    regular_price: np.ndarray  # (products, regions, weeks)
    promo_index: np.ndarray  # (products, regions, weeks), -1 when none
    promo_discount: np.ndarray  # (promotions,)
    promo_feature: np.ndarray  # (promotions,) bool
    promo_display: np.ndarray  # (promotions,) bool
    substitutes: np.ndarray  # (products, SUBSTITUTES) product index, -1 when none
    cross_elasticity: np.ndarray  # (products, SUBSTITUTES)

    @property
    def expected_rows(self) -> int:
        """Rows the transactions table will have, within a few percent (zero-sale days drop)."""
        return round(float(np.sum(1 - np.exp(-self.pair_base))) * self.shape.n_days)


def _cents(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def build_world(shape: Shape, seed: int = 7) -> World:
    """Draw every fixed parameter of the retailer from ``seed``."""
    rng = np.random.default_rng(seed)
    n_s, n_p, n_w = shape.n_stores, shape.n_products, math.ceil(shape.n_days / 7)
    n_r = len(REGIONS)

    # Stores: a few big hypermarkets, many small ones (log-normal sizes).
    store_size = rng.lognormal(0.0, 0.8, n_s)
    store_region = rng.integers(0, n_r, n_s)
    size_rank = np.argsort(np.argsort(-store_size)) / max(n_s - 1, 1)
    store_format = np.where(size_rank < 0.2, 0, np.where(size_rank < 0.7, 1, 2))
    stores = pa.table(
        {
            "store_id": pa.array(np.arange(1, n_s + 1), pa.int64()),
            "region": pa.array([REGIONS[i] for i in store_region]),
            "format": pa.array([FORMATS[i] for i in store_format]),
            "size_index": pa.array(np.round(store_size, 3)),
            "opened": pa.array(
                [START - dt.timedelta(days=int(d)) for d in rng.integers(400, 9000, n_s)]
            ),
        }
    )

    # Products: popularity is heavy-tailed; prices log-normal around a few euros.
    category = rng.integers(0, len(CATEGORIES), n_p)
    popularity = rng.lognormal(0.0, 0.9, n_p)
    reference_price = _cents(rng.lognormal(math.log(3.0), 0.6, n_p) + 0.5)
    unit_cost = _cents(reference_price * rng.uniform(0.45, 0.75, n_p))
    elasticity = np.clip(rng.normal(-2.3, 0.7, n_p), -4.5, -0.6)
    promo_lift = np.clip(rng.lognormal(math.log(1.5), 0.2, n_p), 1.05, 3.0)
    products = pa.table(
        {
            "product_id": pa.array(np.arange(1, n_p + 1), pa.int64()),
            "category": pa.array([CATEGORIES[i] for i in category]),
            "brand": pa.array([f"brand_{i:03d}" for i in rng.integers(0, max(3, n_p // 6), n_p)]),
            "reference_price": pa.array(reference_price),
            "unit_cost": pa.array(unit_cost),
        }
    )
    truth = pa.table(
        {
            "product_id": products["product_id"],
            "true_elasticity": pa.array(np.round(elasticity, 4)),
            "true_promo_lift": pa.array(np.round(promo_lift, 4)),
            "true_feature_lift": pa.array(np.full(n_p, FEATURE_LIFT)),
            "true_display_lift": pa.array(np.full(n_p, DISPLAY_LIFT)),
        }
    )

    # Assortment: big stores carry more, popular products are carried more widely.
    carry_logit = 0.8 + 1.2 * (np.log(store_size)[:, None]) + 0.8 * (np.log(popularity)[None, :])
    carried = rng.random((n_s, n_p)) < 1 / (1 + np.exp(-carry_logit))
    pair_store, pair_product = np.nonzero(carried)
    pair_base = 3.0 * store_size[pair_store] * popularity[pair_product]
    pair_base *= rng.lognormal(0.0, 0.3, len(pair_store))

    # Regular prices: chain-wide steps every few weeks (what identifies elasticity), mean
    # reverting around the reference, with a small regional offset.
    steps = np.where(rng.random((n_p, n_w)) < 1 / 10, rng.uniform(-0.12, 0.12, (n_p, n_w)), 0.0)
    log_level = np.zeros((n_p, n_w))
    for w in range(1, n_w):
        log_level[:, w] = 0.85 * log_level[:, w - 1] + steps[:, w]
    region_offset = rng.uniform(-0.03, 0.03, (n_p, n_r))
    regular_price = _cents(
        reference_price[:, None, None] * np.exp(log_level[:, None, :] + region_offset[:, :, None])
    )

    # Promotions: each product runs events of 1-2 weeks in all stores or in one region.
    promo_rate = rng.uniform(0.2, 0.5, n_p)  # event starts per product-week
    promo_index = np.full((n_p, n_r, n_w), -1, dtype=np.int64)
    rows: dict[str, list] = {
        k: []
        for k in ("promo_id", "product_id", "region", "mechanic", "discount", "start_date",
                  "end_date", "feature", "display")
    }  # fmt: skip
    for p in range(n_p):
        w = int(rng.integers(0, 4))
        while w < n_w:
            if rng.random() < promo_rate[p]:
                duration = 1 if rng.random() < 0.6 else 2
                mechanic = int(rng.choice(3, p=[0.6, 0.25, 0.15]))
                discount = (
                    float(np.clip(rng.normal(0.22, 0.06), 0.1, 0.4))
                    if mechanic == 0
                    else 0.25
                    if mechanic == 1
                    else 0.5
                )
                regions = range(n_r) if rng.random() < 0.5 else [int(rng.integers(0, n_r))]
                pid = len(rows["promo_id"])
                end = min(w + duration, n_w)
                for r in regions:
                    promo_index[p, r, w:end] = pid
                rows["promo_id"].append(pid + 1)
                rows["product_id"].append(p + 1)
                rows["region"].append("all" if len(regions) == n_r else REGIONS[regions[0]])
                rows["mechanic"].append(MECHANICS[mechanic])
                rows["discount"].append(round(discount, 3))
                rows["start_date"].append(START + dt.timedelta(weeks=w))
                rows["end_date"].append(START + dt.timedelta(weeks=end, days=-1))
                rows["feature"].append(bool(rng.random() < 0.3))
                rows["display"].append(bool(rng.random() < 0.3))
                w = end + 1  # at least one regular week between events
            else:
                w += 1
    promotions = pa.table(
        {
            "promo_id": pa.array(rows["promo_id"], pa.int64()),
            "product_id": pa.array(rows["product_id"], pa.int64()),
            "region": pa.array(rows["region"], pa.string()),
            "mechanic": pa.array(rows["mechanic"], pa.string()),
            "discount": pa.array(rows["discount"], pa.float64()),
            "start_date": pa.array(rows["start_date"], pa.date32()),
            "end_date": pa.array(rows["end_date"], pa.date32()),
            "feature": pa.array(rows["feature"], pa.bool_()),
            "display": pa.array(rows["display"], pa.bool_()),
        }
    )
    # Substitutes, drawn last so every earlier parameter stays what it was for a seed.
    substitutes = np.full((n_p, SUBSTITUTES), -1, dtype=np.int64)
    cross = np.zeros((n_p, SUBSTITUTES))
    for c in range(len(CATEGORIES)):
        members = np.flatnonzero(category == c)
        group = members[np.argsort(-popularity[members], kind="stable")][:GROUP]
        if len(group) < 2:
            continue
        for p in group:
            others = [q for q in group if q != p]
            substitutes[p, : len(others)] = others
            cross[p, : len(others)] = np.round(rng.uniform(0.2, 0.6, len(others)), 3)
    return World(
        shape=shape,
        seed=seed,
        stores=stores,
        products=products,
        truth=truth,
        promotions=promotions,
        pair_store=pair_store,
        pair_product=pair_product,
        pair_base=pair_base,
        store_region=store_region,
        product_category=category,
        reference_price=reference_price,
        elasticity=elasticity,
        promo_lift=promo_lift,
        season_amp=rng.uniform(0.05, 0.3, len(CATEGORIES)),
        season_phase=rng.uniform(0, 2 * math.pi, len(CATEGORIES)),
        regular_price=regular_price,
        promo_index=promo_index,
        promo_discount=np.asarray(rows["discount"], dtype=np.float64),
        promo_feature=np.asarray(rows["feature"], dtype=bool),
        promo_display=np.asarray(rows["display"], dtype=bool),
        substitutes=substitutes,
        cross_elasticity=cross,
    )


def cross_truth(world: World) -> list[tuple[int, int, float]]:
    """(product_id, substitute_id, true cross-price elasticity of the product's demand with
    respect to the substitute's price)."""
    return [
        (int(p) + 1, int(q) + 1, float(world.cross_elasticity[p, k]))
        for p, k in zip(*np.nonzero(world.substitutes >= 0), strict=True)
        for q in [world.substitutes[p, k]]
    ]


def transactions(world: World, days_per_batch: int = 7) -> Iterator[pa.RecordBatch]:
    """Daily sales rows (days with at least one unit), one record batch per block of days."""
    ps, pp = world.pair_store, world.pair_product
    region = world.store_region[ps]
    category = world.product_category[pp]
    store_ids, product_ids = ps + 1, pp + 1
    for first in range(0, world.shape.n_days, days_per_batch):
        # Each block draws from its own stream, so any block is reproducible on its own.
        rng = np.random.default_rng([world.seed, first])
        columns: dict[str, list[np.ndarray]] = {name: [] for name in TRANSACTIONS_SCHEMA.names}
        for day in range(first, min(first + days_per_batch, world.shape.n_days)):
            week = day // 7
            regular = world.regular_price[pp, region, week]
            promo = world.promo_index[pp, region, week]
            on_promo = promo >= 0
            safe = np.where(on_promo, promo, 0)
            discount = np.where(
                on_promo, world.promo_discount[safe] if len(world.promo_discount) else 0, 0.0
            )
            feature = (
                on_promo & world.promo_feature[safe]
                if len(world.promo_feature)
                else on_promo & False
            )
            display = (
                on_promo & world.promo_display[safe]
                if len(world.promo_display)
                else on_promo & False
            )
            price = _cents(regular * (1 - discount))
            # Every product's price in every region today, for the substitutes' effect.
            everywhere = world.regular_price[:, :, week]
            promo_all = world.promo_index[:, :, week]
            off = (
                np.where(promo_all >= 0, world.promo_discount[np.maximum(promo_all, 0)], 0.0)
                if len(world.promo_discount)
                else 0.0
            )
            shelf = _cents(everywhere * (1 - off)) / world.reference_price[:, None]
            cross_effect = np.ones(len(pp))
            for k in range(world.substitutes.shape[1]):
                sub = world.substitutes[pp, k]
                has = sub >= 0
                ratio = shelf[np.maximum(sub, 0), region]
                cross_effect *= np.where(has, ratio ** world.cross_elasticity[pp, k], 1.0)
            season = 1 + world.season_amp[category] * np.sin(
                2 * math.pi * day / 364 + world.season_phase[category]
            )
            mean = (
                world.pair_base
                * season
                * WEEKDAY[day % 7]
                * (price / world.reference_price[pp]) ** world.elasticity[pp]
                * np.where(on_promo, world.promo_lift[pp], 1.0)
                * np.where(feature, FEATURE_LIFT, 1.0)
                * np.where(display, DISPLAY_LIFT, 1.0)
                * cross_effect
            )
            units = rng.poisson(mean)
            sold = units > 0
            n = int(sold.sum())
            columns["date"].append(np.full(n, day, dtype=np.int32))
            columns["store_id"].append(store_ids[sold])
            columns["product_id"].append(product_ids[sold])
            columns["units"].append(units[sold])
            columns["price"].append(price[sold])
            columns["regular_price"].append(regular[sold])
            columns["revenue"].append(_cents(units[sold] * price[sold]))
            columns["promo_id"].append(np.where(on_promo, promo + 1, -1)[sold])
            columns["feature"].append(feature[sold])
            columns["display"].append(display[sold])
        data = {k: np.concatenate(v) for k, v in columns.items()}
        start_days = (START - dt.date(1970, 1, 1)).days
        promo_ids = data["promo_id"]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(data["date"] + start_days, pa.int32()).cast(pa.date32()),
                pa.array(data["store_id"], pa.int64()),
                pa.array(data["product_id"], pa.int64()),
                pa.array(data["units"], pa.int64()),
                pa.array(data["price"], pa.float64()),
                pa.array(data["regular_price"], pa.float64()),
                pa.array(data["revenue"], pa.float64()),
                pa.array(promo_ids, pa.int64(), mask=promo_ids < 0),
                pa.array(data["feature"], pa.bool_()),
                pa.array(data["display"], pa.bool_()),
            ],
            schema=TRANSACTIONS_SCHEMA,
        )
