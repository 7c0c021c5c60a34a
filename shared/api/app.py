"""The prediction API (Flask application factory).

Served by gunicorn on Cloud Run (auth: Cloud Run IAM; locally an optional API key in the
``X-API-Key`` header). Every error is JSON: ``{"error": {"status", "reason", "field"}}``,
where ``field`` names the offending input (``promotions[3].discount``) when there is one.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from typing import Annotated, Any, Literal

from flask import Flask, jsonify, request
from google.api_core import exceptions as gexc
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException

from shared.api.analytics import Filters, PromotionAnalytics
from shared.api.models import ModelStore
from shared.messages import too_deep
from shared.training.promotions import MECHANIC_CODES, PlannedPromotion

MAX_PAGE = 500
MAX_OFFSET = 10**9
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20
MAX_ID = 2**53  # ids travel as JSON numbers: exact up to 2**53
MAX_STORES = 100_000
MAX_JSON_DEPTH = 8  # the deepest valid body is {"promotions": [{...}]}
MAX_DURATION_DAYS = 91
MECHANICS = tuple(MECHANIC_CODES)
# What an analyst signs off: the decision and its reason, the price, the expected weekly gain
# with its 90% interval, the elasticity with its 95% interval (and the plain log-log one).
PRICE_NUMBERS = (
    "elasticity",
    "ci_low",
    "ci_high",
    "elasticity_plain",
    "regular_price",
    "unit_cost",
    "recommended_price",
    "candidate_price",
    "expected_gain",
    "gain_low",
    "gain_high",
    "expected_change",
)
PRICE_STRINGS = (
    "decision",
    "reason",
    "reason_code",
    "objective",
    "binding_rule",
    "cost_source",
    "identification",
)
PRICE_FIELDS = ("product_id", "status", "rank", *PRICE_STRINGS, *PRICE_NUMBERS)
DECISIONS = ("move", "hold")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.field = status, reason, field


def _whole(value: object) -> object:
    """JSON has one number type: 7.0 is an integer to JSON Schema, so it is one here too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeInt = Annotated[int, BeforeValidator(_whole)]


class PromotionIn(BaseModel):
    """A planned promotion, as the request states it (strict JSON types, no unknown fields)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    product_id: WholeInt = Field(ge=1, le=MAX_ID)
    mechanic: Literal["tpr", "multibuy", "bogo"]
    discount: float = Field(gt=0, lt=1)
    start_date: dt.date
    duration_days: WholeInt = Field(ge=1, le=MAX_DURATION_DAYS)
    feature: bool = False
    display: bool = False
    # Bounded to what a retailer has: the model multiplies by it, and an unbounded integer
    # (10**308) would make the answer infinite, which JSON cannot carry.
    stores: WholeInt | None = Field(default=None, ge=1, le=MAX_STORES)


class BatchIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    promotions: list[PromotionIn] = Field(min_length=1)


def _field(loc: tuple) -> str | None:
    """``("promotions", 3, "discount")`` -> ``promotions[3].discount``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _validated(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _field(tuple(first["loc"]))
        raise ApiError(400, f"{field or 'body'}: {first['msg']}", field) from None


def _price(row: dict, run_id: str) -> dict:
    return {**{k: row.get(k) for k in PRICE_FIELDS}, "model_run_id": run_id}


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", name) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}", name)
    return value


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "schema": schema}


