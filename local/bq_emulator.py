"""bqemulator, with read sessions that expire the way the real service's do.

bqemulator keeps every Storage Read session, and the session's copy of its table, for the life
of the process; the real service expires a session after 6 hours. A benchmark over millions of
rows creates hundreds of sessions and ran the emulator out of memory (21.8 GB, then the kernel's
OOM killer, in the middle of ``bench.fetch_bench``). Here the sessions live in a store that keeps
the most recently used within a memory budget (:data:`SESSION_BUDGET_MB`; always the last 4
whatever their size) and drops the least recently used first. A read
of a dropped session gets NOT_FOUND, what the real service answers for an expired one.

``python -m local.bq_emulator start ...`` takes bqemulator's own arguments.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

KEEP_ALWAYS = 4


def _size(state: Any) -> int:
    table = getattr(state, "table", None)
    return int(getattr(table, "nbytes", 0) or 0)


class SessionStore(OrderedDict):
    """A dict of read sessions that forgets the least recently used beyond a byte budget."""

    def __init__(self, budget_bytes: int, keep: int = KEEP_ALWAYS) -> None:
        super().__init__()
        self.budget_bytes, self.keep = budget_bytes, keep
        self.dropped = 0
        self._lock = threading.RLock()

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)
            self.move_to_end(key)
            total = sum(_size(s) for s in self.values())
            while len(self) > self.keep and total > self.budget_bytes:
                _name, oldest = self.popitem(last=False)
                total -= _size(oldest)
                self.dropped += 1

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key not in self:
                return default
            self.move_to_end(key)
            return super().__getitem__(key)

    def values(self) -> list[Any]:  # type: ignore[override]  # a snapshot, under the lock
        with self._lock:
            return list(super().values())


SESSION_BUDGET_MB = 4096


def install(budget_mb: int) -> SessionStore:
    """Replace bqemulator's session dict with a bounded store (before it serves anything)."""
    from bqemulator.streaming import read_session

    store = SessionStore(budget_mb * 2**20)
    read_session._SESSIONS = store  # type: ignore[assignment]
    return store


def main() -> int:
    from bqemulator.cli import main as bqemulator_main

    install(SESSION_BUDGET_MB)
    sys.argv[0] = "bqemulator"
    return int(bqemulator_main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
