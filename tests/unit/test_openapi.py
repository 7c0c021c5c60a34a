"""The OpenAPI document is generated from the routes and the models that validate them."""

from shared.api.app import create_app
from shared.api.schemas import MAX_BATCH, AnalyticsQuery, PromotionIn


class NoModels:
    pricing = promotions = None

    def not_ready_reason(self) -> str:
        return "no model published yet"


def document(api_key=None):
    client = create_app(NoModels(), api_key=api_key).test_client()
    return client, client.get("/openapi.json").json


def test_every_route_is_in_the_document_and_nothing_else():
    client, spec = document()
    served = {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint not in ("static", "openapi")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == served
    assert len(served) == 7


def test_the_request_schemas_are_the_validating_models():
    _, spec = document()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/v1/promotions:predict"]["post"]["requestBody"]
    refs = [
        s["$ref"].rsplit("/", 1)[-1] for s in body["content"]["application/json"]["schema"]["oneOf"]
    ]
    assert refs == ["PromotionIn", "BatchIn"]
    planned = schemas["PromotionIn"]
    assert planned["additionalProperties"] is False
    assert planned["required"] == PromotionIn.model_json_schema()["required"]
    assert schemas["BatchIn"]["properties"]["promotions"]["maxItems"] == MAX_BATCH
    params = spec["paths"]["/v1/promotions/analytics"]["get"]["parameters"]
    assert [p["name"] for p in params] == list(AnalyticsQuery.model_fields)
    limit = next(p for p in params if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)


def test_the_key_is_documented_only_where_it_is_asked():
    _, open_spec = document()
    assert all(
        "401" not in op["responses"] for ops in open_spec["paths"].values() for op in ops.values()
    )
    client, spec = document(api_key="k")
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]
    assert "401" in spec["paths"]["/v1/prices"]["get"]["responses"]
    assert client.get("/v1/prices").status_code == 401
    assert client.get("/healthz").status_code == 200


def test_every_bound_is_stated_as_json_schema():
    """A bound pydantic could not translate stays as "ge"/"le", which no client reads: a
    client then sends what the API refuses (found by the contract test: stores=41899115)."""
    _, spec = document()

    def keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)

    assert not {"ge", "le", "gt", "lt"} & set(keys(spec["components"]))
    stores = spec["components"]["schemas"]["PromotionIn"]["properties"]["stores"]["anyOf"][0]
    assert (stores["minimum"], stores["maximum"]) == (1, 100_000)
