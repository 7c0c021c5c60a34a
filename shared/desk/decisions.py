"""Category managers' decisions on a run's price recommendations: one per product (or store x
product) and run, the first to arrive wins, a repeat of the same request is the same decision.

The decision is claimed create-only (``desk/decisions/<run>/<product>[-s<store>].json``,
``if_generation_match=0``; the decision also in its custom metadata, so that a listing reads
a run's decisions without downloading them) before anything else happens: of two managers
deciding the same product at once exactly one creates it, and both are shown that one; a
double click or a second tab (the same ``request_id``, carried by the form) finds its own
decision and is answered as if it had made it. Decisions are never overwritten, and a new
run's recommendations live under their own run: a decision on an older run stays what it was.

Each decision is then appended to BigQuery (``desk_decisions``, partitioned by day, with its
``decision_id``) by a streaming insert whose ``insertId`` is that id, and marked logged on its
claim (generation-matched); a repeat that finds it unmarked ``LOG_LEASE`` after it was made
(the request that made it crashed) appends it with the same id, so a crash between the two
leaves at worst a row BigQuery's best-effort de-duplication misses, which readers remove by
``decision_id``; a repeat while the first request is still logging leaves it to that one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from google.api_core import exceptions as gexc
from google.cloud import bigquery, storage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import TransientError

Action = Literal["approve", "reject", "override"]
# A repeat leaves the logging to the request that made the decision for this long.
LOG_LEASE = dt.timedelta(seconds=30)
METADATA = "decision"  # the claim's custom metadata key holding the decision (for listings)
SCHEMA = [
    bigquery.SchemaField("decision_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("run_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("product_id", "INTEGER", mode="REQUIRED"),
    bigquery.SchemaField("store_id", "INTEGER"),
    bigquery.SchemaField("action", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("price", "FLOAT"),
    bigquery.SchemaField("note", "STRING"),
    bigquery.SchemaField("decided_by", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("decided_at", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("request_id", "STRING", mode="REQUIRED"),
]


class Decision(BaseModel):
    """One decision: approve the recommended price, reject it (today's stays), or override it
    with another price; ``price`` is the price that applies after approve or override."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    product_id: int = Field(ge=1, le=2**53)
    store_id: int | None = Field(default=None, ge=1, le=2**53)
    action: Action
    price: float | None = Field(default=None, gt=0, lt=1e6)
    note: str = Field(default="", max_length=500)
    decided_by: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    decided_at: dt.datetime
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")

    @model_validator(mode="after")
    def _price_where_needed(self) -> Decision:
        if self.action in ("approve", "override") and self.price is None:
            raise ValueError(f"{self.action} needs the price that applies")
        if self.action == "reject" and self.price is not None:
            raise ValueError("a rejection keeps today's price: give no price")
        return self

    @property
    def key(self) -> str:
        """What is decided: the product, or one store's price of it."""
        return (
            f"{self.product_id}" if self.store_id is None else f"{self.product_id}-s{self.store_id}"
        )

    @property
    def decision_id(self) -> str:
        return f"{self.run_id}/{self.key}"

    def row(self) -> dict:
        return {"decision_id": self.decision_id, **self.model_dump(mode="json")}


@dataclass(frozen=True)
class Decided:
    """The decision that stands, whether this request made it, and whether it was a repeat
    of one this person already made."""

    decision: Decision
    won: bool
    repeated: bool = False


class DecisionLedger:
    """Decisions under ``gs://<bucket>/<prefix>/``, logged to ``table`` when one is given."""

    def __init__(
        self,
        gcs: storage.Client,
        bucket: str,
        prefix: str = "desk/decisions",
        *,
        bq: bigquery.Client | None = None,
        table: str | None = None,
        readers: int = 16,
    ) -> None:
        self.bucket = gcs.bucket(bucket)
        self.prefix = prefix.strip("/")
        self.bq, self.table = bq, table
        self.readers = readers  # parallel downloads of decisions not read yet
        # A decision never changes once made: each is downloaded once per process.
        self._known: dict[str, Decision] = {}
        self._table_ready = False

    def _blob(self, run_id: str, key: str) -> storage.Blob:
        return self.bucket.blob(f"{self.prefix}/{run_id}/{key}.json")

    def ensure_table(self) -> None:
        """The log table, partitioned by the day of the decision (created if missing)."""
        if self.bq is None or self.table is None:
            return
        table = bigquery.Table(self.table, schema=SCHEMA)
        table.time_partitioning = bigquery.TimePartitioning(field="decided_at")
        self.bq.create_table(table, exists_ok=True)

    def decide(self, decision: Decision) -> Decided:
        """Record ``decision`` unless one stands for its run and product (see the module)."""
        blob = self._blob(decision.run_id, decision.key)
        body = json.dumps({"decision": decision.model_dump(mode="json"), "logged": False})
        blob.metadata = {METADATA: decision.model_dump_json()}
        try:
            blob.upload_from_string(body, content_type="application/json", if_generation_match=0)
        except gexc.PreconditionFailed:
            standing, logged, generation = self._read(blob)
            mine = standing.request_id == decision.request_id
            made = blob.time_created or dt.datetime.now(dt.UTC)
            if mine and not logged and dt.datetime.now(dt.UTC) - made > LOG_LEASE:
                # Its first request is long gone without logging it (it crashed): log it now.
                self._log(standing, blob, generation)
            return Decided(standing, won=mine, repeated=mine)
        self._log(decision, blob, int(blob.generation or 0))
        return Decided(decision, won=True)

    def _read(self, blob: storage.Blob) -> tuple[Decision, bool, int]:
        blob.reload()
        found = json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
        return Decision.model_validate(found["decision"]), bool(found["logged"]), blob.generation

    def _log(self, decision: Decision, blob: storage.Blob, generation: int) -> None:
        if self.bq is None or self.table is None:
            return
        if not self._table_ready:  # made on first use: the service may start before its dataset
            self.ensure_table()
            self._table_ready = True
        errors = self.bq.insert_rows_json(
            self.table, [decision.row()], row_ids=[decision.decision_id]
        )
        if errors:
            raise TransientError(f"decision {decision.decision_id} not logged: {errors}")
        marked = json.dumps({"decision": decision.model_dump(mode="json"), "logged": True})
        blob.metadata = {METADATA: decision.model_dump_json()}
        with contextlib.suppress(gexc.PreconditionFailed):  # a repeat marked it first
            blob.upload_from_string(
                marked, content_type="application/json", if_generation_match=generation
            )

    def runs(self) -> list[str]:
        """The runs that have decisions."""
        listing = self.bucket.client.list_blobs(
            self.bucket, prefix=f"{self.prefix}/", delimiter="/"
        )
        for _ in listing:  # the prefixes are known once the listing is read
            pass
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in listing.prefixes)

    def previous(self, run_id: str) -> tuple[str, dict[str, Decision]] | None:
        """The run before ``run_id`` with decisions (the one decided on most recently) and
        its decisions, for showing what changed."""
        found = None
        for other in self.runs():
            if other == run_id:
                continue
            decisions = self.of_run(other)
            latest = max((d.decided_at for d in decisions.values()), default=None)
            if latest is not None and (found is None or latest > found[0]):
                found = (latest, other, decisions)
        return (found[1], found[2]) if found else None

    def of_run(self, run_id: str) -> dict[str, Decision]:
        """Every decision standing for ``run_id``, by key, from one listing: each claim carries
        its decision in its custom metadata, which the listing returns (a review page of
        2,000 products with 500 decisions otherwise downloads 500 objects). A claim without
        it (written before it was kept there) is downloaded, once per process, in parallel."""
        blobs = list(self.bucket.client.list_blobs(self.bucket, prefix=f"{self.prefix}/{run_id}/"))
        unread = []
        for blob in blobs:
            if blob.name in self._known:
                continue
            kept = (blob.metadata or {}).get(METADATA)
            if kept:
                self._known[blob.name] = Decision.model_validate_json(kept)
            else:
                unread.append(blob)
        if unread:
            with ThreadPoolExecutor(max_workers=min(self.readers, len(unread))) as pool:
                bodies = list(pool.map(lambda blob: blob.download_as_bytes(), unread))
            for blob, body in zip(unread, bodies, strict=True):
                found = json.loads(body)["decision"]
                self._known[blob.name] = Decision.model_validate(found)
        return {(d := self._known[blob.name]).key: d for blob in blobs}
