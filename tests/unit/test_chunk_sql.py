"""The SQL the chunk_tables strategy writes: single-SELECT queries only, exact chunk bounds."""

import pytest

from shared.errors import InvalidRequest
from shared.fetch.chunks import bounds_condition, chunk_job_id, chunk_table
from shared.fetch.sqltext import check_select
from shared.messages import ChunkBounds

TYPES = {"store_id": "INTEGER", "date": "DATE", "name": "STRING"}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;  -- trailing comment", "SELECT 1"),
        (
            "  with x AS (SELECT 1 AS a) SELECT a FROM x ;",
            "  with x AS (SELECT 1 AS a) SELECT a FROM x",
        ),
        ("SELECT 'a;b', \"c;d\", `e;f` FROM t", "SELECT 'a;b', \"c;d\", `e;f` FROM t"),
        ("SELECT '''x;\n''' /* ; */ # ;\n FROM t", "SELECT '''x;\n''' /* ; */ # ;\n FROM t"),
        ("(SELECT 1)", "(SELECT 1)"),
    ],
)
def test_one_select_is_accepted(sql, expected):
    assert check_select(sql) == expected


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT 1; DROP TABLE d.t", "only one statement"),
        ("SELECT 'it''s'; DELETE FROM d.t WHERE TRUE", "only one statement"),
        ("SELECT '\\'; DROP TABLE d.t; --'", None),
        ("DELETE FROM d.t WHERE TRUE", "must be a SELECT"),
        ("INSERT INTO d.t SELECT 1", "must be a SELECT"),
        ("CREATE TABLE d.t AS SELECT 1", "must be a SELECT"),
        ("-- only a comment", "must be a SELECT"),
        ("SELECT 'open", "unterminated"),
        ("SELECT 1 /* open", "unterminated"),
    ],
)
def test_anything_else_is_refused(sql, reason):
    if reason is None:  # an escaped quote keeps the ';' inside the string: one statement
        assert check_select(sql) == sql
        return
    with pytest.raises(InvalidRequest, match=reason):
        check_select(sql)


def test_bounds_are_half_open_lexicographic_and_null_rows_go_to_chunk_zero():
    index = ["store_id", "date"]
    first = bounds_condition(ChunkBounds(upper=[3, "2024-02-01"]), index, TYPES)
    assert first == (
        "((`store_id` IS NULL OR `date` IS NULL) OR "
        "((`store_id` < 3) OR (`store_id` = 3 AND `date` < DATE '2024-02-01')))"
    )
    middle = bounds_condition(
        ChunkBounds(lower=[3, "2024-02-01"], upper=[5, "2024-01-01"]), index, TYPES
    )
    assert middle == (
        "(NOT (`store_id` IS NULL OR `date` IS NULL) AND "
        "((`store_id` > 3) OR (`store_id` = 3 AND `date` >= DATE '2024-02-01')) AND "
        "((`store_id` < 5) OR (`store_id` = 5 AND `date` < DATE '2024-01-01')))"
    )
    assert bounds_condition(ChunkBounds(), index, TYPES) == "TRUE"
    assert bounds_condition(ChunkBounds(), [], TYPES) == "TRUE"


def test_bound_values_are_typed_literals_never_sql():
    with pytest.raises(InvalidRequest, match="does not fit column 'store_id'"):
        bounds_condition(ChunkBounds(lower=["1 OR TRUE"]), ["store_id"], TYPES)
    rendered = bounds_condition(ChunkBounds(lower=["x' OR '1'='1"]), ["name"], TYPES)
    assert "'x\\' OR \\'1\\'=\\'1'" in rendered


def test_chunk_names_derive_from_run_and_chunk():
    assert str(chunk_table("p.tmp", "r-1", 7)) == "p.tmp.fetch_r_1_00007"
    assert chunk_job_id("r-1", 7) == "fetch_r-1_00007"
