import json

import pytest

from shared.errors import MalformedMessage, PermanentError
from shared.messages import ChunkReady, FetchRequest, dump, parse

GOOD = {
    "table": "my-project.sales.transactions",
    "destination": "gs://bucket/out/run1",
    "columns": ["date", "units"],
    "row_filter": [{"column": "units", "op": ">", "values": [0]}],
    "parallelism": 4,
}


def test_valid_request_round_trips():
    request = parse(FetchRequest, json.dumps(GOOD).encode(), "fetch-requests")
    assert request.strategy == "streams"
    assert request.row_filter[0].values == [0]
    assert parse(FetchRequest, dump(request), "fetch-requests") == request


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"table": "p.d.t; DROP TABLE x"}, "table"),
        ({"table": "my-project.sales.`t`"}, "table"),
        ({"columns": ["units) OR (1=1"]}, "columns.0"),
        ({"row_filter": [{"column": "a b", "op": "=", "values": [1]}]}, "row_filter.0.column"),
        ({"row_filter": [{"column": "a", "op": "LIKE", "values": ["%"]}]}, "row_filter.0.op"),
        ({"row_filter": [{"column": "a", "op": "between", "values": [1]}]}, "row_filter.0"),
        (
            {"row_filter": [{"column": "a", "op": "=", "values": [{"sql": "1"}]}]},
            "row_filter.0.values.0",
        ),
        ({"destination": "s3://bucket/x"}, "destination"),
        ({"destination": "gs://bucket/../etc"}, "destination"),
        ({"parallelism": 0}, "parallelism"),
        ({"parallelism": "four"}, "parallelism"),
        ({"strategy": "magic"}, "strategy"),
        ({"run_id": "Run 1"}, "run_id"),
        ({"unknown_option": 1}, "unknown_option"),
    ],
)
def test_malformed_request_names_the_field(change, field):
    body = json.dumps({**GOOD, **change}).encode()
    with pytest.raises(MalformedMessage) as info:
        parse(FetchRequest, body, "fetch-requests")
    assert info.value.field == field
    assert isinstance(info.value, PermanentError)
    assert field in str(info.value)


def test_missing_required_field_is_named():
    with pytest.raises(MalformedMessage) as info:
        parse(FetchRequest, b'{"table": "proj-1.d.t"}', "fetch-requests")
    assert info.value.field == "destination"


def test_source_must_be_table_xor_query():
    with pytest.raises(MalformedMessage, match="exactly one"):
        parse(FetchRequest, {"destination": "gs://bucket/x"}, "fetch-requests")
    with pytest.raises(MalformedMessage, match="chunk_tables"):
        parse(FetchRequest, {"query": "SELECT 1", "destination": "gs://bucket/x"}, "fetch-requests")


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b"null"])
def test_non_object_bodies_are_malformed(body):
    with pytest.raises(MalformedMessage) as info:
        parse(FetchRequest, body, "fetch-requests")
    assert info.value.field == "<body>"


def test_chunk_ready_defaults_and_serialisation():
    chunk = ChunkReady(
        run_id="r1", chunk=2, chunk_count=4, stream="projects/p/s/1", destination="gs://bkt/x"
    )
    assert chunk.offset == 0 and chunk.parts == []
    assert json.loads(dump(chunk))["chunk"] == 2
