"""The IAM contract on the real stack (issue 13): every Google API call the functions made in
this session, including a chunk_tables query run (create_chunk) and a streams run, is allowed
by the grants Terraform gives their service accounts in the dev environment."""

import pytest

from local import iam_contract
from shared.platform import deployables

from .test_fetch_pipeline import publish_request, wait_manifest

pytestmark = pytest.mark.stack


def test_every_recorded_call_of_the_functions_is_granted(stack, settings, retail, capsys):
    query = (
        f"SELECT store_id, product_id, SUM(units) AS units "
        f"FROM `{settings.source_dataset}.transactions` GROUP BY 1, 2"
    )
    runs = [
        publish_request(settings, parallelism=2),
        publish_request(settings, table=None, query=query, strategy="chunk_tables",
                        index_columns=["product_id"], parallelism=2),
    ]  # fmt: skip
    for request in runs:
        assert wait_manifest(settings, request) is not None, request.run_id

    report = iam_contract.check(stack.trace_dir, stack.environment, stack.project)
    iam_contract.print_report(report)
    print(capsys.readouterr().out)  # the table in the test log
    assert report.missing == [], [f"{n.deployable}: {n.method} needs {n.permission}"
                                  for n in report.missing]  # fmt: skip
    assert report.unmapped == []
    assert {"plan_fetch", "create_chunk", "fetch_chunk", "finalize_fetch"} <= report.deployables
    assert report.deployables <= set(deployables())
    # create_chunk really opened read sessions (the call defect 3 was about).
    assert any(
        m.endswith("CreateReadSession") and p == "bigquery.readsessions.create"
        for m, p, _ in report.checked["create_chunk"]
    )
