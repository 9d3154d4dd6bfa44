"""Schemathesis against the running server, from the document it serves.

Three kinds of cases, for every operation of ``GET /openapi.json``:

* generated: positive cases (data that fits the schemas) and negative ones
  (data that does not), sent anonymously, with a bad or expired token, and as
  a user, a moderator, a publisher and an admin; path parameters are
  sometimes ids that exist (seeded first);
* odd: a positive case with one path parameter, query parameter or body
  field replaced by a generated odd string (digits of other scripts,
  controls, invisible characters, long runs);
* swept: every path parameter, query parameter and body field (and the
  fields of the first item of a list of objects) set in turn to each value of
  :data:`DICTIONARY` and to arrays nested :data:`DEPTHS` deep, from the
  document's request body example, as an admin.

The cases are generated and sent from a worker thread (schemathesis and
hypothesis are synchronous) while the server runs in the test's trio loop.

What must hold: no 5xx and no hang, ever; every 4xx is problem+json with a
``code``; answers fit the document (status codes, media types, schemas,
headers); the server logs no errors and no store failures (a request that
passes validation but breaks a store later, in an actor, shows there); and
afterwards the server is healthy, and a like, a comment and a publication
work.

``ENGAGE_FUZZ_SCALE=10 pytest tests/fuzz`` generates ten times as many cases
(the sweep stays the same).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial

import httpx
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from engage.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.fuzz import server_trouble

SCALE = float(os.environ.get("ENGAGE_FUZZ_SCALE", "1"))
#: Generated cases per operation and mode (and again on known ids, where it has ids).
EXAMPLES = max(1, round(20 * SCALE))
#: Generated cases with one odd value, per operation.
ODD_EXAMPLES = max(1, round(30 * SCALE))
#: Seconds one request may take before it counts as a hang.
REQUEST_TIMEOUT = 10.0
#: Who sends a case: a token per identity (None: anonymous).
IDENTITIES = {
    "user": issue_token(JWT_SECRET, "fz-user"),
    "anonymous": None,
    "moderator": issue_token(JWT_SECRET, "fz-mod", roles=["moderator"]),
    "publisher": issue_token(JWT_SECRET, "fz-pub", roles=["publisher"]),
    "admin": issue_token(JWT_SECRET, "fz-admin", roles=["admin"]),
    "other": issue_token(JWT_SECRET, "fz-other"),
    "bad token": "not-a-jwt",
    "expired": issue_token(JWT_SECRET, "fz-user", expires_in=-3600),
}
WHO = st.sampled_from(list(IDENTITIES))
#: Strings that have broken parsers: digits that ``str.isdigit`` accepts but
#: ``int`` does not (or reads as another number), signs, exponents, huge and
#: long values, controls, NUL, invisible and combining characters, reserved
#: URL characters, ISO 8601 edges that overflow in UTC.
STRINGS = [
    "²", "¹²", "٣", "０", "①", "Ⅻ", "𝟗", "0", "00", "-1", "+1", " 1", "1 ", "1.0", "1e3",
    "0x10", "9" * 18, "9" * 19, "9" * 40, "9" * 5000, "", " ", "\t", "\n", "\x00", "a\x00b",
    "\x7f", "\x1f", "\u00a0", "\u200b", "\ufeff", "\u202e", "e\u0301", "🙂", "ﬁ", "İ",
    "a" * 128, "a" * 129, "%", "%00", "%2F", "?", "#", "&", "=", ";", ",", ":", "\\",
    "'", '"', "<script>", "null", "true", "[]", "{}", "all", "author:", "..", ".",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "0001-01-01",
    "9999-12-31T23:59:59.999999Z", "2024-02-30T00:00:00Z", "2024-05-01T25:00:00Z",
    "2024-05-01T10:00:00+24:00", "http://", "https://" + "a" * 3000,
]
#: Also for JSON body fields: values of other types.
JSON_VALUES = [None, True, 0, -1, 1, 2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30,
               1.5, 1e308, -0.0, [], {}, [[[[[[[[]]]]]]]], {"a": {"b": {"c": []}}}, ["1"],
               [1, 2, 3], ["²"]]
DICTIONARY = STRINGS + JSON_VALUES
#: Nesting depths of arrays put in each body field (bodies stay under max_body_bytes).
DEPTHS = (100, 1000, 5000, 20000)
PLACEHOLDER = "\x00nested\x00"
#: Generated odd strings.
ODD_TEXT = st.one_of(
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=20),
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=40),
    st.sampled_from([s for s in STRINGS if s and "/" not in s]),
)
HEALTH_CHECKS = list(HealthCheck)


@dataclass
class Findings:
    """What the fuzzer saw, filled in by the worker thread."""

    cases: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    by_who: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    not_problems: list[str] = field(default_factory=list)
    mismatches: dict[str, str] = field(default_factory=dict)
    hangs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        return (f"{self.total} cases {self.cases}; statuses {dict(sorted(self.by_status.items()))}; "
                f"senders {self.by_who}")


def _describe(case, response) -> str:
    body = response.text[:300] if response is not None else ""
    return (f"{case.operation.label} path={case.path_parameters} query={case.query} "
            f"body={str(case.body)[:200]!r} -> "
            f"{response.status_code if response is not None else 'no answer'} {body}")


def _header(response, name: str) -> str | None:
    values = response.headers.get(name)  # schemathesis' Response: lists of values
    return values[0] if values else None


def _routed_elsewhere(case) -> bool:
    """Whether the URL sent may name another route than the case's: the
    client sends ``%``, ``?`` and ``#`` in path parameters as they are, a
    ``/`` (or ``%2F``, decoded before routing) splits the path, and ``.`` and
    ``..`` are removed as dot segments."""
    return any(any(c in str(v) for c in "/%?#") or str(v) in (".", "..")
               for v in (case.path_parameters or {}).values())


def _check(findings: Findings, kind: str, case, response, who: str, headers: dict) -> None:
    status = response.status_code
    with findings.lock:
        findings.cases[kind] = findings.cases.get(kind, 0) + 1
        findings.by_status[status] = findings.by_status.get(status, 0) + 1
        findings.by_who[who] = findings.by_who.get(who, 0) + 1
    if status >= 500:
        findings.server_errors.append(_describe(case, response))
        return
    if 400 <= status < 500:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if _header(response, "content-type") != "application/problem+json" \
                or not isinstance(problem, dict) or problem.get("status") != status \
                or not isinstance(problem.get("code"), str) or "detail" not in problem:
            findings.not_problems.append(_describe(case, response))
    if _routed_elsewhere(case):
        return  # no route to compare the answer with
    try:
        case.validate_response(response, headers=headers, checks=[
            not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance, response_headers_conformance])
    except FailureGroup as exc:
        key = f"{case.operation.label} {status}"
        with findings.lock:
            findings.mismatches.setdefault(key, f"{_describe(case, response)}\n{exc}"[:3000])


class Sender:
    """Sends cases on one keep-alive session and checks the answers."""

    def __init__(self, base_url: str, findings: Findings) -> None:
        self.base_url = base_url
        self.findings = findings
        self.session = requests.Session()

    def send(self, kind: str, case, who: str) -> None:
        token = IDENTITIES[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = case.call(base_url=self.base_url, session=self.session,
                                 headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.Timeout:
            self.findings.hangs.append(f"{kind}: {case.operation.label} {case.path_parameters} "
                                       f"{case.query} {str(case.body)[:200]!r}")
            self.session.close()  # start afresh: that connection may be stuck
            return
        _check(self.findings, kind, case, response, who, headers)


# -- generated cases ----------------------------------------------------------------------

@st.composite
def odd_cases(draw, operation):
    """A positive case with one path parameter, query parameter or body field
    replaced by an odd string (a list field by a list of one)."""
    case = draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    slots = [("path", p.name) for p in operation.path_parameters if p.name != "action"]
    slots += [("query", p.name) for p in operation.query]
    if isinstance(case.body, dict):
        slots += [("body", name) for name in case.body]
    if not slots:
        return case
    where, name = draw(st.sampled_from(slots))
    value = draw(ODD_TEXT)
    if where == "path":
        case.path_parameters = {**case.path_parameters, name: value}
    elif where == "query":
        case.query = {**(case.query or {}), name: value}
    else:
        case.body = {**case.body,
                     name: [value] if isinstance(case.body[name], list) else value}
    return case


def _strategies(operation, ids: dict[str, list[str]]):
    """(kind, strategy, examples) for one operation."""
    names = [p.name for p in operation.path_parameters]
    known = {name: st.sampled_from(ids[name]) for name in names if ids.get(name)}
    out = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        out.append((mode.value, operation.as_strategy(generation_mode=mode), EXAMPLES))
        if known:
            fixed = st.fixed_dictionaries(known).flatmap(
                lambda params, mode=mode: operation.as_strategy(generation_mode=mode,
                                                                path_parameters=params))
            out.append((mode.value, fixed, EXAMPLES))
    out.append(("odd", odd_cases(operation), ODD_EXAMPLES))
    return out


def generate(operation, ids: dict[str, list[str]], sender: Sender) -> None:
    for kind, strategy, examples in _strategies(operation, ids):

        @hypothesis_settings(max_examples=examples, deadline=None, database=None,
                             phases=[Phase.generate], suppress_health_check=HEALTH_CHECKS,
                             verbosity=Verbosity.quiet)  # findings are collected, not raised
        @given(case=strategy, who=WHO)
        def run(case, who):
            sender.send(kind, case, who)

        try:
            run()
        except Unsatisfiable:  # e.g. nothing to negate in GET /healthz
            sender.findings.skipped.append(f"{operation.label} ({kind})")


# -- the dictionary sweep -----------------------------------------------------------------

def _body_slots(body) -> list[tuple]:
    """Paths to each field of ``body`` (and of the first object of a list field)."""
    slots: list[tuple] = []
    if isinstance(body, dict):
        for name, value in body.items():
            slots.append((name,))
            if isinstance(value, list) and value and isinstance(value[0], dict):
                slots += [(name, 0, inner) for inner in value[0]]
    return slots


def _replace(body, path: tuple, value):
    if len(path) == 1:
        return {**body, path[0]: value}
    name, index, inner = path
    items = list(body[name])
    items[index] = {**items[index], inner: value}
    return {**body, name: items}


def sweep(operation, ids: dict[str, list[str]], sender: Sender) -> None:
    """Each slot of the operation, set to each value of :data:`DICTIONARY`."""
    params = {p.name: (ids.get(p.name) or ["approve"])[0] for p in operation.path_parameters}
    media = operation.definition.raw.get("requestBody", {}).get("content", {})
    example = media.get("application/json", {}).get("example", NOT_SET)
    if example is not NOT_SET and "parent" in example:
        example = {**example, "parent": ids["comment_id"][0]}

    def case(path_parameters=params, query=None, body=example):
        return operation.Case(path_parameters=dict(path_parameters), query=query or {},
                              body=body, media_type="application/json"
                              if body is not NOT_SET else None)

    sender.send("swept", case(), "admin")
    for name in params:
        if name == "action":
            continue
        for value in STRINGS:
            if value:  # an empty path segment is another route
                sender.send("swept", case(path_parameters={**params, name: value}), "admin")
    for parameter in operation.query:
        for value in STRINGS:
            sender.send("swept", case(query={parameter.name: value}), "admin")
    for path in _body_slots(example):
        for value in DICTIONARY:
            sender.send("swept", case(body=_replace(example, path, value)), "admin")
        for depth in DEPTHS:  # nesting json.dumps cannot write: spliced in as text
            text = json.dumps(_replace(example, path, PLACEHOLDER))
            nested = text.replace(json.dumps(PLACEHOLDER), "[" * depth + "]" * depth)
            sender.send("swept", case(body=nested.encode()), "admin")
    if example is not NOT_SET:
        for depth in DEPTHS:
            sender.send("swept", case(body=("[" * depth + "]" * depth).encode()), "admin")


def fuzz(base_url: str, ids: dict[str, list[str]], findings: Findings) -> None:
    """Generate, sweep and send every case (runs in a worker thread)."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", timeout=10)
    sender = Sender(base_url, findings)
    for result in schema.get_all_operations():
        operation = result.ok()
        sweep(operation, ids, sender)
        generate(operation, ids, sender)


