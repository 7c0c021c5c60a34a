"""Typed contracts for every message on the platform's topics (see DESIGN.md, fetch pipeline).

Each topic has one model. ``parse`` turns raw Pub/Sub bytes into the model or raises
:class:`~shared.errors.MalformedMessage` naming the first bad field; ``dump`` serialises.
Unknown fields are refused so a typo in a request is an error, not a silently ignored option.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from shared.errors import MalformedMessage
from shared.identifiers import GcsUri, TableRef, check_column, check_run_id


def _table(value: str) -> str:
    TableRef.parse(value)
    return value


def _gcs(value: str) -> str:
    return str(GcsUri.parse(value))


Column = Annotated[str, AfterValidator(check_column)]
RunId = Annotated[str, AfterValidator(check_run_id)]
Table = Annotated[str, AfterValidator(_table)]
GcsPrefix = Annotated[str, AfterValidator(_gcs)]
# Typed literal values only: a filter value is data, never SQL text. Dates and times arrive as
# ISO strings and are checked against the column's type when the filter is rendered.
Scalar = bool | int | float | dt.date | dt.datetime | str


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STRING_VALUE = 10_000


def _clean_text(value: str, what: str) -> str:
    """Text BigQuery and every client can carry: no control characters (tab and newline
    aside), no lone UTF-16 surrogates (not encodable as UTF-8)."""
    for ch in value:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"{what} holds a lone UTF-16 surrogate (U+{code:04X})")
        if (code < 0x20 and ch not in "\t\n\r") or code == 0x7F:
            raise ValueError(f"{what} holds a control character (U+{code:04X})")
    return value


def _scalar(value: Any) -> Scalar:
    if not isinstance(value, bool | int | float | str | dt.date):
        raise ValueError("a filter value must be a string, number, boolean or date")
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64_MIN <= value <= INT64_MAX
    ):
        raise ValueError("an integer filter value must fit BigQuery's INT64")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a filter value must be a finite number")
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE:
            raise ValueError(f"a filter value is at most {MAX_STRING_VALUE} characters")
        _clean_text(value, "a filter value")
    return value


FilterValue = Annotated[Any, AfterValidator(_scalar)]


class Contract(BaseModel):
    """Base of all message models: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


_ARITY = {
    "=": 1,
    "!=": 1,
    "<": 1,
    "<=": 1,
    ">": 1,
    ">=": 1,
    "in": -1,
    "not in": -1,
    "between": 2,
    "is null": 0,
    "is not null": 0,
}
Operator = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null"
]


class Predicate(Contract):
    """One condition of a row filter: ``column op values``; filters AND their predicates."""

    column: Column
    op: Operator
    values: list[FilterValue] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _arity(self) -> Predicate:
        want = _ARITY[self.op]
        if want == -1 and not self.values:
            raise ValueError(f"operator {self.op!r} needs at least one value")
        if want >= 0 and len(self.values) != want:
            raise ValueError(f"operator {self.op!r} takes {want} value(s), got {len(self.values)}")
        return self


Strategy = Literal["streams", "chunk_tables"]
TrainingJob = Literal["pricing", "promotions"]


class FetchRequest(Contract):
    """``fetch-requests``: fetch a whole table (or a query's result) into Parquet on GCS."""

    run_id: RunId | None = None
    table: Table | None = None
    query: str | None = Field(default=None, min_length=1, max_length=1_000_000)
    columns: list[Column] | None = Field(default=None, min_length=1)
    row_filter: list[Predicate] = Field(default_factory=list, max_length=100)
    strategy: Strategy = "streams"
    index_columns: list[Column] = Field(default_factory=list, max_length=4)
    destination: GcsPrefix
    parallelism: int = Field(default=8, ge=1, le=1000)
    train: list[TrainingJob] = Field(default_factory=list)

    @model_validator(mode="after")
    def _source(self) -> FetchRequest:
        for name, cols in (("columns", self.columns or []), ("index_columns", self.index_columns)):
            seen = {c.lower() for c in cols}  # BigQuery column names are case-insensitive
            if len(seen) != len(cols):
                raise ValueError(f"{name} names a column twice")
        if self.query is not None:
            _clean_text(self.query, "the query")
        if (self.table is None) == (self.query is None):
            raise ValueError("exactly one of 'table' and 'query' must be given")
        if self.query is not None and self.strategy != "chunk_tables":
            raise ValueError("a query source needs strategy 'chunk_tables'")
        if self.query is not None and self.row_filter:
            raise ValueError("row_filter applies to a table source; put conditions in the query")
        return self


