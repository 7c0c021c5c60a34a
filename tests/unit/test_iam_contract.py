"""The IAM contract check on recorded calls: each recorded Google API call maps to the
permissions it needs, and a grant missing from shared/platform.yaml (which Terraform applies as
it is) is named with the deployable, the method and the permission."""

import copy
import json

import pytest

from local import iam_contract
from shared.platform import Names, declaration

PROJECT = "retail-local"
NAMES = Names("dev", PROJECT)


def trace(tmp_path, process, *calls):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{process}-1.jsonl"
    with path.open("a") as f:
        for call in calls:
            f.write(json.dumps(call) + "\n")
    return tmp_path


def read_session(table_dataset="retail"):
    return {
        "kind": "grpc",
        "method": "/google.cloud.bigquery.storage.v1.BigQueryRead/CreateReadSession",
        "resource": f"projects/{PROJECT}/datasets/{table_dataset}/tables/chunk_0",
    }


def test_create_chunk_reading_its_chunk_table_needs_the_read_session_role(tmp_path):
    """Defect 3: create_chunk splits its chunk table into read streams; without Read Session
    User its service account is refused in the cloud."""
    calls = trace(tmp_path, "create_chunk", read_session(NAMES.dataset("fetch_tmp")))
    assert iam_contract.check(calls, "dev", PROJECT).missing == []

    before_fix = copy.deepcopy(declaration())
    before_fix["grants"]["create_chunk"]["project"] = ["roles/bigquery.jobUser"]
    missing = iam_contract.check(calls, "dev", PROJECT, decl=before_fix).missing
    assert [(n.deployable, n.permission) for n in missing] == [
        ("create_chunk", "bigquery.readsessions.create")
    ]
    assert missing[0].method.endswith("BigQueryRead.CreateReadSession")


def test_publishing_to_a_topic_without_its_grant_is_named(tmp_path):
    calls = trace(tmp_path, "fetch_chunk", {
        "kind": "grpc", "method": "/google.pubsub.v1.Publisher/Publish",
        "resource": f"projects/{PROJECT}/topics/{NAMES.topic('fetch-complete')}",
    })  # fmt: skip
    [need] = iam_contract.check(calls, "dev", PROJECT).missing
    assert (need.deployable, need.permission, need.target) == (
        "fetch_chunk", "pubsub.topics.publish", "fetch-complete",
    )  # fmt: skip


def test_an_unprefixed_topic_is_no_resource_of_the_deployment(tmp_path):
    """Defect 2: publishing to "fetch-chunk-done" in dev reaches no topic Terraform made."""
    calls = trace(tmp_path, "fetch_chunk", {
        "kind": "grpc", "method": "/google.pubsub.v1.Publisher/Publish",
        "resource": f"projects/{PROJECT}/topics/fetch-chunk-done",
    })  # fmt: skip
    [need] = iam_contract.check(calls, "dev", PROJECT).missing
    assert need.target == "fetch-chunk-done" and need.scope == "topics"


def test_query_jobs_need_data_on_what_they_read_and_write(tmp_path):
    ctas = {
        "kind": "http", "verb": "POST", "path": f"/bigquery/v2/projects/{PROJECT}/jobs",
        "job": "query",
        "sql": f"CREATE TABLE `{PROJECT}.dev_fetch_tmp.c_1` AS SELECT * FROM "
               f"`{PROJECT}.{NAMES.dataset('source')}.transactions` WHERE store_id < 3",
    }  # fmt: skip
    needs = iam_contract.needs_of_call("create_chunk", ctas, iam_contract.reference(), PROJECT)
    got = {(n.permission, n.scope, n.target) for n in needs}
    assert got == {
        ("bigquery.jobs.create", "project", PROJECT),
        ("bigquery.tables.create", "datasets", "dev_fetch_tmp"),
        ("bigquery.tables.updateData", "datasets", "dev_fetch_tmp"),
        ("bigquery.tables.getData", "datasets", NAMES.dataset("source")),
    }
    calls = trace(tmp_path, "create_chunk", ctas)
    assert iam_contract.check(calls, "dev", PROJECT).missing == []
    # The API reading the source with a query is allowed; writing to it is not (it writes
    # only its desk's decisions, to results).
    calls = trace(tmp_path / "x", "dev-api", {**ctas, "sql": ctas["sql"].replace(
        "dev_fetch_tmp.c_1", f"{NAMES.dataset('source')}.c_1")})  # fmt: skip
    missing = {(n.permission, n.target) for n in iam_contract.check(calls, "dev", PROJECT).missing}
    assert missing == {("bigquery.tables.create", "source"),
                       ("bigquery.tables.updateData", "source")}  # fmt: skip


def test_storage_calls_map_to_object_methods(tmp_path):
    ref = iam_contract.reference()
    bucket = NAMES.bucket("artifacts")
    cases = {
        ("GET", f"/download/storage/v1/b/{bucket}/o/pricing%2FLATEST"): "storage.objects.get",
        ("POST", f"/upload/storage/v1/b/{bucket}/o"): "storage.objects.insert",
        ("GET", f"/storage/v1/b/{bucket}/o"): "storage.objects.list",
        ("DELETE", f"/storage/v1/b/{bucket}/o/x"): "storage.objects.delete",
    }
    for (verb, path), method in cases.items():
        needs = iam_contract.needs_of_call("api", {"kind": "http", "verb": verb, "path": path},
                                           ref, PROJECT)  # fmt: skip
        assert {n.method for n in needs} == {method}, path
    calls = trace(tmp_path, "dev-api", {"kind": "http", "verb": "POST",
                                        "path": f"/upload/storage/v1/b/{bucket}/o"})  # fmt: skip
    missing = iam_contract.check(calls, "dev", PROJECT).missing  # the API only reads models
    assert {n.permission for n in missing} == {"storage.objects.create", "storage.objects.delete"}


def test_an_unknown_call_is_reported_not_ignored(tmp_path):
    calls = trace(tmp_path, "plan_fetch", {"kind": "grpc", "method": "/google.x.v1.Y/Z"})
    assert iam_contract.check(calls, "dev", PROJECT).unmapped == [
        "plan_fetch: gRPC /google.x.v1.Y/Z"
    ]


@pytest.mark.parametrize("role", ["roles/bigquery.readSessionUser", "roles/pubsub.publisher"])
def test_reference_roles_carry_permissions(role):
    assert iam_contract.reference()["roles"][role]
