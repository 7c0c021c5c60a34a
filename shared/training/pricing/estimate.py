"""Estimating the elasticity: Poisson pseudo-maximum likelihood with the specification's controls,
standard errors by the delete-one-week jackknife, identification checks."""

from __future__ import annotations

import math

import numpy as np

from shared.training.pricing.config import DEFAULT_SPEC, Spec


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
    """Standard error of the first coefficient (see ``_week_jackknife_ses``)."""
    return float(_week_jackknife_ses(x, y, mu, week, 1)[0])


def _week_jackknife_ses(
    x: np.ndarray, y: np.ndarray, mu: np.ndarray, week: np.ndarray, first: int
) -> np.ndarray:
    """Standard errors of the ``first`` coefficients, clustered by week, by the delete-one-week
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
        return np.full(first, math.inf)
    shifts = np.empty((clusters, x.shape[1]))
    for g in range(clusters):
        rows = idx == g
        xg = x[rows]
        rest = info - (xg * mu[rows][:, None]).T @ xg
        shifts[g] = np.linalg.pinv(rest) @ (xg.T @ resid[rows])
    centred = shifts[:, :first] - shifts[:, :first].mean(axis=0)
    return np.sqrt((clusters - 1) / clusters * np.sum(centred**2, axis=0))


def _design(cells: dict[str, np.ndarray], spec: Spec) -> np.ndarray:
    """log(price) first, then the specification's controls (constant columns dropped)."""
    n = len(cells["units"])
    columns = [np.log(cells["price"])]
    for name in ("promo", "feature", "display"):
        if name in spec.controls:
            columns.append(cells[name])
    if "seasonality" in spec.controls:
        # Days since the epoch, not day of year: the harmonics are periodic, and a day-of-year
        # mean over a week that crosses the new year would be mid-year.
        angle = 2 * math.pi * cells["day"] / 365.25
        columns += [np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)]
    x = np.column_stack(columns)
    keep = np.std(x, axis=0) > 1e-12
    keep[0] = True
    x = x[:, keep]
    if "store" in spec.controls:
        stores, store_idx = np.unique(cells["store_id"], return_inverse=True)
        dummies = np.zeros((n, len(stores)))
        dummies[np.arange(n), store_idx.ravel()] = 1.0
        return np.column_stack([x, dummies])
    return np.column_stack([x, np.ones(n)])


def _full_rank(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``x`` without the columns that add nothing (log price kept first), and whether log
    price itself is still identified (not a combination of the controls)."""
    rank = np.linalg.matrix_rank(x)
    if rank == x.shape[1]:
        return x, True
    if np.linalg.matrix_rank(x[:, 1:]) == rank:
        return x, False  # log price lies in the span of the controls
    kept = [0]
    for j in range(1, x.shape[1]):
        if np.linalg.matrix_rank(x[:, [*kept, j]]) == len(kept) + 1:
            kept.append(j)
        if len(kept) == rank:
            break
    return x[:, kept], True


def estimate(
    cells: dict[str, np.ndarray], spec: Spec = DEFAULT_SPEC, *, with_se: bool = True
) -> tuple[float, float, int, str | None, float]:
    """(elasticity, jackknife standard error, weeks, why weakly identified or None, r2) of one
    product's cells with sales (the standard error is nan without ``with_se``)."""
    x, identified = _full_rank(_design(cells, spec))
    units, week = cells["units"], cells["week"]
    weeks = len(np.unique(week))
    if not identified:
        return math.nan, math.inf, weeks, "log price is a combination of the controls", math.nan
    if len(units) - x.shape[1] < 5:
        return math.nan, math.inf, weeks, "fewer cells than the design's columns + 5", math.nan
    beta, mu = _poisson_fit(x, units)
    se = _week_jackknife_se(x, units, mu, week) if with_se else math.nan
    sold = units > 0
    y, fitted = np.log(units[sold]), np.log(mu[sold])
    r2 = float(1 - np.sum((y - fitted) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
    why = None
    if with_se and not (math.isfinite(se) and se > 1e-6):
        why = "the week-clustered standard error has no width"
    return float(beta[0]), se, weeks, why, r2
