"""Generate a retailer's history from a demand model whose parameters are known.

Two worlds from the same code (``build_world(shape, seed, hard=...)``); the demand itself is
``shared.synthetic.demand``. The *easy* world obeys the pricing model's assumptions: Poisson
demand with constant elasticity, prices set without looking at demand. The *hard* world
(``hard=True``) does not, the way real retail data does not:

- weekly demand shocks common to every store (per category), and per store-week noise;
- the retailer foresees demand: deals are scheduled into the weeks it expects to be strong,
  and regular prices are raised a few weeks after a product's demand shifts up;
- shoppers stockpile on deals and buy less the week after (a post-promotion dip);
- a third of the products have linear or logit demand, not constant elasticity;
- stores differ in elasticity, their demographics and format explaining a third of it, and
  each store x product a little more; two small stores open late in the history;
- regular prices start near the retailer's own optimum with noise, a minority clearly
  mispriced, and are sticky: they move in steps, rolled out zone by zone (regions) over a few
  weeks with zone-specific sizes (what separates a price's effect from the week's demand).

The truth is recorded per product (``truth``: the elasticity at the final regular price, the
short-run deal response, the promotion lift, the dip, the demand form) and per store
(``store_truth``). The arrays run ``HOLDOUT_WEEKS`` past the history: held-out weeks with
their own shocks, where a price decision's realised profit is measured
(``demand.holdout_profit``). Shapes follow grocery panel data: elasticities mostly in
[-4, -1], promotions on a fifth to half of product-weeks at ~20-25% off lifting sales 2-5x,
skewed store and product sizes. Everything is a pure function of (shape, seed, hard);
transactions come out in day blocks, so memory is bounded by one block whatever the size.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pyarrow as pa

from shared.synthetic import demand, retailer
from shared.synthetic.demand import DISPLAY_LIFT, FEATURE_LIFT, FORMS
from shared.synthetic.retailer import HOLDOUT_WEEKS, REGIONS, START, ZONES
from shared.synthetic.world import Shape, World

__all__ = ["START", "TRANSACTIONS_SCHEMA", "Shape", "World", "build_world", "cross_truth",
           "transactions"]  # fmt: skip

FORMATS = ("hyper", "super", "express")
CATEGORIES = (
    "dairy", "bakery", "produce", "meat", "frozen",
    "beverages", "snacks", "household", "personal_care", "pantry",
)  # fmt: skip
GROUP = 3  # substitutes: the top products of a category
SUBSTITUTES = GROUP - 1


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


def _cents(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def build_world(shape: Shape, seed: int = 7, hard: bool = False) -> World:
    """Draw every fixed parameter of the retailer from ``seed`` (see the module's docstring
    for what ``hard`` changes)."""
    rng = np.random.default_rng([seed, int(hard)])
    n_s, n_p, n_w = shape.n_stores, shape.n_products, math.ceil(shape.n_days / 7)
    n_r, n_c, n_wt = len(REGIONS), len(CATEGORIES), n_w + HOLDOUT_WEEKS

    # Stores: a few big hypermarkets, many small ones (log-normal sizes).
    store_size = rng.lognormal(0.0, 0.8, n_s)
    store_region = rng.integers(0, n_r, n_s)
    store_zone = (store_region * 2 + rng.integers(0, 2, n_s)) % ZONES  # two per region
    income = rng.standard_normal(n_s)
    size_rank = np.argsort(np.argsort(-store_size)) / max(n_s - 1, 1)
    store_format = np.where(size_rank < 0.2, 0, np.where(size_rank < 0.7, 1, 2))
    stores = pa.table(
        {
            "store_id": pa.array(np.arange(1, n_s + 1), pa.int64()),
            "region": pa.array([REGIONS[i] for i in store_region]),
            "price_zone": pa.array(store_zone + 1, pa.int64()),
            "format": pa.array([FORMATS[i] for i in store_format]),
            "size_index": pa.array(np.round(store_size, 3)),
            "income_index": pa.array(np.round(income, 3)),
            "opened": pa.array(
                [START - dt.timedelta(days=int(d)) for d in rng.integers(400, 9000, n_s)]
            ),
        }
    )

    # Products: popularity is heavy-tailed; prices log-normal around a few euros.
    category = rng.integers(0, n_c, n_p)
    popularity = rng.lognormal(0.0, 0.9, n_p)
    reference_price = _cents(rng.lognormal(math.log(3.0), 0.6, n_p) + 0.5)
    if hard:
        elasticity = np.clip(rng.normal(-2.5, 0.6, n_p), -4.5, -1.4)
        demand_form = rng.choice(3, n_p, p=[0.66, 0.17, 0.17])
        # Linear demand turns steep toward its choke price: kept to milder slopes.
        elasticity = np.where(demand_form == 1, np.maximum(elasticity, -2.6), elasticity)
        # Costs put the reference price at the retailer's optimum (margin 1 + 1/e, noisy);
        # regular prices start near it, a fifth of the products 10-20% off it.
        unit_cost = _cents(reference_price * (1 + 1 / elasticity) * rng.lognormal(0, 0.03, n_p))
        mispriced = (rng.random(n_p) < 0.2) & (demand_form != 1)
        off = np.where(
            mispriced,
            rng.choice([-1, 1], n_p) * rng.uniform(0.10, 0.20, n_p),
            rng.normal(0, 0.03, n_p),
        )
        start_price = reference_price * np.exp(off)
        stockpile = rng.uniform(1.2, 1.8, n_p)
        dip = rng.uniform(0.1, 0.35, n_p)
        store_shift = np.zeros(n_s)  # drawn last (below)
        week_shock = np.zeros((n_c, n_wt))
        for w in range(1, n_wt):
            week_shock[:, w] = 0.6 * week_shock[:, w - 1] + rng.normal(0, 0.12, n_c)
        jumps = np.where(rng.random((n_p, n_wt)) < 1 / 15, rng.normal(0, 0.2, (n_p, n_wt)), 0.0)
        product_shift = np.cumsum(jumps, axis=1)
        noise_sd = 0.15
    else:
        elasticity = np.clip(rng.normal(-2.3, 0.7, n_p), -4.5, -0.6)
        unit_cost = _cents(reference_price * rng.uniform(0.45, 0.75, n_p))
        start_price = reference_price * np.exp(rng.uniform(-0.03, 0.03, n_p))
        demand_form = np.zeros(n_p, dtype=np.int64)
        stockpile, dip, store_shift = np.ones(n_p), np.zeros(n_p), np.zeros(n_s)
        week_shock, product_shift = np.zeros((n_c, n_wt)), np.zeros((n_p, n_wt))
        jumps = np.zeros((n_p, n_wt))
        noise_sd = 0.0
    promo_lift = np.clip(rng.lognormal(math.log(1.5), 0.2, n_p), 1.05, 3.0)
    season_amp = rng.uniform(0.05, 0.3, n_c)
    season_phase = rng.uniform(0, 2 * math.pi, n_c)
    products = pa.table(
        {
            "product_id": pa.array(np.arange(1, n_p + 1), pa.int64()),
            "category": pa.array([CATEGORIES[i] for i in category]),
            "brand": pa.array([f"brand_{i:03d}" for i in rng.integers(0, max(3, n_p // 6), n_p)]),
            "reference_price": pa.array(reference_price),
            "unit_cost": pa.array(unit_cost),
        }
    )

    # Assortment: big stores carry more, popular products are carried more widely.
    carry_logit = 0.8 + 1.2 * (np.log(store_size)[:, None]) + 0.8 * (np.log(popularity)[None, :])
    carried = rng.random((n_s, n_p)) < 1 / (1 + np.exp(-carry_logit))
    carried[np.argmax(store_size), ~carried.any(axis=0)] = True  # every product sells somewhere
    pair_store, pair_product = np.nonzero(carried)
    pair_base = 3.0 * store_size[pair_store] * popularity[pair_product]
    pair_base *= rng.lognormal(0.0, 0.3, len(pair_store))

    regular_price = retailer.regular_prices(rng, start_price, n_w, hard, jumps)
    # What the retailer expects of a week: the season and the category's shock (hard only).
    angle = 2 * math.pi * np.arange(n_wt) * 7 / 364
    season = season_amp[:, None] * np.sin(angle[None, :] + season_phase[:, None])
    foreseen = 3.0 * (season + week_shock)[category] + 2.0 * product_shift
    promo_rate = rng.uniform(0.2, 0.5, n_p)  # event starts per product-week
    strong = foreseen - foreseen.mean(axis=1, keepdims=True) if hard else np.zeros((n_p, n_wt))
    promotions, promo_index = retailer.promotions(rng, n_p, n_w, promo_rate, strong)

    # Substitutes, drawn last so every earlier parameter stays what it was for a seed.
    substitutes = np.full((n_p, SUBSTITUTES), -1, dtype=np.int64)
    cross = np.zeros((n_p, SUBSTITUTES))
    for c in range(n_c):
        members = np.flatnonzero(category == c)
        group = members[np.argsort(-popularity[members], kind="stable")][:GROUP]
        if len(group) < 2:
            continue
        for p in group:
            others = [q for q in group if q != p]
            substitutes[p, : len(others)] = others
            cross[p, : len(others)] = np.round(rng.uniform(0.2, 0.6, len(others)), 3)
    # Stores differ in elasticity (drawn after the substitutes, so every earlier parameter
    # stays what it was for a seed): on a public scanner panel the stores' elasticities of a
    # brand spread with a standard deviation of ~0.46, demographics explaining a third. Here
    # income and format explain about a third of the store's shift, the rest is its own; each
    # pair differs a little more; two small stores open late (a tenth of a median store's data).
    store_open_week = np.zeros(n_s, dtype=np.int64)
    pair_shift = np.zeros(len(pair_store))
    if hard:
        explained = 0.15 * income + np.where(store_format == 2, 0.12, 0.0)
        explained -= np.where(store_format == 0, 0.08, 0.0)
        store_shift = explained + rng.normal(0.0, 0.2, n_s)
        pair_shift = rng.normal(0.0, 0.12, len(pair_store))
        small = np.argsort(store_size)[: max(n_s // 4, 2)]
        late = rng.choice(small, size=min(2, n_s - 1), replace=False)
        store_open_week[late] = max(n_w - 12, 0)
        opened = [
            START + dt.timedelta(weeks=int(w)) if w else d
            for w, d in zip(store_open_week, stores["opened"].to_pylist(), strict=True)
        ]
        stores = stores.set_column(
            stores.schema.get_field_index("opened"), "opened", pa.array(opened, pa.date32())
        )
    discounts = promotions["discount"].to_numpy()
    world = World(
        shape=shape,
        seed=seed,
        hard=hard,
        stores=stores,
        products=products,
        truth=pa.table({}),
        store_truth=pa.table({}),
        promotions=promotions,
        pair_store=pair_store,
        pair_product=pair_product,
        pair_base=pair_base,
        store_region=store_region,
        store_zone=store_zone,
        store_shift=store_shift,
        store_open_week=store_open_week,
        pair_shift=pair_shift,
        product_category=category,
        reference_price=reference_price,
        unit_cost=unit_cost,
        elasticity=elasticity,
        demand_form=demand_form,
        stockpile=stockpile,
        dip=dip,
        promo_lift=promo_lift,
        season_amp=season_amp,
        season_phase=season_phase,
        week_shock=week_shock,
        product_shift=product_shift,
        noise_sd=noise_sd,
        regular_price=regular_price,
        promo_index=promo_index,
        promo_discount=np.asarray(discounts, dtype=np.float64),
        promo_feature=promotions["feature"].to_numpy(zero_copy_only=False).astype(bool),
        promo_display=promotions["display"].to_numpy(zero_copy_only=False).astype(bool),
        substitutes=substitutes,
        cross_elasticity=cross,
    )
    return _with_truth(world)


def _with_truth(world: World) -> World:
    """The world with its ``truth`` and ``store_truth`` tables."""
    volume = demand.holdout_volume(world)
    product_e, pair_e = demand.true_elasticities(world, volume)
    n_p = world.shape.n_products
    truth = pa.table(
        {
            "product_id": pa.array(np.arange(1, n_p + 1), pa.int64()),
            "true_elasticity": pa.array(np.round(product_e, 4)),
            "true_deal_elasticity": pa.array(np.round(demand.deal_response(world), 4)),
            "true_promo_lift": pa.array(np.round(world.promo_lift, 4)),
            "true_feature_lift": pa.array(np.full(n_p, FEATURE_LIFT)),
            "true_display_lift": pa.array(np.full(n_p, DISPLAY_LIFT)),
            "true_dip": pa.array(np.round(world.dip, 4)),
            "demand_form": pa.array([FORMS[i] for i in world.demand_form]),
        }
    )
    store_truth = pa.table(
        {
            "store_id": pa.array(world.pair_store + 1, pa.int64()),
            "product_id": pa.array(world.pair_product + 1, pa.int64()),
            "true_elasticity": pa.array(np.round(pair_e, 4)),
        }
    )
    return replace(world, truth=truth, store_truth=store_truth)


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
    store_ids, product_ids = world.pair_store + 1, world.pair_product + 1
    start_days = (START - dt.date(1970, 1, 1)).days
    for first in range(0, world.shape.n_days, days_per_batch):
        # Each block draws from its own stream, so any block is reproducible on its own.
        rng = np.random.default_rng([world.seed, first])
        columns: dict[str, list[np.ndarray]] = {name: [] for name in TRANSACTIONS_SCHEMA.names}
        for day in range(first, min(first + days_per_batch, world.shape.n_days)):
            today = demand.daily_mean(world, day)
            units = rng.poisson(today["mean"])
            sold = units > 0
            price = today["price"][sold]
            columns["date"].append(np.full(int(sold.sum()), day, dtype=np.int32))
            columns["store_id"].append(store_ids[sold])
            columns["product_id"].append(product_ids[sold])
            columns["units"].append(units[sold])
            columns["price"].append(price)
            columns["regular_price"].append(today["regular"][sold])
            columns["revenue"].append(_cents(units[sold] * price))
            columns["promo_id"].append(np.where(today["promo"] >= 0, today["promo"] + 1, -1)[sold])
            columns["feature"].append(today["feature"][sold])
            columns["display"].append(today["display"][sold])
        data = {k: np.concatenate(v) for k, v in columns.items()}
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
