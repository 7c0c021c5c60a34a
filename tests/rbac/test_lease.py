"""One reconciler at a time (issue 25, item 1): the lease on the GCS emulator and locally."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from shared.rbac.lease import FileLease, GcsLease, Holder, LeaseHeld, LeaseLost


@pytest.fixture
def bucket(stack, settings):
    from shared.clients import storage_client

    return storage_client(settings).bucket(stack.names.bucket("data"))


def test_of_runs_starting_at_once_exactly_one_holds_the_lease(bucket):
    lease = GcsLease(bucket, f"rbac-{uuid.uuid4().hex[:8]}/lease.json")
    start, won, refused = threading.Barrier(8), [], []
    release = threading.Event()

    def contender() -> None:
        start.wait()
        try:
            with lease.hold():
                won.append(1)
                release.wait(30)
        except LeaseHeld as exc:
            refused.append(str(exc))
            if len(refused) == 7:
                release.set()

    threads = [threading.Thread(target=contender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1 and len(refused) == 7
    assert all("another reconciler run holds the lease gs://" in r for r in refused)
    assert all(" on " in r and "expires" in r and "changed nothing" in r for r in refused)
    assert bucket.get_blob(lease.path) is None  # released: the next run takes it
    with lease.hold():
        assert bucket.get_blob(lease.path) is not None


def test_an_expired_lease_is_taken_over_and_a_lost_one_stops_the_run(bucket):
    path = f"rbac-{uuid.uuid4().hex[:8]}/lease.json"
    dead = Holder("a run that died", "dead", time.time() - 700, time.time() - 100)
    bucket.blob(path).upload_from_string(dead.dumps())
    lease = GcsLease(bucket, path, ttl_s=0)  # every renewal writes
    with lease.hold() as renew:
        mine = Holder.loads(bucket.blob(path).download_as_bytes())
        assert mine is not None and mine.run != "dead" and mine.until >= time.time() - 1
        renew()  # still ours: renewed in place
        # another run takes it over (it judged ours expired)
        bucket.blob(path).upload_from_string(Holder.me(600).dumps())
        with pytest.raises(LeaseLost, match="taken over while this run held it"):
            renew()
    assert bucket.get_blob(path) is not None  # the other run's lease is not released by us


def test_the_local_lease_refuses_a_second_run_naming_the_first(tmp_path):
    lease = FileLease(tmp_path / "owned-roles.json.lock")
    second = FileLease(tmp_path / "owned-roles.json.lock")
    refused = pytest.raises(
        LeaseHeld, match=r"holds the lock .*owned-roles.json.lock: \S+( rbac)? on \S+ pid \d+"
    )
    with lease.hold(), refused, second.hold():
        pass
    with lease.hold():  # released when the first run ended
        pass
