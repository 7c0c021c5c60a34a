import pytest

from shared.identifiers import GcsUri, TableRef, check_column, check_run_id, quote_column


def test_table_ref_parses_and_quotes():
    ref = TableRef.parse("my-project.sales.transactions_2024")
    assert (ref.project, ref.dataset, ref.table) == ("my-project", "sales", "transactions_2024")
    assert ref.sql == "`my-project.sales.transactions_2024`"
    assert ref.storage_path == "projects/my-project/datasets/sales/tables/transactions_2024"
    assert str(TableRef.parse("sales.t", default_project="other-proj")) == "other-proj.sales.t"


@pytest.mark.parametrize(
    "name",
    ["", "t", "sales.t", "p.d.t`", "p.d.t; DROP", "p.d.t--", "p.d.t x", "p.d.t\n", "p.d.t/*"],
)
def test_bad_table_names_are_refused(name):
    with pytest.raises(ValueError):
        TableRef.parse(name)


@pytest.mark.parametrize("name", ["a-b", "1abc", "a b", "a`", "a;b", "", "é"])
def test_bad_columns_are_refused(name):
    with pytest.raises(ValueError):
        check_column(name)


def test_column_quoting():
    assert quote_column("units_sold") == "`units_sold`"


def test_gcs_uri():
    uri = GcsUri.parse("gs://my-bucket/a/b/")
    assert (uri.bucket, uri.path) == ("my-bucket", "a/b")
    assert str(uri.child("part.parquet")) == "gs://my-bucket/a/b/part.parquet"
    for bad in ["my-bucket/a", "gs://UPPER/a", "gs://b", "gs://bucket/a//b", "gs://bucket/../x"]:
        with pytest.raises(ValueError):
            GcsUri.parse(bad)


def test_run_ids():
    assert check_run_id("run-2024_01") == "run-2024_01"
    for bad in ["Run", "-x", "a" * 64, "a/b", ""]:
        with pytest.raises(ValueError):
            check_run_id(bad)
