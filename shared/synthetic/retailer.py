"""The synthetic retailer's behaviour: when it runs deals and how it moves regular prices."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa

HOLDOUT_WEEKS = 13  # after the history: where decisions are scored
MECHANICS = ("tpr", "multibuy", "bogo")
REGIONS = ("north", "south", "east", "west", "central")
START = dt.date(2024, 1, 1)  # a Monday
ZONES = 10  # price zones: stores priced alike (regions run the deals)


def _cents(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def promotions(
    rng: np.random.Generator, n_p: int, n_w: int, promo_rate: np.ndarray, strong: np.ndarray
) -> tuple[pa.Table, np.ndarray]:
    """Events of 1-2 weeks per product in all stores or one region; ``strong`` (products,
    weeks): how much the retailer expects the week to sell, which raises the odds of a deal."""
    n_r = len(REGIONS)
    promo_index = np.full((n_p, n_r, n_w + HOLDOUT_WEEKS), -1, dtype=np.int64)
    rows: dict[str, list] = {
        k: []
        for k in ("promo_id", "product_id", "region", "mechanic", "discount", "start_date",
                  "end_date", "feature", "display")
    }  # fmt: skip
    for p in range(n_p):
        w = int(rng.integers(0, 4))
        while w < n_w:
            if rng.random() < min(promo_rate[p] * math.exp(strong[p, w]), 0.9):
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
    types = {"promo_id": pa.int64(), "product_id": pa.int64(), "region": pa.string(),
             "mechanic": pa.string(), "discount": pa.float64(), "start_date": pa.date32(),
             "end_date": pa.date32(), "feature": pa.bool_(), "display": pa.bool_()}  # fmt: skip
    table = pa.table({k: pa.array(rows[k], t) for k, t in types.items()})
    return table, promo_index


def regular_prices(
    rng: np.random.Generator, start: np.ndarray, n_w: int, hard: bool, react: np.ndarray
) -> np.ndarray:
    """(products, ZONES, weeks) regular prices: chain decisions rolled out zone by zone over
    0-3 weeks, each zone's step its own size. Easy: steps every ~10 weeks that mean-revert
    (prices drift back week by week). Hard: sticky steps every ~12 weeks plus, 2-3 weeks
    after a product's demand shifts up, a rise of half the shift (``react``, per week)."""
    n_p, n_r = len(start), ZONES
    chance, size = (1 / 12, 0.10) if hard else (1 / 10, 0.12)
    steps = np.where(rng.random((n_p, n_w)) < chance, rng.uniform(-size, size, (n_p, n_w)), 0.0)
    if hard:
        lag = int(rng.integers(2, 4))
        steps[:, lag:] += 0.5 * react[:, : n_w - lag]
    steps[:, n_w - 4 :] = 0.0  # the last rollout is done before the history ends
    # Zone pricing: a chain step reaches each zone 0-5 weeks apart (or not at all), each zone
    # its own size; zones also move on their own (local competition).
    zone = np.zeros((n_p, n_r, n_w))
    for p, w in zip(*np.nonzero(steps), strict=True):
        lags = rng.integers(0, 6, n_r)
        sizes = steps[p, w] * rng.uniform(0.3, 1.7, n_r) * (rng.random(n_r) < 0.8)
        for r in range(n_r):
            if w + lags[r] < n_w - 4:
                zone[p, r, w + lags[r]] += sizes[r]
    local = rng.random((n_p, n_r, n_w)) < 1 / 26
    local[:, :, n_w - 4 :] = False
    zone += np.where(local, rng.uniform(-size, size, (n_p, n_r, n_w)), 0.0)
    level = np.zeros((n_p, n_r, n_w + HOLDOUT_WEEKS))
    keep = 1.0 if hard else 0.85
    for w in range(n_w):
        level[:, :, w] = (keep * level[:, :, w - 1] if w else 0.0) + zone[:, :, w]
    if hard:  # the retailer's steps stay within 15% of where the price started
        level = np.clip(level, -0.15, 0.15)
    level[:, :, n_w:] = level[:, :, n_w - 1 : n_w]
    return _cents(start[:, None, None] * np.exp(level))
