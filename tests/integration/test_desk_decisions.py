"""Category managers' decisions on the GCS and BigQuery emulators: the first wins, a repeat is
the same decision, concurrent requests at once make one, and BigQuery logs it once."""

import datetime as dt
import threading
import uuid

import pytest
from pydantic import ValidationError

from shared import clients
from shared.desk.decisions import Decision, DecisionLedger

pytestmark = pytest.mark.stack


@pytest.fixture
def ledger(stack, settings):
    bq = clients.bigquery_client(settings)
    dataset = f"{settings.project}.desk_{uuid.uuid4().hex[:6]}"
    bq.create_dataset(dataset)
    found = DecisionLedger(
        clients.storage_client(settings),
        settings.data_bucket,
        f"desk-{uuid.uuid4().hex[:6]}/decisions",
        bq=bq,
        table=f"{dataset}.desk_decisions",
    )
    found.ensure_table()
    return found


def decision(who="paul@retail.example", action="approve", price=2.29, request=None, **kw):
    return Decision(
        run_id=kw.pop("run_id", "run-1"), product_id=kw.pop("product_id", 7), action=action,
        price=price, decided_by=who, decided_at=dt.datetime.now(dt.UTC),
        request_id=request or uuid.uuid4().hex, **kw,
    )  # fmt: skip


def logged(ledger, run_id="run-1"):
    sql = f"SELECT decision_id, decided_by FROM `{ledger.table}` WHERE run_id = '{run_id}'"
    return sorted((r["decision_id"], r["decided_by"]) for r in ledger.bq.query(sql).result())


def race(calls):
    """Run every call at the same moment; their results in order."""
    results, start = [None] * len(calls), threading.Barrier(len(calls))

    def run(i):
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_managers_at_once_one_decision_stands_and_both_see_it(ledger):
    people = [f"manager{i}@retail.example" for i in range(6)]
    mine = [decision(who, "override", 2.49 + i / 100) for i, who in enumerate(people)]
    found = race([lambda d=d: ledger.decide(d) for d in mine])
    winners = [f for f in found if f.won]
    assert len(winners) == 1
    standing = winners[0].decision
    assert all(f.decision == standing for f in found)
    assert ledger.of_run("run-1") == {"7": standing}
    assert logged(ledger) == [("run-1/7", standing.decided_by)]


def test_a_double_click_is_one_decision_logged_once(ledger):
    same = decision(request="click-0123456789")
    found = race([lambda: ledger.decide(same) for _ in range(4)])
    assert all(f.won and f.decision == same for f in found)
    assert sum(not f.repeated for f in found) == 1
    assert logged(ledger) == [("run-1/7", "paul@retail.example")]


def test_a_new_run_does_not_touch_the_old_runs_decision_and_stores_are_their_own(ledger):
    old = ledger.decide(decision(action="reject", price=None)).decision
    new = ledger.decide(decision(run_id="run-2", price=2.79)).decision
    store = ledger.decide(decision(store_id=12, price=2.49)).decision
    assert ledger.of_run("run-1") == {"7": old, "7-s12": store}
    assert ledger.of_run("run-2") == {"7": new}


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"action": "override", "price": None}, "needs the price"),
        ({"action": "reject", "price": 2.0}, "keeps today's price"),
        ({"action": "raise"}, "action"),
        ({"who": "nobody"}, "decided_by"),
        ({"request": "short"}, "request_id"),
        ({"run_id": "../other"}, "run_id"),
        ({"price": -1.0}, "price"),
    ],
)
def test_bad_decisions_are_refused_with_the_field(fields, field):
    with pytest.raises(ValidationError, match=field):
        decision(**fields)


def test_a_decision_whose_request_crashed_before_logging_is_logged_by_its_repeat(
    ledger, monkeypatch
):
    from shared.desk import decisions

    crashed = DecisionLedger(ledger.bucket.client, ledger.bucket.name, ledger.prefix)  # no log
    made = decision(request="crashed-0123456789")
    assert crashed.decide(made).won
    assert logged(ledger) == []
    assert ledger.decide(made).repeated and logged(ledger) == []  # inside the lease: not yet
    monkeypatch.setattr(decisions, "LOG_LEASE", dt.timedelta(0))
    assert ledger.decide(made).repeated
    assert ledger.decide(made).repeated  # marked logged: not again
    assert logged(ledger) == [("run-1/7", "paul@retail.example")]


def test_a_runs_decisions_are_read_from_one_listing_and_old_claims_still_count(ledger, monkeypatch):
    from google.cloud import storage

    made = [ledger.decide(decision(product_id=p, request=f"list-{p:04d}")).decision
            for p in (1, 2, 3)]  # fmt: skip
    # A claim written before decisions were kept in the metadata: only its body says it.
    old = decision(product_id=4, request="old-claim-0004")
    body = '{"decision": ' + old.model_dump_json() + ', "logged": true}'
    ledger.bucket.blob(f"{ledger.prefix}/run-1/4.json").upload_from_string(body)
    downloaded = []
    real = storage.Blob.download_as_bytes

    def counted(blob, *args, **kwargs):
        downloaded.append(blob.name)
        return real(blob, *args, **kwargs)

    monkeypatch.setattr(storage.Blob, "download_as_bytes", counted)
    fresh = DecisionLedger(ledger.bucket.client, ledger.bucket.name, ledger.prefix)
    found = fresh.of_run("run-1")
    assert {k: d.request_id for k, d in found.items()} == {
        **{d.key: d.request_id for d in made}, "4": "old-claim-0004"}  # fmt: skip
    assert downloaded == [f"{ledger.prefix}/run-1/4.json"]  # the old claim only
    fresh.of_run("run-1")
    assert len(downloaded) == 1  # read once per process
