import io
import json
import logging

from google.api_core import exceptions as gexc

from shared import log
from shared.errors import (
    InvalidRequest,
    MalformedMessage,
    TransientError,
    is_permanent,
    is_transient,
)


def test_retry_predicate():
    assert is_transient(TransientError("quota"))
    assert is_transient(gexc.TooManyRequests("429"))
    assert is_transient(gexc.ServiceUnavailable("503"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(gexc.NotFound("404"))
    assert not is_transient(gexc.BadRequest("400"))
    assert not is_transient(InvalidRequest("bad"))
    assert not is_transient(MalformedMessage("t", "f", "r"))
    assert not is_transient(KeyError("bug"))


def test_one_table_says_what_is_acknowledged_and_what_is_redelivered():
    assert is_permanent(InvalidRequest("bad")) and is_permanent(gexc.NotFound("no bucket"))
    assert is_permanent(gexc.Forbidden("denied")) and is_permanent(gexc.BadRequest("bad sql"))
    for retried in (
        gexc.TooManyRequests("429"),
        gexc.Conflict("409: another delivery won"),
        gexc.PreconditionFailed("412: a create-only write raced"),
        gexc.from_http_status(408, "request timeout"),
        gexc.ServiceUnavailable("503"),
        KeyError("a bug: redelivered until the dead-letter policy takes it"),
    ):
        assert not is_permanent(retried), retried


def test_json_lines_carry_severity_labels_and_no_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log.JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.warning(
        "fetched %d rows",
        10,
        extra={"run_id": "r1", "chunk": 3, "token": "s3cr3t", "auth": {"password": "p"}},
    )
    entry = json.loads(stream.getvalue())
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "fetched 10 rows"
    assert entry["logging.googleapis.com/labels"] == {"run_id": "r1", "chunk": "3"}
    assert entry["token"] == "[redacted]"
    assert entry["auth"] == {"password": "[redacted]"}
    assert "s3cr3t" not in stream.getvalue()
