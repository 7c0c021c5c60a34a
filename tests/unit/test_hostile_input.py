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