def _promotion_schemas() -> dict[str, Any]:
    number = {"type": "number"}
    planned = {
        "type": "object",
        "additionalProperties": False,
        "required": ["product_id", "mechanic", "discount", "start_date", "duration_days"],
        "properties": {
            "product_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "mechanic": {"type": "string", "enum": list(MECHANICS)},
            "discount": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "start_date": {"type": "string", "format": "date"},
            "duration_days": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_DAYS},
            "feature": {"type": "boolean"},
            "display": {"type": "boolean"},
            "stores": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_STORES},
        },
    }
    prediction = {
        "type": "object",
        "required": [
            "product_id",
            "predicted_revenue",
            "baseline_revenue",
            "uplift",
            "model_run_id",
        ],
        "properties": {
            "product_id": {"type": "integer"},
            "predicted_revenue": number,
            "baseline_revenue": number,
            "uplift": number,
            "model_run_id": {"type": "string"},
        },
    }
    text = {"type": ["string", "null"]}
    return {
        "PlannedPromotion": planned,
        "PlannedPromotionBatch": {
            "type": "object",
            "additionalProperties": False,
            "required": ["promotions"],
            "properties": {
                "promotions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                    "items": {"$ref": "#/components/schemas/PlannedPromotion"},
                }
            },
        },
        "Prediction": prediction,
        "PredictionBatch": {
            "type": "object",
            "required": ["predictions", "model_run_id"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Prediction"},
                },
                "model_run_id": {"type": "string"},
            },
        },
        "PromotionPerformance": {
            "type": "object",
            "required": ["promo_id", "product_id", "start_date", "end_date", "revenue"],
            "properties": {
                "promo_id": {"type": "integer"},
                "product_id": {"type": "integer"},
                "category": text,
                "region": text,
                "mechanic": text,
                "discount": number,
                "start_date": {"type": "string", "format": "date"},
                "end_date": {"type": "string", "format": "date"},
                "stores": {"type": "integer"},
                "feature": {"type": "boolean"},
                "display": {"type": "boolean"},
                "revenue": number,
                "baseline_revenue": number,
                "uplift": number,
            },
        },
    }


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi() -> dict[str, Any]:
    price = {"$ref": "#/components/schemas/Price"}
    performance = {"$ref": "#/components/schemas/PromotionPerformance"}
    number = {"type": ["number", "null"]}
    responses = {
        "400": _error("invalid request"),
        "401": _error("missing or wrong API key"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Retail prediction API", "version": "1.0.0"},
        "paths": {
            "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "responses": {
                        "200": {"description": "a model is loaded"},
                        "503": _error("no model yet"),
                    }
                }
            },
            "/v1/prices/{product_id}": {
                "get": {
                    "parameters": [
                        {
                            "name": "product_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "recommendation",
                            "content": {"application/json": {"schema": price}},
                        },
                        "404": _error("unknown product"),
                        "503": _error("no model yet"),
                        **responses,
                    },
                }
            },
            "/v1/promotions:predict": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/PlannedPromotion"},
                                        {"$ref": "#/components/schemas/PlannedPromotionBatch"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the prediction (or one per promotion of a batch)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Prediction"},
                                            {"$ref": "#/components/schemas/PredictionBatch"},
                                        ]
                                    }
                                }
                            },
                        },
                        "404": _error("a product without recent sales"),
                        "413": _error(
                            f"body over {MAX_BODY_BYTES} bytes or batch over {MAX_BATCH} promotions"
                        ),
                        "415": _error("a body that is not application/json"),
                        "503": _error("no promotion model yet"),
                        **responses,
                    },
                }
            },
            "/v1/promotions/analytics": {
                "get": {
                    "parameters": [
                        _query(
                            "product_id", {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET}
                        ),
                        _query("category", {"type": "string", "minLength": 1, "maxLength": 64}),
                        _query(
                            "store_id", {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET}
                        ),
                        _query("mechanic", {"type": "string", "enum": list(MECHANICS)}),
                        _query("start", {"type": "string", "format": "date"}),
                        _query("end", {"type": "string", "format": "date"}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}),
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of past promotions, newest first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["items", "next_offset"],
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": performance,
                                            },
                                            "next_offset": {"type": ["integer", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "503": _error("analytics not configured"),
                        **responses,
                    },
                }
            },
            "/v1/prices": {
                "get": {
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                        },
                        _query("decision", {"type": "string", "enum": list(DECISIONS)}),
                        _query("order", {"type": "string", "enum": ["product_id", "rank"]}),
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of recommendations (order=rank: the moves "
                            "by expected gain, largest first)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["items", "total", "model_run_id"],
                                        "properties": {
                                            "items": {"type": "array", "items": price},
                                            "total": {"type": "integer"},
                                            "model_run_id": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "503": _error("no model yet"),
                        **responses,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                **_promotion_schemas(),
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "reason"],
                            "properties": {
                                "status": {"type": "integer"},
                                "reason": {"type": "string"},
                                "field": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Price": {
                    "type": "object",
                    "required": ["product_id", "status", "model_run_id"],
                    "properties": {
                        "product_id": {"type": "integer"},
                        "status": {"type": "string"},
                        "rank": {"type": ["integer", "null"]},
                        **{k: {"type": ["string", "null"]} for k in PRICE_STRINGS},
                        **{k: number for k in PRICE_NUMBERS},
                        "model_run_id": {"type": "string"},
                    },
                },
            }
        },
    }


def _str_arg(name: str, choices: tuple[str, ...] | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if choices is not None and raw not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}", name)
    if not 1 <= len(raw) <= 64:
        raise ApiError(400, f"{name} must be 1 to 64 characters", name)
    return raw


def _date_arg(name: str) -> dt.date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if len(raw) != 10:  # fromisoformat also takes 20250101 and the like
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a date (YYYY-MM-DD)", name) from None


