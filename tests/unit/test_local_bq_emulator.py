"""The BigQuery emulator's read sessions expire like the real service's instead of piling up."""

from types import SimpleNamespace

import pyarrow as pa

from local.bq_emulator import SessionStore


def _session(mb: int) -> SimpleNamespace:
    return SimpleNamespace(table=pa.table({"x": pa.array(bytes(mb * 2**20), pa.uint8())}))


def test_the_least_recently_used_sessions_go_first_once_over_budget():
    store = SessionStore(budget_bytes=10 * 2**20, keep=2)
    for name in "abcd":
        store[name] = _session(3)  # 12 MB > 10 MB: "a" goes
    assert list(store) == ["b", "c", "d"] and store.dropped == 1
    assert store.get("b") is not None  # read: now the most recent
    store["e"] = _session(3)
    assert list(store) == ["d", "b", "e"]
    assert store.get("a") is None  # what a read of an expired session finds


def test_the_latest_sessions_are_kept_whatever_their_size():
    store = SessionStore(budget_bytes=2**20, keep=2)
    store["a"], store["b"], store["c"] = _session(5), _session(5), _session(5)
    assert list(store) == ["b", "c"]
    assert len(store.values()) == 2
