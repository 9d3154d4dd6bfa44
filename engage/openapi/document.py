"""Building the document from the route table, and checking it against the app."""

from __future__ import annotations

import re
from typing import Any, Iterable

import msgspec

from engage import __version__
from engage.domain.counters import MAX_VIEWER_ID
from engage.domain.moderation import MAX_BAN_REASON, MAX_BAN_SECONDS
from engage.domain.notifications import MAX_READ_IDS
from engage.http1.response import PROBLEM_JSON
from engage.openapi.responses import (COMMENT_ID_PATTERN, CONTENT_ID_PATTERN, ID_PATTERN,
                                      REF, REQUEST_STRUCTS, RESPONSE_STRUCTS,
                                      UNDOCUMENTED, NotReady, Problem)
from engage.openapi.routes import PATH_PARAMETERS, QUERY, QUERY_LIMITS, ROUTES, Route
from engage.schemas import Event, EventsBody
from engage.settings import Settings


# -- building the document ----------------------------------------------------------------

def _refine(components: dict[str, dict], settings: Settings) -> None:
    """Add the value rules of :mod:`engage.domain` to the generated schemas."""
    def prop(struct: str, name: str, **rules: Any) -> None:
        components[struct]["properties"][name].update(rules)

    cap = settings.applause_cap
    prop("ViewBody", "viewer", maxLength=MAX_VIEWER_ID, minLength=1,
         description="an anonymous viewer's own id (printable); ignored when signed in")
    prop("ApplauseBody", "count", minimum=1, maximum=cap)
    prop("Event", "type", enum=["view", "like", "unlike", "applause"])
    prop("Event", "content", pattern=CONTENT_ID_PATTERN)
    prop("Event", "viewer", maxLength=MAX_VIEWER_ID, minLength=1)
    prop("Event", "count", minimum=1, maximum=cap, description="applause only")
    prop("EventsBody", "events", minItems=1, maxItems=settings.events_max_batch,
         items={"$ref": REF.format(name="Event")})
    body = dict(minLength=1, maxLength=settings.comment_max_chars,
                description="plain text, not blank, no control characters but newlines "
                            "and tabs")
    prop("CommentBody", "body", **body)
    prop("CommentBody", "parent", pattern=COMMENT_ID_PATTERN, minimum=1,
         description="the comment replied to (a visible top-level or reply comment)")
    prop("CommentEdit", "body", **body)
    prop("PublishBody", "content", pattern=CONTENT_ID_PATTERN)
    prop("PublishBody", "published_at", description="ISO 8601 (default: now)")
    prop("PublishBody", "tags", description="comma-separated")
    prop("ReadBody", "ids", minItems=1, maxItems=MAX_READ_IDS,
         items={"anyOf": [{"type": "string", "pattern": ID_PATTERN},
                          {"type": "integer", "minimum": 1}]})
    prop("ReadBody", "all", description="true marks every notification read")
    prop("BanBody", "seconds", minimum=1, maximum=MAX_BAN_SECONDS)
    prop("BanBody", "reason", maxLength=MAX_BAN_REASON)


def _ref(struct: type) -> dict:
    return {"$ref": REF.format(name=struct.__name__)}


def _content(media: str, schema: Any) -> dict:
    if isinstance(schema, type):
        schema = _ref(schema)
    return {media: {"schema": schema}}


ERRORS = {
    400: ("BadRequest", "invalid request: malformed JSON, a field that does not fit, an "
                        "invalid path or query value (see `code`)"),
    401: ("Unauthorized", "no valid token (`unauthorized`, `invalid_token`, `token_expired`)"),
    403: ("Forbidden", "not allowed (`missing_role`, `banned`, `not_author`, ...)"),
    404: ("NotFound", "not found (see `code`)"),
    409: ("Conflict", "not allowed in the current state (`invalid_transition`)"),
    413: ("TooLarge", "the body is larger than max_body_bytes (`too_large`)"),
    415: ("UnsupportedMediaType", "a declared body type other than application/json"),
    422: ("Unprocessable", "refused for what it says (`blocked_content`)"),
    426: ("UpgradeRequired", "not a WebSocket upgrade (`upgrade_required`)"),
    429: ("TooManyRequests", "over a rate limit (`rate_limited`); wait Retry-After seconds"),
    503: ("Unavailable", "a backing store is down or the server is busy "
                        "(`store_unavailable`, `busy`, `unavailable`); retry shortly"),
}
RETRY_AFTER = {"Retry-After": {"description": "whole seconds until a retry can pass",
                               "required": True,
                               "schema": {"type": "integer", "minimum": 1}}}


def _error_responses() -> dict[str, dict]:
    """``components.responses``: one problem+json response per error status."""
    responses = {}
    for status, (name, description) in ERRORS.items():
        response: dict[str, Any] = {"description": description,
                                    "content": _content(PROBLEM_JSON, Problem)}
        if status == 429:
            response["headers"] = RETRY_AFTER
        responses[name] = response
    responses["NotReady"] = {"description": "Redis or Postgres does not answer (`not_ready`)",
                             "content": _content(PROBLEM_JSON, NotReady)}
    return responses


