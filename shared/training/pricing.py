"""Price elasticity per product and the revenue-maximising price in a corridor.

Demand model, fitted per product on product x store x week cells by Poisson pseudo-maximum
likelihood (consistent for a log-linear mean; OLS on log(units) is biased where counts are
small):

    E[units] = exp(e * log(price) + b_promo * promo + b_feature * feature
                   + b_display * display + seasonality (two yearly harmonics) + store effect)

Store effects (dummies) mean elasticity is identified by price changes over time inside a
store, not by which stores are expensive. Standard errors are clustered by week (a week's
promotions and price steps are shared by its stores) with the delete-one-week jackknife. A
product whose log price barely moves inside stores (std < ``min_price_variation``) is flagged,
not given a number.

With a constant elasticity ``e``, revenue ``p * q(p)`` moves like ``p ** (1 + e)``: it falls with
price when demand is elastic (e < -1), so the revenue-maximising price in the corridor is its
lower end, and its upper end when inelastic. Where the unit cost ``c`` is known, the
margin-maximising price ``c * e / (1 + e)`` (for e < -1) is reported too, clipped to the corridor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Z95 = 1.959963984540054


@dataclass(frozen=True)
class PriceResult:
    product_id: int
    status: str  # ok | insufficient_price_variation | too_few_observations | no_sales
    n_cells: int
    elasticity: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    std_error: float | None = None
    r2: float | None = None
    price_variation: float | None = None
    current_price: float | None = None
    recommended_price: float | None = None
    expected_revenue_change: float | None = None
    margin_price: float | None = None
    returns_rows: int = 0

    def row(self) -> dict:
        return asdict(self)


def weekly_cells(table: pa.Table) -> dict[str, np.ndarray]:
    """Aggregate transactions to product x store x week x on-promotion (unit-weighted price)."""
    days = pc.cast(table["date"], pa.int32()).to_numpy()
    week = (days - days.min()) // 7
    product = table["product_id"].to_numpy()
    store = table["store_id"].to_numpy()
    units = table["units"].to_numpy().astype(np.float64)
    revenue = table["revenue"].to_numpy()
    promo = table["promo_id"].is_valid().to_numpy(zero_copy_only=False).astype(np.float64)
    feature = table["feature"].fill_null(False).to_numpy(zero_copy_only=False).astype(np.float64)
    display = table["display"].fill_null(False).to_numpy(zero_copy_only=False).astype(np.float64)
    # Promotion days and regular days of a week are separate cells: each has one price.
    # Days at another price (a mid-week change) are a cell of their own too.
    cents = np.round(revenue / np.maximum(units, 1) * 100).astype(np.int64)
    keys = np.stack([product, store, week, promo.astype(np.int64), cents], axis=1)
    cells, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = len(cells)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=n)

    count = np.bincount(inverse, minlength=n).astype(np.float64)
    day = np.bincount(inverse, weights=days.astype(np.float64), minlength=n)
    return {
        "product_id": cells[:, 0],
        "store_id": cells[:, 1],
        "week": cells[:, 2],
        "units": total(units),
        "revenue": total(revenue),
        "promo": total(promo) / count,
        "feature": total(feature) / count,
        "display": total(display) / count,
        "day": day / count,
    }


def _within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` minus their mean within each group (columns of a 2-D array too)."""
    _, idx = np.unique(groups, return_inverse=True)
    idx = idx.ravel()
    counts = np.bincount(idx).astype(np.float64)
    if values.ndim == 1:
        return values - (np.bincount(idx, weights=values) / counts)[idx]
    means = np.stack(
        [np.bincount(idx, weights=values[:, j]) / counts for j in range(values.shape[1])], axis=1
    )
    return values - means[idx]


