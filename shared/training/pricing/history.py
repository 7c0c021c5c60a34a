"""Each product's weekly history across the chain, for the people who decide its price: units
sold, the average price paid (promotions included) and the share of units sold on promotion,
week by week (weeks start on Monday).

Each pricing task writes its products' weeks beside its shard (``task_tables``, ``history``);
the merge joins them and puts the newest ``weeks`` of every product in the artifact, one list
of week starts and per product one value per week (None where it sold nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.cloud import storage

from shared.training import task_tables
from shared.training.dataset import Shard

WEEKS = 104  # two years: a season against the same one a year before
SCHEMA = pa.schema(
    [
        ("product_id", pa.int64()),
        ("week", pa.date32()),
        ("units", pa.float64()),
        ("revenue", pa.float64()),
        ("promo_units", pa.float64()),
    ]
)
_EPOCH = dt.date(1970, 1, 1)
STEM = "history"  # each task's weeks (task_tables)


def weekly(table: pa.Table) -> pa.Table:
    """Transactions (``date``, ``product_id``, ``units``, ``revenue``, ``promo_id``) summed to
    product x week, across stores."""
    if table.num_rows == 0:
        return SCHEMA.empty_table()
    days = pc.cast(table["date"], pa.int32()).to_numpy().astype(np.int64)
    monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday
    product = table["product_id"].to_numpy().astype(np.int64)
    units = table["units"].to_numpy().astype(np.float64)
    revenue = table["revenue"].to_numpy().astype(np.float64)
    promo = table["promo_id"].is_valid().to_numpy(zero_copy_only=False)
    keys, inverse = np.unique(np.stack([product, monday], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=len(keys))

    return pa.table(
        {
            "product_id": keys[:, 0],
            "week": pa.array(keys[:, 1].astype(np.int32), pa.int32()).cast(pa.date32()),
            "units": total(units),
            "revenue": total(revenue),
            "promo_units": total(np.where(promo, units, 0.0)),
        },
        schema=SCHEMA,
    )


def write(gcs: storage.Client, output: str, shard: Shard, table: pa.Table) -> None:
    """A task's products' weeks beside its shard."""
    task_tables.write(gcs, output, STEM, shard, weekly(table))


def collect(gcs: storage.Client, output: str, count: int, weeks: int = WEEKS) -> dict[str, Any]:
    """Every task's weeks as the artifact carries them: ``{"weeks": [iso Monday, ...],
    "products": {product_id: {"units": [...], "price": [...], "promo_share": [...]}}}``;
    the newest ``weeks`` weeks (fewer when the data is shorter). A task that wrote none adds
    nothing."""
    found = [
        t.cast(SCHEMA) for t in task_tables.read_all(gcs, output, STEM, count) if t is not None
    ]
    return payload(pa.concat_tables([SCHEMA.empty_table(), *found]), weeks)


def payload(table: pa.Table, weeks: int = WEEKS) -> dict[str, Any]:
    """``table`` (``SCHEMA``) as the artifact carries it (see ``collect``)."""
    if table.num_rows == 0:
        return {"weeks": [], "products": {}}
    day = pc.cast(table["week"], pa.int32()).to_numpy().astype(np.int64)
    last = int(day.max())
    axis = np.arange(max(int(day.min()), last - 7 * (weeks - 1)), last + 1, 7)
    weeks = len(axis)
    keep = day >= axis[0]
    day = day[keep]
    product = table["product_id"].to_numpy()[keep]
    units = table["units"].to_numpy()[keep]
    revenue = table["revenue"].to_numpy()[keep]
    promo = table["promo_units"].to_numpy()[keep]
    slot = (day - axis[0]) // 7
    # One row per product, one column per week, filled at once (a pass per product over
    # every row took 58 s for 20,000 products).
    ids, row = np.unique(product, return_inverse=True)
    sold, paid, share = (np.full((len(ids), weeks), np.nan) for _ in range(3))
    sold[row, slot] = units
    with np.errstate(invalid="ignore", divide="ignore"):
        paid[row, slot] = np.where(units > 0, revenue / units, np.nan)
        share[row, slot] = np.where(units > 0, promo / units, np.nan)
    out = {
        str(int(pid)): {
            "units": _rounded(sold[i], 1),
            "price": _rounded(paid[i], 2),
            "promo_share": _rounded(share[i], 2),
        }
        for i, pid in enumerate(ids)
    }
    dates = [(_EPOCH + dt.timedelta(days=int(d))).isoformat() for d in axis]
    return {"weeks": dates, "products": out}


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if v != v else round(v, digits) for v in values.tolist()]  # v != v: NaN
