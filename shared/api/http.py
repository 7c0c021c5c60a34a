"""The API's errors and request parsing: every error is JSON ``{"error": {"status", "reason",
"field"}}``, and every input is validated by its model in ``shared/api/schemas.py``."""

from __future__ import annotations

import json
from typing import TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError

from shared.api.openapi import Answer
from shared.api.schemas import MAX_JSON_DEPTH, Error
from shared.messages import too_deep, unique_keys

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An answer other than 200: its status, the reason and the input at fault."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.field = status, reason, field

    def body(self) -> dict:
        return {"error": {"status": self.status, "reason": self.reason, "field": self.field}}


def failed(description: str) -> Answer:
    """A documented error answer."""
    return description, Error


def _field(loc: tuple) -> str | None:
    """``("promotions", 3, "discount")`` -> ``promotions[3].discount``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def describe(exc: ValidationError) -> str:
    """Every problem of ``exc``, each with the field it is in (for a page that shows them all;
    the API's answers name the first, ``validated``)."""
    return "; ".join(
        f"{_field(tuple(e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors(include_url=False)
    )


def validated(model: type[M], data: bytes | dict) -> M:
    """``data`` (a JSON body, or parameters) as ``model``; a 400 naming the field otherwise."""
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _field(tuple(first["loc"]))
        raise ApiError(400, f"{field or 'body'}: {first['msg']}", field) from None


def query(model: type[M], request: Request) -> M:
    """The query string as ``model`` (parameters it does not name are ignored; one it names
    twice is refused: which value counts would be an accident)."""
    for name, values in request.args.lists():
        if len(values) > 1 and name in model.model_fields:
            raise ApiError(400, f"{name} is given {len(values)} times", name)
    return validated(model, request.args.to_dict())


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def json_body(request: Request) -> tuple[bytes, object]:
    """The raw body and its parsed JSON: 415 unless JSON, 400 if malformed or too deep (the
    body's size is capped by ``MAX_CONTENT_LENGTH``: 413)."""
    if request.mimetype != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, got {request.mimetype!r}")
    raw = request.get_data(cache=False)
    try:
        text = raw.decode()
        if too_deep(text, MAX_JSON_DEPTH):
            raise ApiError(400, f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        return raw, json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