def create_app(
    store: ModelStore,
    *,
    analytics: PromotionAnalytics | None = None,
    api_key: str | None = None,
) -> Flask:
    app = Flask("retail_api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(
            {"error": {"status": exc.status, "reason": exc.reason, "field": exc.field}}
        ), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        return jsonify(
            {"error": {"status": status, "reason": exc.description, "field": None}}
        ), status

    @app.before_request
    def _auth():
        if api_key is None or request.path in ("/healthz", "/readyz", "/openapi.json"):
            return None
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong X-API-Key")
        return None

    def model():
        current = store.pricing
        if current is None:
            raise ApiError(503, f"no pricing model: {store.not_ready_reason()}")
        return current

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        pricing, promotions = store.pricing, store.promotions
        if pricing is None and promotions is None:
            raise ApiError(503, store.not_ready_reason())
        return jsonify(
            {
                "status": "ready",
                "pricing_run_id": pricing.run_id if pricing else None,
                "promotions_run_id": promotions.run_id if promotions else None,
            }
        )

    @app.get("/openapi.json")
    def spec():
        return jsonify(openapi())

    @app.get("/v1/prices/<product_id>")
    def price(product_id: str):
        try:
            pid = int(product_id)
        except ValueError:
            raise ApiError(400, "product_id must be an integer", "product_id") from None
        if pid < 1:
            raise ApiError(400, "product_id must be at least 1", "product_id")
        current = model()
        row = current.products.get(pid)
        if row is None:
            raise ApiError(404, f"unknown product {pid}", "product_id")
        return jsonify(_price(row, current.run_id))

    @app.get("/v1/prices")
    def prices():
        limit = _int_arg("limit", 100, 1, MAX_PAGE)
        offset = _int_arg("offset", 0, 0, MAX_OFFSET)
        decision = _str_arg("decision", DECISIONS)
        order = _str_arg("order", ("product_id", "rank"))
        current = model()
        ids = sorted(current.products)
        if decision:
            ids = [i for i in ids if current.products[i].get("decision") == decision]
        if order == "rank":
            ids.sort(key=lambda i: (current.products[i].get("rank") is None,
                                    current.products[i].get("rank") or 0, i))  # fmt: skip
        page = [_price(current.products[i], current.run_id) for i in ids[offset : offset + limit]]
        return jsonify({"items": page, "total": len(ids), "model_run_id": current.run_id})

    @app.post("/v1/promotions:predict")
    def predict_promotions():
        if request.mimetype != "application/json":
            raise ApiError(415, f"Content-Type must be application/json, got {request.mimetype!r}")
        raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413
        try:
            text = raw.decode()
            if too_deep(text, MAX_JSON_DEPTH):
                raise ApiError(400, f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")
            body = json.loads(text, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(400, f"malformed JSON: {exc}") from None
        batch = isinstance(body, dict) and "promotions" in body
        if batch and isinstance(body["promotions"], list) and len(body["promotions"]) > MAX_BATCH:
            raise ApiError(413, f"at most {MAX_BATCH} promotions per request", "promotions")
        items = _validated(BatchIn, raw).promotions if batch else [_validated(PromotionIn, raw)]
        loaded = store.promotions
        if loaded is None:
            raise ApiError(503, f"no promotion model: {store.not_ready_reason()}")
        for i, item in enumerate(items):
            if item.product_id not in loaded.model.baselines:
                field = f"promotions[{i}].product_id" if batch else "product_id"
                raise ApiError(404, f"no recent sales of product {item.product_id}", field)
        plans = [
            PlannedPromotion(
                product_id=item.product_id,
                mechanic=item.mechanic,
                discount=item.discount,
                start=item.start_date,
                duration_days=item.duration_days,
                feature=item.feature,
                display=item.display,
                stores=item.stores,
            )
            for item in items
        ]
        answers = [
            {"product_id": item.product_id, **answer, "model_run_id": loaded.run_id}
            for item, answer in zip(items, loaded.model.plan(plans), strict=True)
        ]
        if not batch:
            return jsonify(answers[0])
        return jsonify({"predictions": answers, "model_run_id": loaded.run_id})

    @app.get("/v1/promotions/analytics")
    def promotion_analytics():
        filters = Filters(
            product_id=_int_arg("product_id", 0, 1, MAX_OFFSET) or None,
            category=_str_arg("category"),
            store_id=_int_arg("store_id", 0, 1, MAX_OFFSET) or None,
            mechanic=_str_arg("mechanic", MECHANICS),
            start=_date_arg("start"),
            end=_date_arg("end"),
        )
        # end before start is an empty period (an empty page), not an error: the document
        # cannot state the rule, and nothing about such a request is malformed.
        limit = _int_arg("limit", 100, 1, MAX_PAGE)
        offset = _int_arg("offset", 0, 0, MAX_OFFSET)
        if analytics is None:
            raise ApiError(503, "promotion analytics is not configured")
        if filters.start and filters.end and filters.start > filters.end:
            return jsonify({"items": [], "next_offset": None})
        try:
            items, more = analytics.page(filters, limit, offset)
        except gexc.NotFound:
            raise ApiError(
                503, "no promotion analytics yet: the promotion job has not written its table"
            ) from None
        return jsonify({"items": items, "next_offset": offset + len(items) if more else None})

    return app
