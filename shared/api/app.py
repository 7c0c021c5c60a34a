"""The prediction API (Flask application factory).

Served by gunicorn on Cloud Run (auth: Cloud Run IAM; locally an optional API key in the
``X-API-Key`` header). Every error is JSON: ``{"error": {"status", "reason", "field"}}``,
where ``field`` names the offending input (``promotions[3].discount``) when there is one.
Routes live in blueprints (``prices``, ``promotions``); ``/openapi.json`` is generated from the
models that validate them (``schemas``, ``openapi``).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.api import prices, promotions
from shared.api.analytics import PromotionAnalytics
from shared.api.http import ApiError, failed
from shared.api.models import ModelStore
from shared.api.openapi import Operation, Routes, document, operation
from shared.api.schemas import MAX_BODY_BYTES, Health, Ready
from shared.desk.web import Desk
from shared.desk.web import blueprint as desk_pages

__all__ = ["MAX_BODY_BYTES", "create_app"]
TITLE, VERSION = "Retail prediction API", "1.0.0"


def _service(store: ModelStore) -> Routes:
    """Liveness and readiness, answered without the API key."""
    served = Routes(Blueprint("service", __name__))

    @operation(served, "get", "/healthz", "The process is alive", {200: ("alive", Health)},
               public=True)  # fmt: skip
    def healthz() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    @operation(
        served,
        "get",
        "/readyz",
        "A model is loaded",
        {200: ("a model is loaded", Ready), 503: failed("no model yet")},
        public=True,
    )
    def readyz() -> ResponseReturnValue:
        pricing, loaded = store.pricing, store.promotions
        if pricing is None and loaded is None:
            raise ApiError(503, store.not_ready_reason())
        return jsonify(
            {
                "status": "ready",
                "pricing_run_id": pricing.run_id if pricing else None,
                "promotions_run_id": loaded.run_id if loaded else None,
            }
        )

    return served


def create_app(
    store: ModelStore,
    *,
    analytics: PromotionAnalytics | None = None,
    api_key: str | None = None,
    desk: Desk | None = None,
    secret_key: str | None = None,
    api: bool = True,
) -> Flask:
    """The API; with ``desk``, the desk's pages under ``/desk`` too (their own identity, IAP's
    header or the development sign-in, instead of the API key; ``secret_key`` signs their
    session cookie). ``api=False``: the desk's own service, the JSON API left out (only the
    health endpoints beside the pages), so IAP's users reach nothing outside their grant."""
    app = Flask("retail_api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if desk is not None:
        if not secret_key:
            raise RuntimeError("the desk needs a secret key for its session cookie")
        app.secret_key = secret_key
        app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                          SESSION_COOKIE_SECURE=not desk.identity.development)  # fmt: skip
        app.register_blueprint(desk_pages(desk))
    served = [_service(store)]
    if api:
        served += [prices.routes(store), promotions.routes(store, analytics)]
    operations: list[Operation] = []
    for routes in served:
        app.register_blueprint(routes.blueprint)
        operations += routes.operations
    if api_key is not None:
        unauthorized = failed("missing or wrong API key")
        for op in operations:
            if not op.public:
                op.responses.setdefault(401, unauthorized)
    for op in operations:
        if op.query or op.path_params or op.body:
            op.responses.setdefault(400, failed("invalid request"))
    spec = document(operations, TITLE, VERSION)
    public = {op.path for op in operations if op.public} | {"/openapi.json"}

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> ResponseReturnValue:
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        return jsonify(ApiError(status, exc.description or exc.name).body()), status

    @app.before_request
    def _auth() -> None:
        if api_key is None or request.path in public or request.path.startswith("/desk"):
            return
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong X-API-Key")

    @app.get("/openapi.json")
    def openapi() -> ResponseReturnValue:
        return jsonify(spec)

    return app