class ChunkBounds(Contract):
    """Half-open range ``lower <= index < upper`` on the index columns (None = unbounded)."""

    lower: list[FilterValue] | None = None
    upper: list[FilterValue] | None = None


class ChunkSpec(Contract):
    """``fetch-chunks``: one chunk of a ``chunk_tables`` run to materialise."""

    run_id: RunId
    chunk: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    bounds: ChunkBounds
    request: FetchRequest


class PartInfo(Contract):
    """One Parquet part written to GCS."""

    uri: GcsPrefix
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    crc32c: str


class ChunkReady(Contract):
    """``fetch-chunk-ready``: one readable unit, a read stream from ``offset`` on."""

    run_id: RunId
    chunk: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    stream: str = Field(min_length=1, max_length=2048)
    offset: int = Field(default=0, ge=0)
    # Rows per Parquet part, fixed for the run at planning (part k holds rows [k*P, (k+1)*P)).
    part_rows: int | None = Field(default=None, ge=1)
    destination: GcsPrefix
    # Parts written by earlier invocations of this chunk (a worker near its time limit hands on).
    parts: list[PartInfo] = Field(default_factory=list)
    temp_table: Table | None = None


class ChunkDone(Contract):
    """``fetch-chunk-done``: a chunk is fully in Parquet."""

    run_id: RunId
    chunk: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    destination: GcsPrefix
    parts: list[PartInfo]
    rows: int = Field(ge=0)


class FetchComplete(Contract):
    """``fetch-complete``: a run's manifest exists; sent exactly once per run."""

    run_id: RunId
    manifest_uri: GcsPrefix
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    parts: int = Field(ge=0)
    train: list[TrainingJob] = Field(default_factory=list)


class TrainingTick(Contract):
    """``training-schedule``: a Scheduler tick asking for a training job on fresh data.

    The tick becomes a fetch request with ``train=[job]`` and a run id of job and date, so a
    tick delivered twice plans one run (the plan is create-only).
    """

    job: TrainingJob
    table: Table
    columns: list[Column] | None = Field(default=None, min_length=1)
    parallelism: int = Field(default=8, ge=1, le=1000)
    date: dt.date | None = None


class RbacTrigger(BaseModel):
    """``rbac-sync``: anything asks for a full reconcile. A Scheduler tick sends
    ``{"reason": "tick"}`` (``"force": true`` skips the unchanged-state shortcut); a Workspace
    audit-log entry routed by the log sink arrives as it is, and its fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reason: str = Field(default="event", max_length=100)
    force: bool = False


M = TypeVar("M", bound=BaseModel)


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ".".join(str(p) for p in loc if not str(p).startswith("function-after"))
    return path or "<message>"


# Limits checked before parsing: a message is small metadata, never deeply nested.
MAX_MESSAGE_BYTES = 2_000_000
MAX_DEPTH = 32


class DuplicateKey(ValueError):
    """A JSON object names one key twice: which value counts would be an accident."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :func:`json.loads` that refuses a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"key {key!r} is given twice")
        out[key] = value
    return out


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """True when brackets nest deeper than ``limit`` (outside strings): checked by scanning,
    so a 10,000-level document never reaches the recursive JSON parser."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse(model: type[M], data: bytes | str | dict, topic: str) -> M:
    """Decode ``data`` (JSON bytes or an already decoded dict) into ``model``."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_MESSAGE_BYTES:
            raise MalformedMessage(topic, "<body>", f"larger than {MAX_MESSAGE_BYTES} bytes")
        try:
            text = data.decode() if isinstance(data, bytes) else data
        except UnicodeDecodeError as exc:
            raise MalformedMessage(topic, "<body>", f"not UTF-8: {exc}") from None
        if too_deep(text):
            raise MalformedMessage(topic, "<body>", f"nested deeper than {MAX_DEPTH} levels")
        try:
            data = json.loads(text, object_pairs_hook=unique_keys)
        except DuplicateKey as exc:
            raise MalformedMessage(topic, "<body>", str(exc)) from None
        except (json.JSONDecodeError, RecursionError) as exc:
            raise MalformedMessage(topic, "<body>", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage(
            topic, "<body>", f"expected a JSON object, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MalformedMessage(topic, _field_path(first["loc"]), first["msg"]) from None


def dump(message: Contract) -> bytes:
    """Serialise a message for publishing."""
    return message.model_dump_json(exclude_none=True).encode()