def _poisson_fit(
    x: np.ndarray, y: np.ndarray, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson pseudo-maximum likelihood by IRLS: consistent for a log-linear mean, and unlike
    OLS on log(units) not biased where counts are small (E[log y] != log E[y])."""
    beta = np.linalg.lstsq(x, np.log(np.maximum(y, 0.5)), rcond=None)[0]
    for _ in range(iterations):
        eta = np.clip(x @ beta, -30, 30)
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        xw = x * mu[:, None]
        new = np.linalg.lstsq(xw.T @ x, xw.T @ z, rcond=None)[0]
        if np.max(np.abs(new - beta)) < 1e-8:
            beta = new
            break
        beta = new
    return beta, np.exp(np.clip(x @ beta, -30, 30))


def _week_jackknife_se(x: np.ndarray, y: np.ndarray, mu: np.ndarray, week: np.ndarray) -> float:
    """Standard error of the first coefficient, clustered by week, by the delete-one-week
    jackknife (CR3, one Newton step from the full fit per left-out week).

    Promotions and price steps are chain- or region-wide, so one week's stores share their
    shocks; and the price variation that identifies the elasticity sits in a few weeks. The
    usual clustered sandwich (CR1) is then too small: on the synthetic retailer its 95%
    intervals held the true elasticity for 84% of products. The jackknife is the standard
    small-number-of-clusters correction (Cameron & Miller 2015; MacKinnon, Nielsen & Webb 2023).
    """
    info = (x * mu[:, None]).T @ x
    resid = y - mu
    _, idx = np.unique(week, return_inverse=True)
    idx = idx.ravel()
    clusters = int(idx.max()) + 1
    if clusters < 2:
        return math.inf
    shifts = np.empty((clusters, x.shape[1]))
    for g in range(clusters):
        rows = idx == g
        xg = x[rows]
        rest = info - (xg * mu[rows][:, None]).T @ xg
        shifts[g] = np.linalg.pinv(rest) @ (xg.T @ resid[rows])
    centred = shifts[:, 0] - shifts[:, 0].mean()
    return float(math.sqrt((clusters - 1) / clusters * np.sum(centred**2)))


def fit_product(
    cells: dict[str, np.ndarray],
    product_id: int,
    *,
    unit_cost: float | None = None,
    corridor: float = 0.10,
    min_cells: int = 30,
    min_price_variation: float = 0.02,
    returns_rows: int = 0,
) -> PriceResult:
    """Elasticity and price recommendation of one product from its weekly cells."""
    units, revenue = cells["units"], cells["revenue"]
    sold = units > 0
    if not sold.any():
        return PriceResult(product_id, "no_sales", 0, returns_rows=returns_rows)
    units, revenue = units[sold], revenue[sold]
    price = revenue / units
    store = cells["store_id"][sold]
    n = len(units)
    current = float(np.median(price[cells["week"][sold] == cells["week"][sold].max()]))
    log_price = np.log(price)
    variation = float(np.std(_within(log_price, store)))
    base: dict[str, Any] = {"n_cells": n, "price_variation": variation, "current_price": current}
    if n < min_cells:
        return PriceResult(product_id, "too_few_observations", returns_rows=returns_rows, **base)
    if variation < min_price_variation:
        return PriceResult(
            product_id, "insufficient_price_variation", returns_rows=returns_rows, **base
        )
    # Days since the epoch, not day of year: the harmonics are periodic, and a day-of-year
    # mean over a week that crosses the new year would be mid-year.
    angle = 2 * math.pi * cells["day"][sold] / 365.25
    x = np.column_stack(
        [
            log_price,
            cells["promo"][sold],
            cells["feature"][sold],
            cells["display"][sold],
            np.sin(angle),
            np.cos(angle),
            np.sin(2 * angle),
            np.cos(2 * angle),
        ]
    )
    keep = np.std(x, axis=0) > 1e-12
    keep[0] = True
    stores, store_idx = np.unique(store, return_inverse=True)
    dummies = np.zeros((n, len(stores)))
    dummies[np.arange(n), store_idx.ravel()] = 1.0
    x = np.column_stack([x[:, keep], dummies])
    dof = n - x.shape[1]
    if dof < 5:
        return PriceResult(product_id, "too_few_observations", returns_rows=returns_rows, **base)
    beta, mu = _poisson_fit(x, units)
    se = _week_jackknife_se(x, units, mu, cells["week"][sold])
    e = float(beta[0])
    y = np.log(units)
    fitted = np.log(mu)
    r2 = float(1 - np.sum((y - fitted) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
    low, high = current * (1 - corridor), current * (1 + corridor)
    recommended = low if e < -1 else high if e > -1 else current
    change = (recommended / current) ** (1 + e) - 1
    margin = None
    if unit_cost and e < -1:
        margin = float(min(max(unit_cost * e / (1 + e), low), high))
    return PriceResult(
        product_id,
        "ok",
        elasticity=e,
        ci_low=e - Z95 * se,
        ci_high=e + Z95 * se,
        std_error=se,
        r2=r2,
        recommended_price=round(recommended, 2),
        expected_revenue_change=change,
        margin_price=None if margin is None else round(margin, 2),
        returns_rows=returns_rows,
        **base,
    )


def fit_products(
    table: pa.Table, unit_costs: dict[int, float] | None = None, **options: Any
) -> list[PriceResult]:
    """Fit every product in ``table`` (one shard's transactions), in product order.

    Rows with negative units (returns) are counted per product and left out of the fit.
    """
    units = table["units"].to_numpy()
    returns = units < 0
    returns_by_product: dict[int, int] = {}
    if returns.any():
        ids, counts = np.unique(table["product_id"].to_numpy()[returns], return_counts=True)
        returns_by_product = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        table = table.filter(pa.array(~returns))
    if table.num_rows == 0:
        return [
            PriceResult(p, "no_sales", 0, returns_rows=n) for p, n in returns_by_product.items()
        ]
    cells = weekly_cells(table)
    order = np.argsort(cells["product_id"], kind="stable")
    cells = {k: v[order] for k, v in cells.items()}
    products, starts = np.unique(cells["product_id"], return_index=True)
    bounds = [*starts[1:], len(cells["product_id"])]
    results = []
    for product, start, end in zip(products, starts, bounds, strict=True):
        part = {k: v[start:end] for k, v in cells.items()}
        results.append(
            fit_product(
                part,
                int(product),
                unit_cost=(unit_costs or {}).get(int(product)),
                returns_rows=returns_by_product.pop(int(product), 0),
                **options,
            )
        )
    results += [
        PriceResult(p, "no_sales", 0, returns_rows=n) for p, n in returns_by_product.items()
    ]
    return results
