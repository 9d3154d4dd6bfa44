"""Request bodies at the door, against a real ``run.py`` server.

* Every state-changing route refuses a body declared as one of the types an
  HTML form (or a no-preflight ``fetch``) can send from another site,
  ``application/x-www-form-urlencoded``, ``multipart/form-data`` and
  ``text/plain``, with 415 problem+json, even when the caller is allowed to
  do it and the text is the very JSON it would accept: nothing changes.
* A body over ``max_body_bytes`` is 413 on every route (and nothing changes);
  one of exactly ``max_body_bytes`` is taken.
* Malformed JSON is 400 ``malformed_json``, unknown fields 400
  ``unknown_field``, on every route that takes a body.
* A refused request does not spoil its keep-alive connection.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from tests.security.routes import HOLD, ROUTES, Ctx, Route, fill, problem
from tests.security.support import TEST_TIMEOUT, bearer, client, live_server, token_for

MAX_BODY = 4096
CHANGING = [r for r in ROUTES if r.method != "GET"]
#: Routes that read a JSON body (the others take none and ignore one).
WITH_BODY = {"view", "like", "applause", "events", "comment", "edit_comment",
             "read_notifications", "publish", "approve", "reject", "hide", "restore", "ban"}
#: A valid body for the routes whose table entry has none (they accept an
#: empty body, or ``{}``).
EMPTY_OK = {"view": {"viewer": "v-1"}, "like": {}, "approve": {}, "reject": {}, "hide": {},
            "restore": {}}


@pytest.fixture(scope="module")
def live():
    with live_server(moderation_hold_words=HOLD, max_body_bytes=str(MAX_BODY)) as server:
        yield server


async def _prepared(http: httpx.AsyncClient, live, route: Route) -> tuple[Ctx, str, dict, dict]:
    """A cell whose caller (an admin) may use ``route``: the path, the JSON
    body it would accept, and the caller's headers."""
    ctx = Ctx(http, live)
    ctx.actor = f"admin-{ctx.target}"
    path, body = await route.prepare(ctx)
    body = fill(body, ctx)
    if body is None:
        body = EMPTY_OK.get(route.name, {})
    return ctx, path, body, bearer(token_for(ctx.actor, "admin"))


def _multipart(fields: dict) -> tuple[bytes, str]:
    boundary = "engage-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
             f'{json.dumps(v) if not isinstance(v, str) else v}\r\n' for k, v in fields.items()]
    return (("".join(parts) + f"--{boundary}--\r\n").encode(),
            f"multipart/form-data; boundary={boundary}")


def _encoded(kind: str, body: dict) -> tuple[bytes, str]:
    """``body`` as a cross-site form could send it."""
    text = json.dumps(body)
    if kind == "form":
        # The classic trick: the whole JSON text as one field name.
        return (text + "=").encode(), "application/x-www-form-urlencoded"
    if kind == "multipart":
        return _multipart(body or {"x": "1"})
    if kind == "text_plain":
        return text.encode(), "text/plain"
    if kind == "text_plain_charset":
        return text.encode(), "text/plain;charset=UTF-8"
    raise ValueError(kind)


FORM_KINDS = ["form", "multipart", "text_plain", "text_plain_charset"]


@pytest.mark.parametrize("route, kind", [pytest.param(r, k, id=f"{r.name}-{k}")
                                         for r in CHANGING for k in FORM_KINDS])
async def test_form_types_are_415_and_change_nothing(live, route, kind):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx, path, body, headers = await _prepared(http, live, route)
            content, content_type = _encoded(kind, body)
            before = await ctx.state()
            r = await http.request(route.method, path, content=content,
                                   headers={**headers, "Content-Type": content_type})
            problem(r, 415, "unsupported_media_type")
            assert await ctx.state() == before
            # The same request as JSON is allowed: the type was all that stopped it.
            r = await http.request(route.method, path, json=body, headers=headers)
            assert r.status_code == route.ok, r.text


@pytest.mark.parametrize("route", [pytest.param(r, id=r.name) for r in CHANGING
                                   if r.name in WITH_BODY])
async def test_a_body_without_a_type_is_415(live, route):
    """A no-preflight ``fetch`` may send a body with no Content-Type at all."""
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx, path, body, headers = await _prepared(http, live, route)
            before = await ctx.state()
            request = http.build_request(route.method, path, content=json.dumps(body).encode(),
                                         headers=headers)
            request.headers.pop("Content-Type", None)  # httpx adds none for bytes; be sure
            r = await http.send(request)
            problem(r, 415, "unsupported_media_type")
            assert await ctx.state() == before


def _oversized(body: dict) -> dict:
    return {**body, "padding": "x" * MAX_BODY}


