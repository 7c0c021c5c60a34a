"""The panel a product is fitted on: weekly product x store cells, the weeks with no sales,
and the regular price, baseline volume and unit cost read from it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.training.pricing.config import RECENT_WEEKS


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
    # The shelf price before any promotion, where the source has it.
    regular = (
        table["regular_price"].fill_null(np.nan).to_numpy(zero_copy_only=False)
        if "regular_price" in table.column_names
        else np.full(len(units), np.nan)
    )
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
        "regular": total(regular * units) / np.maximum(total(units), 1e-12),
        "price": total(revenue) / np.maximum(total(units), 1e-12),
    }


def with_zero_weeks(cells: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One product's cells plus a zero-unit cell for every store-week without a sale inside
    that store's selling range (first to last week with a sale), at the chain's median
    non-promoted price that week.

    Transactions record sales, never a week that sold nothing; leaving those weeks out keeps
    only the lucky ones at high prices and biases the elasticity toward zero, most where
    volumes are small (on a real household panel, by half or more).
    """
    week, store = cells["week"], cells["store_id"]
    regular_rows = cells["promo"] < 0.5
    chain_price: dict[int, float] = {}
    chain_day: dict[int, float] = {}
    for w in np.unique(week):
        rows = week == w
        pool = rows & regular_rows
        chain_day[int(w)] = float(cells["day"][rows].mean())
        if pool.any():
            chain_price[int(w)] = float(np.median(cells["price"][pool]))
    seen = set(zip(store.tolist(), week.tolist(), strict=True))
    extra: list[tuple[int, int, float, float]] = []
    for s in np.unique(store).tolist():
        weeks = week[store == s]
        for w in range(int(weeks.min()), int(weeks.max()) + 1):
            if (s, w) not in seen and w in chain_price:
                extra.append((s, w, chain_price[w], chain_day[w]))
    if not extra:
        return cells
    n = len(extra)
    added = {
        "product_id": np.full(n, cells["product_id"][0]),
        "store_id": np.array([e[0] for e in extra], dtype=store.dtype),
        "week": np.array([e[1] for e in extra], dtype=week.dtype),
        "units": np.zeros(n),
        "revenue": np.zeros(n),
        "promo": np.zeros(n),
        "feature": np.zeros(n),
        "display": np.zeros(n),
        "day": np.array([e[3] for e in extra]),
        "regular": np.array([e[2] for e in extra]),
        "price": np.array([e[2] for e in extra]),
        "post_deal": np.zeros(n),
    }
    return {k: np.concatenate([v, added[k]]) for k, v in cells.items()}


def _modal(values: np.ndarray, weights: np.ndarray) -> float:
    """The value (to the cent) carrying the most weight."""
    cents = np.round(values * 100).astype(np.int64)
    found, idx = np.unique(cents, return_inverse=True)
    return float(found[np.argmax(np.bincount(idx.ravel(), weights=weights))]) / 100


def regular_price(cells: dict[str, np.ndarray]) -> float:
    """The product's regular (non-promoted) shelf price now: the source's ``regular_price``
    where it has one, else the modal price of non-promoted cells; both over the last
    ``RECENT_WEEKS`` weeks with sales (all weeks if none of them is regular)."""
    week, units = cells["week"], cells["units"]
    recent = week > week.max() - RECENT_WEEKS
    given = cells["regular"]
    if np.isfinite(given[recent]).any():
        rows = recent & np.isfinite(given)
        return _modal(given[rows], units[rows])
    price = cells["price"]
    regular = cells["promo"] < 0.5
    rows = recent & regular if (recent & regular).any() else regular if regular.any() else recent
    return _modal(price[rows], units[rows])


def baseline(cells: dict[str, np.ndarray]) -> tuple[float, float]:
    """(regular price, units a week at the regular price) over the last ``RECENT_WEEKS`` weeks
    with sales: the rate of regular-price store-weeks (no deal, not the week after one) times
    the store-weeks a week. Deal weeks' units are not the regular price's volume (on a real
    panel 97% of a brand's recent units sold on deal); the fitted model's counterfactual
    (``estimate.Fit.baseline``) replaces this where the product is estimated."""
    week, store, units = cells["week"], cells["store_id"], cells["units"]
    recent = week > week.max() - RECENT_WEEKS
    weeks = len(np.unique(week[recent]))
    key = store * 100_000 + week
    footprint = len(np.unique(key[recent])) / weeks
    quiet = recent & (cells["promo"] < 0.5) & (cells.get("post_deal", 0 * units) < 0.5)
    if not quiet.any():
        return regular_price(cells), float(units[recent].sum()) / weeks
    rate = float(units[quiet].sum()) / len(np.unique(key[quiet]))
    return regular_price(cells), rate * footprint


def with_regular_and_after_deal(cells: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One product's cells with ``regular`` filled where the source has none (a regular cell's
    own price; a deal's, the chain's median regular price that week, else the store's) and
    ``post_deal`` (1 for a regular cell in a store whose previous week had a deal)."""
    week, store, promo = cells["week"], cells["store_id"], cells["promo"] >= 0.5
    regular = cells["regular"].copy()
    missing = ~np.isfinite(regular)
    if missing.any():
        price = cells["price"]
        regular[missing & ~promo] = price[missing & ~promo]
        fallback = float(np.median(price[~promo])) if (~promo).any() else float(price.max())
        by_week = {
            int(w): float(np.median(price[~promo & (week == w)])) for w in np.unique(week[~promo])
        }
        by_store = {
            int(s): float(np.median(price[~promo & (store == s)])) for s in np.unique(store[~promo])
        }
        for i in np.flatnonzero(missing & promo):
            regular[i] = by_week.get(int(week[i]), by_store.get(int(store[i]), fallback))
        regular = np.maximum(regular, cells["price"])
    dealt = set(zip(store[promo].tolist(), (week[promo] + 1).tolist(), strict=True))
    after = np.array(
        [(s, w) in dealt for s, w in zip(store.tolist(), week.tolist(), strict=True)], dtype=bool
    )
    return {**cells, "regular": regular, "post_deal": (after & ~promo).astype(np.float64)}


def resolve_cost(
    known: float | None, cost_ratio: float | None, regular: float
) -> tuple[float | None, str | None]:
    """(unit cost, where from): the products table's, else ``cost_ratio`` x the regular price
    (an assumption, said so), else none."""
    if known is not None:
        return known, "table"
    if cost_ratio is not None:
        return round(cost_ratio * regular, 4), "assumed"
    return None, None