async def _seed(client: httpx.AsyncClient) -> dict[str, list[str]]:
    """Content, comments and replies, a publication and a ban to aim at."""
    def auth(who: str) -> dict:
        return {"Authorization": f"Bearer {IDENTITIES[who]}"}

    comments = []
    for i in range(6):
        r = await client.post(f"/v1/content/fz-{i % 3}/comments", json={"body": f"seed {i}"},
                              headers=auth("user" if i % 2 else "other"))
        assert r.status_code == 201, r.text
        comments.append(r.json()["id"])
    r = await client.post("/v1/content/fz-0/comments",
                          json={"body": "a reply", "parent": comments[0]}, headers=auth("user"))
    assert r.status_code == 201, r.text
    comments.append(r.json()["id"])
    r = await client.post("/v1/content", headers=auth("publisher"), json={
        "content": "fz-pub-1", "title": "Fuzzed", "url": "https://example.com/fz",
        "author": "fz-author"})
    assert r.status_code == 202, r.text
    r = await client.put("/v1/moderation/bans/fz-banned", json={"seconds": 600},
                         headers=auth("moderator"))
    assert r.status_code == 200, r.text
    users = ["fz-user", "fz-other", "fz-banned", "fz-author", "fz-mod"]
    return {"content_id": ["fz-0", "fz-1", "fz-2", "fz-pub-1"], "comment_id": comments,
            "user": users, "author": users}


