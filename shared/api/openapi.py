"""The OpenAPI document, generated: each route is declared once with :func:`operation` (its
path, the models of its parameters, body and answers), which registers the Flask route and
what the document says of it; :func:`document` builds the document from the same pydantic
models that validate the requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.schemas import Error

REF = "#/components/schemas/{model}"
Answer = tuple[str, Any]  # description, and a model, a list of models (oneOf) or None
Mode = Literal["validation", "serialization"]


@dataclass(frozen=True)
class Operation:
    """One route as the document states it."""

    method: str
    path: str  # OpenAPI form: /v1/prices/{product_id}
    summary: str
    responses: dict[int, Answer]
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    body: tuple[type[BaseModel], ...] = ()
    public: bool = False  # answered without the API key


@dataclass
class Routes:
    """A blueprint and the operations declared on it."""

    blueprint: Blueprint
    operations: list[Operation] = field(default_factory=list)


def operation(
    routes: Routes,
    method: str,
    path: str,
    summary: str,
    responses: dict[int, Answer],
    **details: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``view`` for ``method path`` on the blueprint and declare it in the document."""
    declared = Operation(method, path, summary, responses, **details)
    routes.operations.append(declared)
    rule = path.replace("{", "<").replace("}", ">")

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        routes.blueprint.add_url_rule(rule, view_func=view, methods=[method.upper()])
        return view

    return register


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], Mode]]:
    found: dict[type[BaseModel], Mode] = {Error: "serialization"}
    for op in operations:
        for model in op.body:
            found[model] = "validation"
        for _, answer in op.responses.values():
            for model in answer if isinstance(answer, list) else [answer]:
                if model is not None:
                    found.setdefault(model, "serialization")
    return list(found.items())


def _parameter_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: an optional one is simply left out, never sent as null (a query
    string has no null), so ``X | None`` is stated as ``X``."""
    options = [o for o in prop.get("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]}
        if prop.get("default", "") is None:
            del prop["default"]
    return {k: v for k, v in prop.items() if k != "title"}


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": where, "required": where == "path" or name in required,
         "schema": _parameter_schema(prop)}
        for name, prop in schema["properties"].items()
    ]  # fmt: skip


def document(operations: list[Operation], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    keyed, defs = models_json_schema(_models(operations), ref_template=REF)
    refs: dict[tuple[Any, str], dict[str, Any]] = dict(keyed.items())

    def content(answer: Any, mode: Mode) -> dict[str, Any]:
        if isinstance(answer, list):
            schema: dict[str, Any] = {"oneOf": [refs[(m, mode)] for m in answer]}
        else:
            schema = refs[(answer, mode)]
        return {"application/json": {"schema": schema}}

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        spec: dict[str, Any] = {"summary": op.summary}
        parameters = _parameters(op.path_params, "path") + _parameters(op.query, "query")
        if parameters:
            spec["parameters"] = parameters
        if op.body:
            body = list(op.body) if len(op.body) > 1 else op.body[0]
            spec["requestBody"] = {"required": True, "content": content(body, "validation")}
        spec["responses"] = {
            str(status): {"description": description}
            | ({"content": content(answer, "serialization")} if answer is not None else {})
            for status, (description, answer) in sorted(op.responses.items())
        }
        paths.setdefault(op.path, {})[op.method] = spec
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }
