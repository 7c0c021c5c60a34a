"""One reconciler at a time: a lease the function and the CLI take before they write.

On GCS the lease is one small object beside the ledger, created only if absent
(``if_generation_match=0``); it names its holder and an expiry, is renewed as the run makes
progress, and is released by deleting exactly the version this run wrote. A run that finds
the lease held by a live holder changes nothing and says who holds it; one that finds it
expired (its holder died) takes it over, again only on the version it read. Locally (the
CLI's ``--state`` file) the lease is an exclusive ``flock`` on a file beside it, which the
kernel releases when its holder dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from shared.errors import TransientError
from shared.log import get_logger

if TYPE_CHECKING:
    from google.cloud import storage

log = get_logger("shared.rbac.lease")
TTL_S = 600.0  # longer than the function's timeout; renewed as the run goes


class LeaseHeld(TransientError):
    """Another reconciler run holds the lease: this run changed nothing."""


class LeaseLost(TransientError):
    """The lease was taken over while this run held it (it outlived its expiry): the run
    stops before its next write."""


class Lease(Protocol):
    def hold(self) -> contextlib.AbstractContextManager[Callable[[], None]]: ...


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, as written into it."""

    who: str
    run: str
    since: float
    until: float

    @classmethod
    def me(cls, ttl_s: float) -> Holder:
        from shared.settings import deployable_name

        name = deployable_name()
        now, label = time.time(), "retail rbac" if name == "unknown" else name
        who = f"{label} on {socket.gethostname()} pid {os.getpid()}"
        return cls(who, uuid.uuid4().hex[:12], now, now + ttl_s)

    def renewed(self, ttl_s: float) -> Holder:
        return Holder(self.who, self.run, self.since, time.time() + ttl_s)

    def describe(self) -> str:
        return f"{self.who} (run {self.run}, since {_utc(self.since)}, expires {_utc(self.until)})"

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, text: str | bytes) -> Holder | None:
        try:
            found = json.loads(text)
            return cls(str(found["who"]), str(found["run"]), float(found["since"]),
                       float(found["until"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as expired (a lease is only a lock)


@dataclass
class _Held:
    holder: Holder
    generation: int
    written: float  # monotonic time of the last write


def _utc(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class GcsLease:
    """The lease as ``gs://<bucket>/<path>`` (``rbac/lease.json`` beside the ledger)."""

    def __init__(self, bucket: storage.Bucket, path: str, ttl_s: float = TTL_S) -> None:
        self.bucket, self.path, self.ttl_s = bucket, path, ttl_s
        self.where = f"gs://{bucket.name}/{path}"

    def _write(self, holder: Holder, generation: int) -> int | None:
        """Write ``holder`` only over ``generation`` (0: only if absent); its new generation,
        or None when the object was not at that generation."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self.path)
        try:
            blob.upload_from_string(
                holder.dumps(), content_type="application/json", if_generation_match=generation
            )
        except gexc.PreconditionFailed:
            return None
        return int(blob.generation)

    def acquire(self) -> tuple[Holder, int]:
        me = Holder.me(self.ttl_s)
        for _ in range(5):
            generation = self._write(me, 0)
            if generation is not None:
                return me, generation
            blob = self.bucket.get_blob(self.path)
            if blob is None:
                continue  # released meanwhile: try to create it again
            other = Holder.loads(blob.download_as_bytes())
            if other is not None and other.until > time.time():
                raise LeaseHeld(
                    f"another reconciler run holds the lease {self.where}: "
                    f"{other.describe()}; this run changed nothing (the next tick tries again; "
                    "if that run died, the lease ends when it expires, or delete the object)"
                )
            generation = self._write(me, int(blob.generation))
            if generation is not None:
                log.warning(
                    "rbac lease %s taken over from %s (expired)",
                    self.where,
                    other.describe() if other else "an unreadable lease",
                )
                return me, generation
        raise LeaseHeld(f"the lease {self.where} kept changing under this run; try again")

    @contextlib.contextmanager
    def hold(self) -> Iterator[Callable[[], None]]:
        """Hold the lease for the block; yields ``renew``, to call as the run makes progress
        (it writes only once a third of the lease has passed; ``LeaseLost`` if taken over)."""
        from google.api_core import exceptions as gexc

        holder, generation = self.acquire()
        held = _Held(holder, generation, time.monotonic())

        def renew() -> None:
            if time.monotonic() - held.written < self.ttl_s / 3:
                return
            fresh = held.holder.renewed(self.ttl_s)
            got = self._write(fresh, held.generation)
            if got is None:
                raise LeaseLost(
                    f"the lease {self.where} was taken over while this run held it; it stopped "
                    "before its next write (the next run finishes the work)"
                )
            held.holder, held.generation, held.written = fresh, got, time.monotonic()

        try:
            yield renew
        finally:
            # Only the version this run wrote (GCS enforces the precondition; the read
            # first keeps an emulator that ignores it on DELETE from releasing another's).
            current = self.bucket.get_blob(self.path)
            if current is not None and int(current.generation) == held.generation:
                with contextlib.suppress(gexc.PreconditionFailed, gexc.NotFound):
                    current.delete(if_generation_match=held.generation)


class FileLease:
    """The lease as an exclusive lock on a local file (released by the kernel on exit)."""

    def __init__(self, path: str | Path) -> None:
        self.file = Path(path)

    @contextlib.contextmanager
    def hold(self) -> Iterator[Callable[[], None]]:
        import fcntl

        handle: IO[str] = open(self.file, "a+")  # noqa: SIM115 - closed below
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                other = Holder.loads(handle.read())
                raise LeaseHeld(
                    f"another reconciler run holds the lock {self.file}: "
                    f"{other.describe() if other else 'unknown holder'}; this run changed "
                    "nothing"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(Holder.me(TTL_S).dumps())
            handle.flush()
            yield lambda: None
        finally:
            handle.close()


def lease_beside(ledger_path: str, bucket: storage.Bucket | None = None) -> GcsLease | FileLease:
    """The lease of the ledger at ``ledger_path``, so every run sharing a ledger shares it:
    ``lease.json`` in the ledger's folder of ``bucket``, or ``<ledger>.lock`` locally."""
    if bucket is None:
        return FileLease(ledger_path + ".lock")
    folder = ledger_path.rsplit("/", 1)[0] + "/" if "/" in ledger_path else ""
    return GcsLease(bucket, folder + "lease.json")
