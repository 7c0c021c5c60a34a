"""Every run ends with an answer, and no run touches another's (issue 14, part 2): an empty
result is a complete run of 0 rows; a query that fails when run ends the run failed with the
reason, seen by the library, the follower the CLI uses, and ``local status``; a destination
inside another run's tree, or holding objects, is refused before anything is written."""

import uuid

import pytest

from shared import clients
from shared.errors import InvalidRequest, RunFailed
from shared.fetch.library import fetch_table, publish_and_follow, run_in_process
from shared.fetch.runs import state

from .test_fetch_pipeline import new_request, publish_request, wait_manifest

pytestmark = pytest.mark.stack
NOTHING = [{"column": "units", "op": ">", "values": [10**9]}]


def test_a_streams_fetch_matching_no_rows_completes_with_0_rows(stack, settings, retail):
    request = publish_request(settings, row_filter=NOTHING)
    manifest = wait_manifest(settings, request, timeout_s=60)
    assert manifest is not None, "an empty run must complete, not wait forever"
    assert (manifest["rows"], manifest["parts"]) == (0, [])
    # In process too: an empty dataset, not "finished without a manifest".
    ds = fetch_table(request.table, row_filter=NOTHING, settings=settings)
    assert ds.to_table().num_rows == 0


def test_a_query_that_fails_when_run_ends_the_run_failed_with_the_reason(stack, settings, retail):
    query = "SELECT ERROR('boom') AS x"
    request = new_request(settings, "fail", table=None, query=query, strategy="chunk_tables")
    with pytest.raises(RunFailed, match="boom"):
        publish_and_follow(request, settings, timeout_s=120)
    found = state(clients.storage_client(settings), request.destination)
    assert found.state == "failed" and "boom" in found.detail
    from local.stack import recent_runs

    assert any(r.run_id == request.run_id and r.state == "failed" for r in recent_runs(stack))
    with pytest.raises(Exception, match="boom"):
        fetch_table(query=query, settings=settings)


def test_a_destination_inside_another_run_is_refused_and_the_other_run_is_untouched(
    stack, settings, retail
):
    a = new_request(settings, "x3a", parallelism=2)
    manifest = run_in_process(a, settings)
    gcs = clients.storage_client(settings)
    bucket, _, prefix = a.destination.removeprefix("gs://").partition("/")
    before = sorted(b.name for b in gcs.list_blobs(bucket, prefix=f"{prefix}/"))
    for inside in ("part-evil", "_chunks", "deeper/still"):
        b = a.model_copy(update={"run_id": f"x3b-{uuid.uuid4().hex[:6]}",
                                 "destination": f"{a.destination}/{inside}"})  # fmt: skip
        with pytest.raises(InvalidRequest, match="inside another run's destination"):
            run_in_process(b, settings)
    # A parent of another run's destination holds its objects: refused too.
    parent = a.model_copy(
        update={
            "run_id": f"x3p-{uuid.uuid4().hex[:6]}",
            "destination": a.destination.rsplit("/", 1)[0],
        }
    )
    with pytest.raises(InvalidRequest):
        run_in_process(parent, settings)
    assert sorted(b.name for b in gcs.list_blobs(bucket, prefix=f"{prefix}/")) == before
    assert state(gcs, a.destination).manifest == manifest_of(gcs, a.destination)
    assert manifest["rows"] == retail["rows"]["transactions"]


def manifest_of(gcs, destination):
    return state(gcs, destination).manifest


@pytest.mark.parametrize(
    "destination",
    [
        "gs://{data}/",  # the bucket root
        "gs://{data}/fetch",  # the allowed prefix itself
        "gs://{data}/artifacts/pricing/x",  # beside the models
        "gs://{data}/fetch/%2e%2e/x",  # percent-encoded traversal
        "gs://{data}/fetch\\\\..\\\\x",  # backslashes
    ],
)
def test_destinations_outside_the_allow_list_are_refused(stack, settings, destination):
    request = new_request(settings, "dst").model_copy(
        update={"destination": destination.format(data=settings.data_bucket)}
    )
    with pytest.raises(InvalidRequest, match="destination"):
        run_in_process(request, settings)
