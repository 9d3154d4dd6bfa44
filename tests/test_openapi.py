"""The OpenAPI document (engage/openapi/) covers the app and is served."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
import schemathesis

from engage import openapi
from engage.hot import HOT_RULES
from engage.http import create_app
from engage.openapi import build_document, rule_path, undocumented

#: Registered rules the document need not list (files, itself, metrics, the WebSocket).
EXEMPT = ("/static/", "/openapi.json", "/metrics", "/v1/ws")


@pytest.fixture
def settings(settings):
    """Development mode on: every route the app can have is registered."""
    return settings.replace(dev_mode=True)


def operations(document: dict) -> set[str]:
    return {f"{method.upper()} {path}" for path, item in document["paths"].items()
            for method in item}


async def test_every_route_is_documented(system):
    app = create_app(system)
    document = build_document(system.settings)
    every = [*app.url_map.iter_rules(), *HOT_RULES]  # quart's routes and the fast lane's
    rules = [r for r in every if not r.rule.startswith(EXEMPT)]
    assert len(rules) >= 20  # the walk sees the real table
    assert undocumented(rules, document) == []
    # ...and the document describes nothing the app does not serve.
    served = {f"{m} {rule_path(r.rule)}" for r in every
              for m in r.methods if m not in ("HEAD", "OPTIONS")}
    assert operations(document) - served == set()


def test_undocumented_names_what_is_missing():
    class Rule:
        def __init__(self, rule, methods):
            self.rule, self.methods = rule, methods

    document = {"paths": {"/v1/things/{thing}": {"get": {}}}}
    rules = [Rule("/v1/things/<thing>", {"GET", "HEAD", "OPTIONS", "DELETE"}),
             Rule("/v1/other/<int:n>", {"POST"}), Rule("/static/<path:filename>", {"GET"})]
    assert undocumented(rules, document) == ["DELETE /v1/things/{thing}", "POST /v1/other/{n}"]


def test_dev_token_only_in_dev_mode(settings):
    assert "/v1/dev/token" in build_document(settings)["paths"]
    assert "/v1/dev/token" not in build_document(settings.replace(dev_mode=False))["paths"]


def test_document_is_valid_openapi_3_1(settings):
    document = build_document(settings)
    assert document["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert len(list(schema.get_all_operations())) == len(operations(document))
    for name, component in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(component), name


def test_request_bodies_come_from_the_structs(settings):
    document = build_document(settings)
    components = document["components"]["schemas"]
    for struct in openapi.REQUEST_STRUCTS:
        component = components[struct.__name__]
        assert set(component["properties"]) == set(struct.__struct_fields__)
        assert component["additionalProperties"] is False  # strict, as decoding is
    bodies_used = {op["requestBody"]["content"]["application/json"]["schema"].get("$ref")
                   for item in document["paths"].values() for op in item.values()
                   if "requestBody" in op}
    for name in ("ViewBody", "EmptyBody", "ApplauseBody", "CommentBody", "CommentEdit",
                 "PublishBody", "ReadBody", "BanBody"):
        assert f"#/components/schemas/{name}" in bodies_used
    assert components["ApplauseBody"]["properties"]["count"]["maximum"] == settings.applause_cap
    assert components["CommentBody"]["properties"]["body"]["maxLength"] == \
        settings.comment_max_chars


def test_parameters_security_and_errors(settings):
    paths = build_document(settings)["paths"]
    like = paths["/v1/content/{content_id}/like"]["put"]
    (content_id,) = like["parameters"]
    assert content_id["in"] == "path" and content_id["schema"]["pattern"] == \
        r"^[A-Za-z0-9._:-]{1,128}$"
    assert like["security"] == [{"bearer": []}]
    assert like["responses"]["429"] == {"$ref": "#/components/responses/TooManyRequests"}
    patch = paths["/v1/comments/{comment_id}"]["patch"]
    assert patch["parameters"][0]["schema"]["pattern"] == r"^[1-9][0-9]{0,17}$"
    listing = paths["/v1/content/{content_id}/comments"]["get"]
    assert {p["name"] for p in listing["parameters"] if p["in"] == "query"} == \
        {"sort", "cursor", "limit"}
    assert listing["security"] == []
    assert {p["name"] for p in paths["/v1/notifications"]["get"]["parameters"]} == \
        {"cursor", "unread", "limit"}
    assert {p["name"] for p in paths["/v1/content"]["get"]["parameters"]} == \
        {"author", "cursor", "limit"}
    queue = paths["/v1/moderation/queue"]["get"]
    assert queue["security"] == [{"bearer": ["moderator"]}]
    assert {"401", "403"} <= set(queue["responses"])
    assert paths["/v1/content"]["post"]["security"] == [{"bearer": ["publisher"]}]
    assert paths["/v1/content/{content_id}/views"]["post"]["security"] == [{}, {"bearer": []}]


def test_problem_and_retry_after_described(settings):
    document = build_document(settings)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "retry_after" in problem["properties"]
    limited = document["components"]["responses"]["TooManyRequests"]
    assert limited["headers"]["Retry-After"]["required"] is True
    assert "application/problem+json" in limited["content"]


def _validator(document: dict, name: str):
    schema = {**document["components"]["schemas"][name],
              "components": document["components"]}
    # $refs inside are "#/components/schemas/...": resolve against the bundle.
    return jsonschema_rs.validator_for(json.loads(json.dumps(schema)))


async def test_served_and_describes_real_answers(client, settings, auth):
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    document = r.json()
    assert document == json.loads(json.dumps(build_document(settings)))

    r = await client.get("/v1/content/doc-1")
    _validator(document, "Counts").validate(r.json())
    r = await client.post("/v1/content/doc-1/comments", json={"body": "hi"},
                          headers=auth("ann"))
    assert r.status_code == 201
    _validator(document, "Comment").validate(r.json())
    r = await client.get("/v1/content/doc-1/comments")
    _validator(document, "CommentPage").validate(r.json())
    r = await client.get("/v1/content/doc%201")
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    _validator(document, "Problem").validate(r.json())
    r = await client.post("/v1/events", json=[{"type": "view", "content": "doc-1"},
                                              {"type": "like", "content": "doc-1"}])
    _validator(document, "EventResults").validate(r.json())
