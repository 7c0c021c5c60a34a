"""Store-level elasticities: each store's own price slope, pooled across stores and products.

Stage 1 (in each task, per product, ``store_slopes``): with the product's chain fit held fixed
(its week effects, deal terms and controls, as an offset), each store's slope on its own
regular price and its own intercept, by Poisson PML on the store's regular-price cells; its
variance by the delete-one-week jackknife within the store (the larger of that and the
model's, scaled by the overdispersion). A store whose slope rests on one week, or that never
changed its regular price, has no slope of its own. And the product's curvature: a quadratic
in log price beside one slope and the stores' intercepts, from all its price variation
(``_curvature_fit``).

Stage 2 (in the merge, every product at once, ``pool``): the stores' deviations from their
product's slope are pooled as a two-level Fay-Herriot model (Fay & Herriot 1979), the
hierarchical set-up Montgomery (1997, "Creating micro-marketing pricing strategies using
supermarket scanner data", Marketing Science 16(4)) used for store-level prices::

    deviation[s, p] = eta[s] + kappa[p] * relative[s, p] + u[s, p] + noise (known variance)
    eta[s] = covariates[s] . gamma + v[s],   v ~ N(0, tau_store^2),   u ~ N(0, tau_pair^2)

``relative`` is the log of the store's regular price over the product's: along a demand curve
that is not constant-elasticity the elasticity moves with the price (``kappa`` = 2 x the
curvature, pooled across products by a two-part prior, ``_curvature``).

The variances are found by moments (Paule-Mandel), the store effect ``eta`` is shrunk toward
what the store's demographics, format and size predict by how much its own data (over all its
products) says, and each store x product deviation toward its store's effect by its own
noise: parametric empirical Bayes (Morris 1983). A store with little data ends near its
covariates' prediction, a store with none at it. The stores' elasticities of a product are
then centred so their volume-weighted mean is the product's chain estimate: the chain-level
estimate stays, and the stores agree with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.training.pricing.config import RECENT_WEEKS
from shared.training.pricing.estimate import Fit
from shared.training.pricing.panel import _modal


def store_slopes(cells: dict[str, np.ndarray], fit: Fit | None, product_id: int) -> list[dict]:
    """One row per store of the product (see the module's stage 1); without a chain ``fit``
    (the product is not estimated) the stores' prices and volumes alone."""
    store_all, week_all = cells["store_id"], cells["week"]
    regular = cells["promo"] < 0.5
    recent = week_all > week_all.max() - RECENT_WEEKS
    ids, s_all = np.unique(store_all, return_inverse=True)
    s_all = s_all.ravel()
    n_s = len(ids)
    slope, variance = np.full(n_s, math.nan), np.full(n_s, math.inf)
    curvature, curvature_variance = 0.0, math.inf
    if fit is not None and fit.offset is not None and fit.price_column is not None:
        args = (s_all[regular], cells["units"][regular], fit.price_column[regular],
                fit.offset[regular])  # fmt: skip
        slope, variance = _slopes(args[0], week_all[regular], *args[1:], fit.elasticity, n_s)
        curvature, curvature_variance = _curvature_fit(*args, fit.elasticity, n_s)
    baseline = (fit.store_baseline if fit is not None else None) or {}
    weeks_recent = max(len(np.unique(week_all[recent])), 1)
    rows = []
    for k, store in enumerate(ids.tolist()):
        mine = s_all == k
        latest = mine & recent & regular
        chosen = latest if latest.any() else mine
        units = cells["units"][mine & recent]
        rows.append(
            {
                "product_id": product_id,
                "store_id": int(store),
                "slope": float(slope[k]),
                "variance": float(variance[k]),
                "weeks": len(np.unique(week_all[mine])),
                "cells": int(mine.sum()),
                "regular_price": _modal(cells["regular"][chosen], cells["units"][chosen] + 1e-9),
                "weekly_units": float(baseline.get(int(store), units.sum() / weeks_recent)),
                "curvature": curvature,
                "curvature_variance": curvature_variance,
            }
        )
    return rows


def _slopes(
    s: np.ndarray,
    week: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    offset: np.ndarray,
    start: float,
    n_s: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(slope, variance) per store by Newton steps on (intercept, slope), every store at once;
    nan / inf where the store's price never moved or its slope rests on one week."""
    a, b = np.zeros(n_s), np.full(n_s, start)
    identified = np.zeros(n_s, bool)
    mu = np.exp(np.clip(offset, -30, 30))
    for _ in range(40):
        mu = np.exp(np.clip(offset + a[s] + b[s] * x, -30, 30))
        h00, h01, h11 = (np.bincount(s, w, n_s) for w in (mu, mu * x, mu * x * x))
        g0, g1 = np.bincount(s, y - mu, n_s), np.bincount(s, (y - mu) * x, n_s)
        det = h00 * h11 - h01 * h01
        identified = det > 1e-9 * np.maximum(h00 * h11, 1e-12)
        safe = np.where(identified, det, 1.0)
        da = np.where(identified, (h11 * g0 - h01 * g1) / safe, 0.0)
        db = np.where(identified, (h00 * g1 - h01 * g0) / safe, 0.0)
        a, b = a + np.clip(da, -2, 2), b + np.clip(db, -1, 1)
        if np.max(np.abs(db), initial=0.0) < 1e-7:
            break
    jackknife = _jackknife_variance(s, week, x, y, mu, n_s)
    dof = max(len(y) - 2 * n_s, 1)
    dispersion = max(float(np.sum((y - mu) ** 2 / np.maximum(mu, 1e-9))) / dof, 1.0)
    h00, h01, h11 = (np.bincount(s, w, n_s) for w in (mu, mu * x, mu * x * x))
    det = np.where(identified, h00 * h11 - h01 * h01, 1.0)
    variance = np.where(identified, np.maximum(jackknife, dispersion * h00 / det), np.inf)
    finite = identified & np.isfinite(variance)
    return np.where(finite, b, math.nan), np.where(finite, variance, math.inf)


def _curvature_fit(
    s: np.ndarray, y: np.ndarray, x: np.ndarray, offset: np.ndarray, start: float, n_s: int
) -> tuple[float, float]:
    """(c, its variance) of ``c * (log price - its mean)^2`` beside one slope and the stores'
    intercepts, on the chain fit's offset: how the elasticity changes along the demand curve
    (2c per unit of log price), from all the product's price variation, over time and across
    stores. Infinite variance where the data cannot tell."""
    centre = float(np.average(x, weights=y + 1e-9))
    q = (x - centre) ** 2
    b, c = start, 0.0
    sold = np.bincount(s, y, n_s)
    info = np.zeros((2, 2))
    mu = np.exp(np.clip(offset, -30, 30))
    for _ in range(30):
        eta = np.clip(offset + b * x + c * q, -30, 30)
        level = np.bincount(s, np.exp(eta), n_s)
        a = np.where(sold > 0, np.log(np.maximum(sold, 1e-12) / np.maximum(level, 1e-300)), -30)
        mu = np.exp(np.clip(eta + a[s], -30, 30))
        total = np.maximum(np.bincount(s, mu, n_s), 1e-12)
        xc = x - (np.bincount(s, mu * x, n_s) / total)[s]
        qc = q - (np.bincount(s, mu * q, n_s) / total)[s]
        score = np.array([np.sum((y - mu) * xc), np.sum((y - mu) * qc)])
        info = np.array([[np.sum(mu * xc * xc), np.sum(mu * xc * qc)],
                         [np.sum(mu * xc * qc), np.sum(mu * qc * qc)]])  # fmt: skip
        if np.linalg.det(info) <= 1e-12 * max(info[0, 0] * info[1, 1], 1e-300):
            return 0.0, math.inf
        step = np.linalg.solve(info, score)
        b, c = b + float(np.clip(step[0], -1, 1)), c + float(np.clip(step[1], -20, 20))
        if abs(step[1]) < 1e-6:
            break
    dispersion = max(
        float(np.sum((y - mu) ** 2 / np.maximum(mu, 1e-9))) / max(len(y) - n_s - 2, 1), 1.0
    )
    return c, dispersion * float(np.linalg.inv(info)[1, 1])


def _jackknife_variance(
    s: np.ndarray, week: np.ndarray, x: np.ndarray, y: np.ndarray, mu: np.ndarray, n_s: int
) -> np.ndarray:
    """Each store's slope variance by the delete-one-week jackknife (one Newton step from the
    fit per left-out week); infinite where leaving one week out leaves no slope."""
    keys, g = np.unique(s * 100_000 + week, return_inverse=True)
    g = g.ravel()
    owner = keys // 100_000
    n_g = len(keys)
    h00, h01, h11 = (np.bincount(g, w, n_g) for w in (mu, mu * x, mu * x * x))
    g0, g1 = np.bincount(g, y - mu, n_g), np.bincount(g, (y - mu) * x, n_g)
    t00, t01, t11 = (np.bincount(owner, h, n_s)[owner] for h in (h00, h01, h11))
    r00, r01, r11 = t00 - h00, t01 - h01, t11 - h11
    det = r00 * r11 - r01 * r01
    broken = det <= 1e-9 * np.maximum(r00 * r11, 1e-12)
    shift = np.where(broken, 0.0, (r00 * g1 - r01 * g0) / np.where(broken, 1.0, det))
    count = np.bincount(owner, minlength=n_s).astype(np.float64)
    mean = np.bincount(owner, shift, n_s) / np.maximum(count, 1)
    spread = np.bincount(owner, (shift - mean[owner]) ** 2, n_s)
    variance = (count - 1) / np.maximum(count, 1) * spread
    variance[np.bincount(owner, broken.astype(np.float64), n_s) > 0] = np.inf
    variance[count < 2] = np.inf
    return variance


def paule_mandel(
    y: np.ndarray, v: np.ndarray, z: np.ndarray, iterations: int = 60
) -> tuple[float, np.ndarray, np.ndarray]:
    """(tau^2, gamma, cov of gamma) of ``y = z . gamma + N(0, tau^2) + N(0, v)``: tau^2 where
    the weighted residual sum of squares equals its degrees of freedom (0 if it never
    exceeds them)."""

    def fitted(tau2: float) -> tuple[float, np.ndarray, np.ndarray]:
        w = 1.0 / (v + tau2)
        info = (z * w[:, None]).T @ z
        cov = np.linalg.pinv(info)
        gamma = cov @ (z * w[:, None]).T @ y
        return float(np.sum(w * (y - z @ gamma) ** 2)), gamma, cov

    dof = max(len(y) - z.shape[1], 1)
    q, gamma, cov = fitted(0.0)
    if q <= dof:
        return 0.0, gamma, cov
    low, high = 0.0, max(float(np.var(y)) * 4, 1e-6)
    while fitted(high)[0] > dof and high < 1e4:
        high *= 4
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if fitted(middle)[0] > dof else (low, middle)
    tau2 = (low + high) / 2
    _, gamma, cov = fitted(tau2)
    return tau2, gamma, cov


@dataclass(frozen=True)
class Pooled:
    """The pooled store effects and each store x product deviation."""

    stores: np.ndarray  # store ids, in the order of the arrays below
    effect: np.ndarray  # eta*: the store's shrunk effect
    effect_var: np.ndarray
    predicted: np.ndarray  # covariates . gamma
    own_weight: np.ndarray  # how much of eta* the store's own data says (0..1)
    tau_store: float
    tau_pair: float
    gamma: np.ndarray
    covariate_names: tuple[str, ...]
    explained: float  # share of the store effects' variance the covariates explain
    deviation: np.ndarray  # (cells,) eta* + u*, before the product's centring
    deviation_var: np.ndarray  # (cells,)
    pair_mean: np.ndarray  # (cells,) what is the pair's own: kappa* x relative price + u*
    pair_var: np.ndarray  # (cells,)
    kappa: tuple[float, float] = (0.0, 0.0)  # the curvature's median and spread over products


def pool(
    product: np.ndarray,
    store: np.ndarray,
    slope: np.ndarray,
    variance: np.ndarray,
    covariates: Mapping[int, Sequence[float]],
    names: Sequence[str] = (),
    *,
    relative: np.ndarray | None = None,
    curvature: np.ndarray | None = None,
    curvature_variance: np.ndarray | None = None,
    rounds: int = 6,
) -> Pooled:
    """Stage 2 (see the module): ``product``, ``store``, ``slope``, ``variance`` per store x
    product (an infinite variance: no slope of its own); ``covariates`` per store id;
    ``relative``: log of the store's regular price over the product's average; ``curvature``
    and its variance: the product's (``_curvature_fit``, the same on each of its rows), pooled
    across products: the store's elasticity moves by 2 x curvature x relative along a demand
    curve that is not constant-elasticity (demand is more elastic where it is dearer)."""
    store_ids = np.unique(np.concatenate([store, np.array(sorted(covariates), dtype=store.dtype)]))
    n_s = len(store_ids)
    si = np.searchsorted(store_ids, store)
    own = np.isfinite(variance) & np.isfinite(slope)
    # Deviations from the product's precision-weighted mean slope.
    w0 = np.where(own, 1.0 / np.where(own, variance, 1.0), 0.0)
    _, pi = np.unique(product, return_inverse=True)
    pi = pi.ravel()
    n_p = int(pi.max()) + 1 if len(pi) else 0
    weighted = np.bincount(pi, w0 * np.where(own, slope, 0.0), n_p)
    r = np.where(own, slope - (weighted / np.maximum(np.bincount(pi, w0, n_p), 1e-12))[pi], 0.0)
    v = np.where(own, variance, np.inf)
    x = np.zeros(len(r)) if relative is None else np.asarray(relative, dtype=np.float64)
    z = _design(store_ids, covariates, len(names))
    kappa, kappa_var, tau_kappa = _curvature(curvature, curvature_variance, pi, n_p)
    target = r - kappa[pi] * x
    tau_pair = 0.0
    for _ in range(rounds):
        w = np.where(own, 1.0 / (v + tau_pair), 0.0)
        total = np.bincount(si, w, n_s)
        hat = np.bincount(si, w * target, n_s) / np.maximum(total, 1e-12)
        hat_var = np.where(total > 0, 1.0 / np.maximum(total, 1e-12), np.inf)
        residual = np.where(own, target - hat[si], 0.0)
        dof = max(int(own.sum()) - int((total > 0).sum()), 1)
        tau_pair = _moment_tau2(residual[own], v[own], dof)
    has = np.isfinite(hat_var)
    tau_store, gamma, gamma_cov = paule_mandel(hat[has], hat_var[has], z[has])
    predicted = z @ gamma
    weight = np.where(has, tau_store / (tau_store + np.where(has, hat_var, 1.0)), 0.0)
    effect = predicted + weight * np.where(has, hat - predicted, 0.0)
    leverage = np.einsum("ij,jk,ik->i", z, gamma_cov, z)
    effect_var = weight * np.where(has, hat_var, 0.0) + (1 - weight) ** 2 * leverage
    effect_var += np.where(has, 0.0, tau_store)
    share = tau_pair / (tau_pair + np.where(own, v, 1.0))
    explained_here = effect[si] + kappa[pi] * x
    pair_mean = np.where(own, share * (r - explained_here), 0.0)
    pair_var = np.where(own, share * np.where(own, v, 0.0), tau_pair) + x * x * kappa_var[pi]
    spread = float(np.var(predicted[has])) if has.sum() > 1 else 0.0
    return Pooled(
        stores=store_ids,
        effect=effect,
        effect_var=effect_var,
        predicted=predicted,
        own_weight=weight,
        tau_store=math.sqrt(tau_store),
        tau_pair=math.sqrt(tau_pair),
        gamma=gamma,
        covariate_names=("intercept", *names),
        explained=spread / (spread + tau_store) if spread + tau_store > 0 else 0.0,
        deviation=explained_here + pair_mean,
        deviation_var=effect_var[si] + pair_var,
        pair_mean=kappa[pi] * x + pair_mean,
        pair_var=pair_var,
        kappa=(float(np.median(kappa)) if n_p else 0.0, math.sqrt(tau_kappa)),
    )


def _curvature(
    curvature: np.ndarray | None, variance: np.ndarray | None, pi: np.ndarray, n_p: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(kappa = 2 x curvature, its variance, tau_kappa^2) per product: each product's own
    estimate pooled across products by a two-part prior, fitted by EM: demand of constant
    elasticity (kappa = 0) or curved (kappa ~ N(m, tau^2)). A product whose own estimate
    cannot say which keeps both in its mean and its variance; one normal prior over both kinds
    would pull the constant products away from 0 and the curved ones toward them."""
    if curvature is None or variance is None:
        return np.zeros(n_p), np.zeros(n_p), 0.0
    raw, raw_var = np.zeros(n_p), np.full(n_p, np.inf)
    raw[pi], raw_var[pi] = 2 * np.asarray(curvature), 4 * np.asarray(variance)
    has = np.isfinite(raw_var) & (raw_var > 0)
    if has.sum() < 3:
        return np.zeros(n_p), np.zeros(n_p), 0.0
    y, v = raw[has], raw_var[has]
    share, m, tau = 0.5, float(np.median(y)), float(np.var(y))
    curved = np.full(len(y), 0.5)
    for _ in range(100):
        flat = (1 - share) * _normal(y, 0.0, v)
        bent = share * _normal(y, m, v + tau)
        curved = bent / np.maximum(flat + bent, 1e-300)
        share = float(np.clip(curved.mean(), 1e-3, 1 - 1e-3))
        w = curved / (v + tau)
        m = float(np.sum(w * y) / max(np.sum(w), 1e-300))
        tau = max(float(np.sum(curved * ((y - m) ** 2 - v)) / max(np.sum(curved), 1e-12)), 0.0)
    shrink = tau / (tau + v)
    m_var = 1.0 / max(float(np.sum(curved / (v + tau))), 1e-12)  # the curved kind's mean's
    bent_mean = m + shrink * (y - m)
    bent_var = shrink * v + (1 - shrink) ** 2 * m_var
    kappa = np.zeros(n_p)
    kappa_var = np.full(n_p, share * (1 - share) * m * m + share * (tau + m_var))
    kappa[has] = curved * bent_mean
    kappa_var[has] = curved * bent_var + curved * (1 - curved) * bent_mean**2
    kappa[~has] = share * m
    return kappa, kappa_var, tau


def _normal(y: np.ndarray, mean: float, var: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (y - mean) ** 2 / var) / np.sqrt(2 * math.pi * var)


def _moment_tau2(residual: np.ndarray, v: np.ndarray, dof: int) -> float:
    """tau^2 with sum(residual^2 / (v + tau^2)) = dof (0 if it never exceeds it)."""
    if not len(residual) or float(np.sum(residual**2 / v)) <= dof:
        return 0.0
    low, high = 0.0, float(np.var(residual)) * 4 + 1e-6
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if float(np.sum(residual**2 / (v + middle))) > dof else (low, middle)
        )
    return (low + high) / 2


def _design(stores: np.ndarray, covariates: Mapping[int, Sequence[float]], k: int) -> np.ndarray:
    """Intercept and the standardised covariates of each store (0, the mean, where unknown)."""
    raw = np.array([covariates.get(int(s), [math.nan] * k) for s in stores], dtype=np.float64)
    raw = raw.reshape(len(stores), k)
    mean = np.nanmean(raw, axis=0) if len(raw) and k else np.zeros(k)
    sd = np.nanstd(raw, axis=0) if len(raw) and k else np.ones(k)
    scaled = (np.where(np.isnan(raw), mean, raw) - mean) / np.where(sd > 0, sd, 1.0)
    return np.column_stack([np.ones(len(stores)), scaled])
