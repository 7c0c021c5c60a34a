import io
import json
import logging

from google.api_core import exceptions as gexc

from shared import log
from shared.errors import InvalidRequest, MalformedMessage, TransientError, is_transient


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
