"""The ``retail fetch`` command on the local stack: Pub/Sub and in-process, and its errors."""

import uuid

import pytest

from shared.cli import main

from .test_fetch_pipeline import manifest_of

pytestmark = pytest.mark.stack


def test_fetch_through_pubsub_prints_totals_of_the_manifest(stack, settings, retail, capsys):
    dest = f"gs://{settings.data_bucket}/fetch/cli-{uuid.uuid4().hex[:8]}"
    table = f"{settings.source_dataset}.transactions"
    code = main(["fetch", table, "--dest", dest, "-p", "3", "--where", "units >= 3", "--quiet"])
    out = capsys.readouterr().out
    manifest, _ = manifest_of(settings, dest)
    assert code == 0
    assert manifest is not None and 0 < manifest["rows"] < retail["rows"]["transactions"]
    assert f"{manifest['rows']:,} rows in {len(manifest['parts'])} Parquet parts" in out


def test_fetch_of_a_query_in_process_uses_chunk_tables(stack, settings, retail, capsys):
    dest = f"gs://{settings.data_bucket}/fetch/cli-{uuid.uuid4().hex[:8]}"
    query = f"SELECT product_id, units FROM `{settings.source_dataset}.transactions`"
    code = main(["fetch", "--query", query, "--index", "product_id", "--dest", dest])
    code_in_process = main(
        ["fetch", "--query", query, "--index", "product_id", "--in-process", "--quiet"]
    )
    manifest, _ = manifest_of(settings, dest)
    assert (code, code_in_process) == (0, 0)
    assert manifest["strategy"] == "chunk_tables"
    assert manifest["rows"] == retail["rows"]["transactions"]
    assert capsys.readouterr().out.count(f"{manifest['rows']:,} rows in") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fetch", "retail-local.retail.nope"], "table retail-local.retail.nope does not exist"),
        (
            ["fetch", "retail-local.dev_retail.transactions", "--columns", "units,nope"],
            "column 'nope' does not exist",
        ),
        (["fetch", "retail-local.retail.transactions; DROP"], "not a valid BigQuery table"),
        (["fetch", "--query", "DELETE FROM x WHERE TRUE"], "must be a SELECT"),
        (["fetch"], "exactly one of 'table' and 'query'"),
    ],
)
def test_bad_fetch_arguments_fail_before_anything_is_published(
    stack, settings, retail, capsys, argv, message
):
    dest = f"gs://{settings.data_bucket}/fetch/cli-{uuid.uuid4().hex[:8]}"
    assert main([*argv, "--dest", dest, "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert manifest_of(settings, dest) == (None, None)
