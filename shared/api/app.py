"""The prediction API (Flask application factory).

Served by gunicorn on Cloud Run (auth: Cloud Run IAM; locally an optional API key in the
``X-API-Key`` header). Every error is JSON: ``{"error": {"status", "reason", "field"}}``.
This first part serves price recommendations; promotion predictions and analytics follow.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.api.models import ModelStore

MAX_PAGE = 500
MAX_OFFSET = 10**9
PRICE_FIELDS = (
    "product_id",
    "status",
    "elasticity",
    "ci_low",
    "ci_high",
    "current_price",
    "recommended_price",
    "margin_price",
    "expected_revenue_change",
)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.field = status, reason, field


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


def openapi() -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    price = {"$ref": "#/components/schemas/Price"}
    number = {"type": ["number", "null"]}
    responses = {
        "400": {
            "description": "invalid request",
            "content": {"application/json": {"schema": error}},
        },
        "401": {
            "description": "missing or wrong API key",
            "content": {"application/json": {"schema": error}},
        },
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
                        "503": {
                            "description": "no model yet",
                            "content": {"application/json": {"schema": error}},
                        },
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
                        "404": {
                            "description": "unknown product",
                            "content": {"application/json": {"schema": error}},
                        },
                        "503": {
                            "description": "no model yet",
                            "content": {"application/json": {"schema": error}},
                        },
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
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of recommendations",
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
                        "503": {
                            "description": "no model yet",
                            "content": {"application/json": {"schema": error}},
                        },
                        **responses,
                    },
                }
            },
        },
        "components": {
            "schemas": {
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
                        "elasticity": number,
                        "ci_low": number,
                        "ci_high": number,
                        "current_price": number,
                        "recommended_price": number,
                        "margin_price": number,
                        "expected_revenue_change": number,
                        "model_run_id": {"type": "string"},
                    },
                },
            }
        },
    }


def create_app(store: ModelStore, *, api_key: str | None = None) -> Flask:
    app = Flask("retail_api")

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
            raise ApiError(503, "no pricing model loaded yet")
        return current

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        current = model()
        return jsonify({"status": "ready", "pricing_run_id": current.run_id})

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
        current = model()
        ids = sorted(current.products)
        page = [_price(current.products[i], current.run_id) for i in ids[offset : offset + limit]]
        return jsonify({"items": page, "total": len(ids), "model_run_id": current.run_id})

    return app
