"""Structured JSON logging in the shape Cloud Logging parses from stdout (one object per line).

``severity`` and ``message`` are the fields Cloud Logging promotes; ids such as ``run_id`` go in
``logging.googleapis.com/labels`` so a run can be followed with one filter. Fields whose name
suggests a secret are redacted before they are written, and so are values shaped like one
wherever they appear (the message, a header dict, a URL): bearer tokens, ``Authorization``
values, passwords in URLs, Fernet and API keys, private key blocks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is ours.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
_LABEL_KEYS = ("run_id", "chunk", "topic", "message_id", "function", "job", "task")
_SECRET_HINTS = (
    "token", "password", "secret", "credential", "api_key", "apikey", "private", "authorization"
)  # fmt: skip
_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO"}


# Secrets recognised by their shape, whatever field or sentence holds them.
_SECRET_SHAPES = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1[redacted]@"),
    (
        re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api[_-]?key)=)[^&\s'\"]+"),
        r"\1[redacted]",
    ),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        "[redacted private key]",
    ),
    (re.compile(r"\b[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), "[redacted key]"),  # Fernet keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "[redacted key]"),  # Google API keys
    (re.compile(r"\bya29\.[0-9A-Za-z._-]+"), "[redacted token]"),  # Google access tokens
)


def redact_text(text: str) -> str:
    """``text`` with every secret-shaped value replaced."""
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _redact(key: str, value: Any) -> Any:
    if any(hint in key.lower() for hint in _SECRET_HINTS):
        return "[redacted]"
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(key, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with ``severity``, ``message``, labels and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEBUG"),
            "message": redact_text(record.getMessage()),
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "logger": record.name,
        }
        labels: dict[str, str] = {}
        for key, value in vars(record).items():
            if key in _RECORD_ATTRS or key.startswith("_"):
                continue
            value = _redact(key, value)
            entry[key] = value
            if key in _LABEL_KEYS and value is not None:
                labels[key] = str(value)
        if labels:
            entry["logging.googleapis.com/labels"] = labels
        if record.exc_info:
            entry["stack_trace"] = redact_text(self.formatException(record.exc_info))
        entry["logging.googleapis.com/sourceLocation"] = {
            "file": record.pathname,
            "line": record.lineno,
            "function": record.funcName,
        }
        return json.dumps(entry, default=str)


def configure(level: int | str = logging.INFO, stream: Any = None) -> None:
    """Send the root logger's records to ``stream`` (stdout) as JSON lines; safe to call twice."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            root.setLevel(level)
            return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> logging.Logger:
    """A logger whose records become JSON lines once :func:`configure` has run."""
    return logging.getLogger(name)
