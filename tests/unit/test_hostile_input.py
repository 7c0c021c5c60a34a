"""Issue 14, parts 3 and 6: input no retry can fix is refused at validation (one clear
refusal, not five deliveries to the dead-letter topic), and secrets are redacted from logs by
their shape, not only by field name."""

import io
import json
import logging

import pytest

from shared import log
from shared.errors import MalformedMessage
from shared.messages import FetchRequest, parse

BASE = {"table": "proj-1.retail.transactions", "destination": "gs://bucket-1/fetch/r1"}


def body(**fields) -> bytes:
    return json.dumps({**BASE, **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "<body>", "nested deeper"),
        (b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "<body>", "nested deeper"),
        (body(columns=["units", "units"]), "<message>", "names a column twice"),
        (body(columns=["units", "UNITS"]), "<message>", "names a column twice"),
        (body(row_filter=[{"column": "sku", "op": "=", "values": ["a\x00b"]}]),
         "row_filter.0.values.0", "control character"),
        (json.dumps({**BASE, "row_filter": [{"column": "sku", "op": "=",
                                             "values": ["\ud800"]}]}).encode(),
         "row_filter.0.values.0", "lone UTF-16 surrogate"),
        (body(row_filter=[{"column": "units", "op": "=", "values": [2**63]}]),
         "row_filter.0.values.0", "INT64"),
        (b"x" * 2_000_001, "<body>", "larger than"),
    ],
)  # fmt: skip
def test_input_no_retry_can_fix_is_refused_at_validation(raw, field, reason):
    with pytest.raises(MalformedMessage) as info:
        parse(FetchRequest, raw, "fetch-requests")
    assert info.value.field == field and reason in str(info.value)


def test_in_range_values_and_ordinary_text_pass():
    request = parse(
        FetchRequest,
        body(row_filter=[{"column": "units", "op": "between", "values": [-(2**63), 2**63 - 1]},
                         {"column": "sku", "op": "=", "values": ["Crème brûlée\ttab"]}]),
        "fetch-requests",
    )  # fmt: skip
    assert len(request.row_filter) == 2


def test_secrets_are_redacted_by_their_shape_wherever_they_are():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(log.JsonFormatter())
    logger = logging.getLogger("redaction-test")
    logger.addHandler(handler)
    logger.propagate = False
    token = "ya29.a0AfH6SMBx-secret-token-value"
    logger.warning(
        "calling https://reconciler:hunter2@airflow.example/api with Bearer %s", token,
        extra={"headers": {"Authorization": f"Bearer {token}"}, "calls": [f"Bearer {token}"],
               "note": "key k1:" + "A" * 43 + "="},
    )  # fmt: skip
    line = out.getvalue().strip().splitlines()[-1]
    assert "hunter2" not in line and "secret-token" not in line and "A" * 43 not in line
    entry = json.loads(line)
    assert "reconciler:[redacted]@airflow.example" in entry["message"]
    assert entry["headers"]["Authorization"] == "[redacted]"


@pytest.mark.parametrize(
    "destination",
    [
        "gs://bucket-1/fetch/r1 ",  # a trailing space
        "gs://bucket-1/fetch/r1\u200b",  # a zero-width space
        "gs://bucket-1/fetch/re\u0301sume",  # a combining accent
        "gs://bucket-1/fetch/r1\uff0e\uff0e",  # fullwidth dots
        "gs://bucket-1/fetch//r1",  # an empty segment
        "gs://bucket-1/fetch/r1/",  # a trailing slash
        "gs://bucket-1/fetch/.hidden",  # a segment of dots
        "gs://bucket-1/fetch/r\u00e9sum\u00e9",  # not ASCII at all
    ],
)
def test_a_destination_that_looks_like_another_is_refused(destination):
    """Defect 11: each of these was written as a full run beside gs://bucket-1/fetch/r1."""
    from shared.errors import InvalidRequest
    from shared.fetch.plan import check_destination

    with pytest.raises(InvalidRequest, match="plain ASCII"):
        check_destination(destination, ("gs://bucket-1/fetch/",))
    assert str(check_destination("gs://bucket-1/fetch/r1", ("gs://bucket-1/fetch/",)))


def test_a_key_given_twice_is_refused_in_messages_and_api_bodies():
    """Defect 12: {"product_id": 17, "product_id": 18} was answered 200; which one won was an
    accident. Refused in a fetch request, a planned promotion and a query string."""
    from shared.api.app import create_app
    from shared.errors import MalformedMessage
    from shared.messages import FetchRequest, parse

    twice = b'{"table": "p-1234.d.t", "table": "p-1234.d.u", "destination": "gs://b/fetch/r"}'
    with pytest.raises(MalformedMessage, match="'table' is given twice"):
        parse(FetchRequest, twice, "fetch-requests")

    class NoModels:
        pricing = promotions = None

        def not_ready_reason(self) -> str:
            return "none"

        def catch_up(self) -> None:
            pass

    client = create_app(NoModels()).test_client()
    body = (
        b'{"product_id": 17, "product_id": 18, "mechanic": "tpr", "discount": 0.2,'
        b' "start_date": "2025-03-03", "duration_days": 7}'
    )
    answer = client.post("/v1/promotions:predict", data=body, content_type="application/json")
    assert answer.status_code == 400 and "given twice" in answer.json["error"]["reason"]
    answer = client.get("/v1/prices?limit=5&limit=500")
    assert answer.status_code == 400 and answer.json["error"]["field"] == "limit"
