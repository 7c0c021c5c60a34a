"""The synthetic retailer's shape and fixed parameters (built by ``generate.build_world``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Share of (store, product) cells with a row: assortment x days with at least one unit sold.
_ROW_DENSITY = 0.55


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


@dataclass(frozen=True)
class World:
    """The retailer's fixed parameters; dimension tables and the demand model's inputs."""

    shape: Shape
    seed: int
    hard: bool
    stores: pa.Table
    products: pa.Table
    truth: pa.Table
    store_truth: pa.Table
    promotions: pa.Table
    # Model internals, indexed by position: pairs carried, weekly prices and promotions.
    pair_store: np.ndarray  # (pairs,) store index
    pair_product: np.ndarray  # (pairs,) product index
    pair_base: np.ndarray  # (pairs,) mean daily units at reference price
    store_region: np.ndarray  # (stores,)
    store_zone: np.ndarray  # (stores,) price zone
    store_shift: np.ndarray  # (stores,) added to every product's elasticity there
    store_open_week: np.ndarray  # (stores,) first week the store sells (0: open throughout)
    pair_shift: np.ndarray  # (pairs,) the pair's own elasticity difference, beyond the store's
    product_category: np.ndarray  # (products,)
    reference_price: np.ndarray  # (products,)
    unit_cost: np.ndarray  # (products,)
    elasticity: np.ndarray  # (products,) at the reference price, before the store's shift
    demand_form: np.ndarray  # (products,) index into demand.FORMS
    stockpile: np.ndarray  # (products,) deal response exponent (1: none)
    dip: np.ndarray  # (products,) share of demand lost the week after a deal
    promo_lift: np.ndarray  # (products,)
    season_amp: np.ndarray  # (categories,)
    season_phase: np.ndarray  # (categories,)
    week_shock: np.ndarray  # (categories, weeks) log demand shock common to all stores
    product_shift: np.ndarray  # (products, weeks) log demand level of the product
    noise_sd: float  # log sd of the store-week noise
    regular_price: np.ndarray  # (products, zones, weeks)
    promo_index: np.ndarray  # (products, regions, weeks), -1 when none
    promo_discount: np.ndarray  # (promotions,)
    promo_feature: np.ndarray  # (promotions,) bool
    promo_display: np.ndarray  # (promotions,) bool
    substitutes: np.ndarray  # (products, SUBSTITUTES) product index, -1 when none
    cross_elasticity: np.ndarray  # (products, SUBSTITUTES)

    @property
    def training_weeks(self) -> int:
        """Weeks of history (the held-out weeks follow)."""
        return math.ceil(self.shape.n_days / 7)

    @property
    def holdout_weeks(self) -> int:
        return self.regular_price.shape[2] - self.training_weeks

    @property
    def expected_rows(self) -> int:
        """Rows the transactions table will have, within a few percent (zero-sale days drop)."""
        return round(float(np.sum(1 - np.exp(-self.pair_base))) * self.shape.n_days)

    def pair_noise(self, week: int) -> np.ndarray:
        """Each pair's demand noise that week (log-normal, mean 1; 1 in the easy world)."""
        if not self.noise_sd:
            return np.ones(len(self.pair_product))
        rng = np.random.default_rng([self.seed, 1_000_003, week])
        sd = self.noise_sd
        return rng.lognormal(-sd * sd / 2, sd, len(self.pair_product))