async def _chunks(data: bytes):
    for start in range(0, len(data), 1000):
        yield data[start:start + 1000]


@pytest.mark.parametrize("route, framing", [pytest.param(r, f, id=f"{r.name}-{f}")
                                            for r in CHANGING for f in ("length", "chunked")])
async def test_oversized_bodies_are_413_and_change_nothing(live, route, framing):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx, path, body, headers = await _prepared(http, live, route)
            data = json.dumps(_oversized(body)).encode()
            assert len(data) > MAX_BODY
            before = await ctx.state()
            content = data if framing == "length" else _chunks(data)
            r = await http.request(route.method, path, content=content,
                                   headers={**headers, "Content-Type": "application/json"})
            problem(r, 413, "too_large")
            assert await ctx.state() == before


async def test_a_body_of_exactly_max_body_bytes_is_taken(live):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx = Ctx(http, live)
            empty = len(json.dumps({"body": ""}).encode())
            for size, status in ((MAX_BODY, 201), (MAX_BODY + 1, 413)):
                data = json.dumps({"body": "y" * (size - empty)}).encode()
                assert len(data) == size
                r = await http.post(f"/v1/content/{ctx.content}/comments", content=data,
                                    headers={**bearer(token_for("writer")),
                                             "Content-Type": "application/json"})
                assert r.status_code == status, (size, r.text)


#: Ways to break the JSON text of a body the route would otherwise take.
MALFORMED = {
    "unclosed": lambda text: text[:-1],
    "trailing_garbage": lambda text: text + " x",
    "two_documents": lambda text: text + text,
    "not_json": lambda text: "{not json}",
    "single_quotes": lambda text: text.replace('"', "'"),
    "not_utf8": lambda text: b"\xff\xfe" + text.encode(),
}


@pytest.mark.parametrize("route, case", [pytest.param(r, c, id=f"{r.name}-{c}")
                                         for r in CHANGING if r.name in WITH_BODY
                                         for c in MALFORMED])
async def test_malformed_json_is_400_with_a_code(live, route, case):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx, path, body, headers = await _prepared(http, live, route)
            content = MALFORMED[case](json.dumps(body))
            if case == "single_quotes" and "'" not in content:
                content = "{'x': 1}"  # an empty body has no quotes to swap
            before = await ctx.state()
            r = await http.request(route.method, path,
                                   content=content if isinstance(content, bytes)
                                   else content.encode(),
                                   headers={**headers, "Content-Type": "application/json"})
            problem(r, 400, "malformed_json")
            assert await ctx.state() == before


@pytest.mark.parametrize("route", [pytest.param(r, id=r.name) for r in CHANGING
                                   if r.name in WITH_BODY])
async def test_unknown_fields_are_400_unknown_field(live, route):
    with trio.fail_after(TEST_TIMEOUT):
        async with client(live) as http:
            ctx, path, body, headers = await _prepared(http, live, route)
            before = await ctx.state()
            r = await http.request(route.method, path, json={**body, "is_admin": True},
                                   headers=headers)
            problem(r, 400, "unknown_field")
            assert "is_admin" in r.json()["detail"]
            assert await ctx.state() == before


def test_the_tables_cover_every_route():
    assert WITH_BODY <= {r.name for r in CHANGING}
    assert set(EMPTY_OK) <= WITH_BODY


async def test_refused_requests_do_not_spoil_the_connection(live):
    """Early answers (401, 403, 404, 415, 413) to requests with bodies, each
    followed by a request on the same keep-alive connection: every one is
    answered. (Hypercorn could leave such a connection stuck when the answer
    went out before the body was read; engage/http1 reads every body whole,
    within its limit, before anything answers.)"""
    user = bearer(token_for("plain"))
    refusals = [
        ("POST", "/v1/content/ka/comments", {}, b'{"body": "hi"}', 401),
        ("POST", "/v1/moderation/comments/1/hide", user, b"{}", 403),
        ("POST", "/nowhere", user, b'{"body": "hi"}', 404),
        ("POST", "/v1/content/ka/applause", {**user, "Content-Type": "text/plain"},
         b'{"count": 1}', 415),
        ("POST", "/v1/content/ka/comments", user, b"x" * (MAX_BODY + 10), 413),
    ]
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=live.url, timeout=5.0,
                                     limits=httpx.Limits(max_connections=1)) as http:
            for i in range(300):
                method, path, headers, content, status = refusals[i % len(refusals)]
                headers = {"Content-Type": "application/json", **headers}
                r = await http.request(method, path, content=content, headers=headers)
                assert r.status_code == status, (i, r.text)
                r = await http.get("/v1/content/ka")
                assert r.status_code == 200, (i, r.text)