async def test_http_fuzz(server, client, auth, token, caplog):
    ids = await _seed(client)
    findings = Findings()
    started = time.monotonic()
    await trio.to_thread.run_sync(partial(fuzz, server, ids, findings))
    elapsed = time.monotonic() - started
    print(f"\nHTTP fuzz: {findings.summary()} in {elapsed:.1f} s; nothing to generate for "
          f"{', '.join(findings.skipped) or 'none'}")

    assert not findings.server_errors, "5xx answers:\n" + "\n".join(findings.server_errors)
    assert not findings.hangs, f"no answer within {REQUEST_TIMEOUT} s:\n" + \
        "\n".join(findings.hangs)
    assert not findings.not_problems, "4xx that are not problem+json:\n" + \
        "\n".join(findings.not_problems)
    assert not findings.mismatches, "answers the document does not describe:\n" + \
        "\n\n".join(findings.mismatches.values())
    trouble = server_trouble(caplog.records)
    assert not trouble, "the server logged trouble:\n" + "\n".join(trouble)
    assert findings.total >= 1000
    assert {"anonymous", "user", "moderator", "publisher", "admin"} <= set(findings.by_who)

    # The server is still healthy and does its job.
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    r = await client.put("/v1/content/after-fuzz/like", headers=auth("after-fuzz"))
    assert r.status_code == 200 and r.json() == {"liked": True, "likes": 1}
    r = await client.post("/v1/content/after-fuzz/comments", json={"body": "still here"},
                          headers=auth("after-fuzz"))
    assert r.status_code == 201, r.text
    listed = (await client.get("/v1/content/after-fuzz/comments")).json()["items"]
    assert [c["body"] for c in listed] == ["still here"]
    # Publishing still flows: nothing the fuzzer published blocks the stream.
    publisher = {"Authorization": f"Bearer {token('after-fuzz-pub', roles=['publisher'])}"}
    r = await client.post("/v1/content", headers=publisher, json={
        "content": "after-fuzz", "title": "After", "url": "https://example.com/after",
        "author": "after-fuzz-author"})
    assert r.status_code == 202, r.text
    with trio.fail_after(15):
        while True:
            r = await client.get("/v1/content", params={"author": "after-fuzz-author"})
            if r.json()["items"]:
                break
            await trio.sleep(0.2)