def _operation(route: Route, settings: Settings) -> dict:
    names = re.findall(r"{([^}]+)}", route.path)
    parameters = []
    for name in names:
        schema, description = PATH_PARAMETERS[name]
        parameters.append({"name": name, "in": "path", "required": True,
                           "description": description, "schema": dict(schema)})
    for name in route.query:
        schema, description = QUERY[name]
        schema = dict(schema)
        if name == "limit":
            schema["maximum"] = QUERY_LIMITS[route.path]
        parameters.append({"name": name, "in": "query", "required": False,
                           "description": description, "schema": schema})

    errors = set(route.errors)
    if route.body is not None:
        errors |= {400, 413, 415}
    if route.method in ("POST", "PUT", "PATCH", "DELETE"):
        errors.add(415)  # a declared non-JSON body type, body or not
    if names and names != ["action"]:
        errors.add(400)  # a path parameter that does not fit
    if route.access != "public":
        errors.add(401)
    if route.access in ("publisher", "moderator"):
        errors.add(403)
    if route.limited:
        errors.add(429)
    if route.stores:
        errors.add(503)
    if "action" in names:
        errors.add(404)
    if route.query:
        errors.add(400)

    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.ok.items()):
        response: dict[str, Any] = {"description": description}
        if isinstance(schema, tuple):
            response["content"] = _content(*schema)
        elif schema is not None:
            response["content"] = _content("application/json", schema)
        responses[str(status)] = response
    for status in sorted(errors):
        name = "NotReady" if route.path == "/readyz" else ERRORS[status][0]
        responses[str(status)] = {"$ref": f"#/components/responses/{name}"}

    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    description = route.description
    if route.access in ("publisher", "moderator"):
        role = f"Needs the `{route.access}` role (`admin` passes too)."
        description = f"{role} {description}".strip()
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if route.access == "public":
        operation["security"] = []
    elif route.access == "optional":
        operation["security"] = [{}, {"bearer": []}]
    elif route.access == "user":
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = [{"bearer": [route.access]}]
        operation["x-engage-role"] = route.access
    if route.body is not None:
        if route.body == "events":
            schema = {"anyOf": [_ref(EventsBody),
                                {"type": "array", "minItems": 1,
                                 "maxItems": settings.events_max_batch,
                                 "items": _ref(Event)}]}
        else:
            schema = _ref(route.body)
        content = _content("application/json", schema)
        if route.example is not None:
            content["application/json"]["example"] = route.example
        operation["requestBody"] = {"required": route.body_required, "content": content}
    return operation


def routes_for(settings: Settings) -> list[Route]:
    """The routes a server with ``settings`` registers."""
    return [r for r in ROUTES if settings.dev_mode or not r.dev_only]


def build_document(settings: Settings) -> dict:
    """The OpenAPI 3.1 document of a server running with ``settings``."""
    _, components = msgspec.json.schema_components(REQUEST_STRUCTS + RESPONSE_STRUCTS,
                                                   ref_template=REF)
    _refine(components, settings)
    paths: dict[str, dict] = {}
    for route in routes_for(settings):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, settings)
    tags = []
    for route in ROUTES:
        if route.tag not in [t["name"] for t in tags]:
            tags.append({"name": route.tag})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Engage",
            "version": __version__,
            "summary": "Real-time engagement: counts, applause, comments, moderation, "
                       "publishing and notifications.",
            "description": (
                "Bodies are JSON; a state-changing request declaring any other body type "
                "is 415. Every error is `application/problem+json` (`Problem`) with a "
                "stable `code`; over a rate limit it is 429 with `Retry-After`. Identity "
                "is `Authorization: Bearer <JWT>` (`sub` is the user id, `roles` the "
                "roles). The WebSocket protocol at `/v1/ws` is in docs/protocol.md; "
                "more in docs/api.md."),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": _error_responses(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "HS256 (jwt_secret) or RS256 / ES256 (jwt_jwks_file). "
                                          "The `roles` claim may hold publisher, moderator, "
                                          "admin; admin passes every role check."},
            },
        },
    }


def encode_document(document: dict) -> bytes:
    """The document as JSON bytes, ready to serve."""
    return msgspec.json.encode(document)


# -- keeping up with the app --------------------------------------------------------------

def rule_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: ``/v1/comments/<comment_id>`` ->
    ``/v1/comments/{comment_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def undocumented(rules: Iterable[Any], document: dict) -> list[str]:
    """``METHOD path`` of each rule in ``rules`` (werkzeug ``Rule`` objects) that
    ``document`` lacks, static files aside. HEAD and OPTIONS are implied."""
    missing = []
    for rule in rules:
        if rule.rule.startswith(UNDOCUMENTED):
            continue
        path = rule_path(rule.rule)
        for method in sorted(rule.methods or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    return missing
