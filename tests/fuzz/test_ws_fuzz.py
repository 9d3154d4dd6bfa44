"""Hypothesis-generated WebSocket traffic against the running server.

A few long-lived connections (JSON and msgpack, signed in and anonymous) get
exchanges of one to a few dozen frames: valid ops with random field values,
unknown ops, unknown and missing fields, wrong types, huge and odd numbers,
random refs, unicode edge cases (lone surrogates escaped in JSON, NUL,
bidi controls, noncharacters), deep nesting, non-JSON text, binary frames on
the JSON wire, text frames on the msgpack wire, random bytes, msgpack with
bin, ext and non-string keys. Every frame stays under ``ws_max_message_bytes``.

The protocol says (docs/protocol.md) every client frame gets one reply:
``ack``, ``error``, ``subscribed`` or ``pong``, echoing the frame's ``ref``
when it has a usable one (a string or an integer of at most 64 characters),
and ``ref: null`` otherwise, including frames that do not parse (a lone
surrogate, for one). Interaction acks may overtake each other, so replies
are matched by ref. Checked: every frame gets its reply within the op timeout
(no silent drops), nothing is answered twice, error frames carry a
documented ``code`` and a ``message``, no connection is closed, the server
logs no errors, and afterwards it is healthy and a like and a comment work.

The hypothesis engine runs in a worker thread; each exchange runs in the
test's trio loop (``trio.from_thread.run``). ``ENGAGE_FUZZ_SCALE`` scales the
number of exchanges, as for the HTTP fuzzer.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import trio
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, connect_websocket_url

from engage.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.fuzz import server_trouble

SCALE = float(os.environ.get("ENGAGE_FUZZ_SCALE", "1"))
EXCHANGES = max(1, round(500 * SCALE))
#: Seconds an exchange may wait for its replies (ops wait 10 s on their actor).
EXCHANGE_TIMEOUT = 15.0
MAX_REF = 64
REPLY_TYPES = {"ack", "error", "subscribed", "pong"}
EVENT_TYPES = {"counts", "comment", "comment_updated", "comment_deleted", "published",
               "notification"}
PROTOCOL = Path(__file__).parents[2] / "docs" / "protocol.md"


def documented_codes() -> set[str]:
    """The codes listed under "Error codes" in docs/protocol.md."""
    section = PROTOCOL.read_text().split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", section))


DOCUMENTED_CODES = documented_codes()
OPS = ("auth", "subscribe", "unsubscribe", "view", "like", "unlike", "applaud", "comment",
       "ping")
FIELDS = {"auth": ("token",), "subscribe": ("content", "feed", "notifications", "since"),
          "unsubscribe": ("content", "feed", "notifications"), "view": ("content", "viewer"),
          "like": ("content",), "unlike": ("content",), "applaud": ("content", "count"),
          "comment": ("content", "body", "parent"), "ping": ()}
REPLY_OF = {"ping": {"pong"}, "subscribe": {"subscribed"}}

# -- connections ------------------------------------------------------------------------

TOKENS = {
    "ws-user": issue_token(JWT_SECRET, "ws-user"),
    "ws-mod": issue_token(JWT_SECRET, "ws-mod", roles=["moderator"]),
    "ws-pub": issue_token(JWT_SECRET, "ws-pub", roles=["publisher", "admin"]),
    "ws-other": issue_token(JWT_SECRET, "ws-other"),
}


@dataclass(frozen=True)
class Plan:
    """A long-lived connection: its wire, the token on its URL, and whether
    ``auth`` frames it gets may carry valid tokens (else it stays anonymous)."""

    name: str
    wire: str
    token: str | None
    may_sign_in: bool


PLANS = (
    Plan("anonymous json", "json", None, False),
    Plan("user json", "json", TOKENS["ws-user"], True),
    Plan("moderator msgpack", "msgpack", TOKENS["ws-mod"], True),
    Plan("anonymous msgpack", "msgpack", None, False),
    Plan("signs in later json", "json", None, True),
)

# -- values -------------------------------------------------------------------------------

CONTENT = ["ws-1", "ws-2", "ws-3", "ws-4", "ws-5"]
ODD_STRINGS = ["", " ", "\x00", "a\x00b", "\t", "\n", "\x7f", "\x1b[31m", "\u200b", "\u202e",
               "\ufeff", "\uffff", "\U0010ffff", "\ue000", "e\u0301", "🙂", "👩‍👩‍👧", "ﬁ",
               "²", "٣", "①", "a" * 64, "a" * 65, "a" * 129, "null", "[]", "{}", "<b>x</b>",
               "all", "author:", "author:x y", "content:x", "0", "-1", "1e3"]
BIG_INTS = [2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -(2 ** 63), 10 ** 18,
            10 ** 18 + 1, -(10 ** 18) - 1, 10 ** 19, 10 ** 30, -(10 ** 30), 10 ** 63,
            10 ** 64, 10 ** 70]


def text(wire: str, max_size: int = 40):
    """Any text; on the JSON wire (which can escape them) lone surrogates too."""
    chars = st.characters(codec="utf-8")
    if wire == "json":
        chars = st.one_of(chars, st.characters(categories=["Cs"]))
    return st.one_of(st.text(chars, max_size=max_size), st.sampled_from(ODD_STRINGS))


def ints(wire: str):
    """Integers; msgpack holds -2**63 .. 2**64-1, JSON any."""
    low, high = (-(2 ** 63), 2 ** 64 - 1) if wire == "msgpack" else (-(2 ** 80), 2 ** 80)
    return st.one_of(st.integers(-5, 70), st.integers(low, high),
                     st.sampled_from([i for i in BIG_INTS if low <= i <= high]))


def scalars(wire: str):
    options = [st.none(), st.booleans(), ints(wire),
               st.floats(allow_nan=False, allow_infinity=False), text(wire)]
    if wire == "msgpack":
        options.append(st.binary(max_size=20))
    return st.one_of(*options)


def values(wire: str):
    return st.recursive(
        scalars(wire),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(text(wire, 10), inner, max_size=4)),
        max_leaves=12)


def refs(wire: str):
    return st.one_of(st.integers(-1000, 10 ** 6), st.text(max_size=MAX_REF + 8), ints(wire),
                     text(wire, 70), values(wire))


def field_value(name: str, plan: Plan, comments: list[str]):
    """A value for ``name``: mostly plausible, sometimes odd."""
    wire = plan.wire
    tokens = list(TOKENS.values()) if plan.may_sign_in else []
    plausible = {
        "content": st.one_of(st.sampled_from(CONTENT),
                             st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)),
        "viewer": st.text(st.characters(codec="utf-8"), min_size=1, max_size=128),
        "count": st.integers(-2, 60),
        "body": st.one_of(st.text(st.characters(codec="utf-8"), min_size=1, max_size=300),
                          st.sampled_from(["hi", "x" * 5000, "x" * 5001, "  ", "a\x00b",
                                           "bad\x07bell", "line\r\nbreak"])),
        "parent": st.one_of(st.sampled_from(comments), st.integers(-3, 10 ** 19)),
        "token": st.one_of(st.sampled_from(tokens) if tokens else st.nothing(),
                           st.sampled_from(["", "x", "a.b.c", "Bearer x",
                                            issue_token(JWT_SECRET, "late", expires_in=-60),
                                            issue_token("another-secret-" + "y" * 32, "x")])),
        "feed": st.one_of(st.sampled_from(["all", "author:ws-user", "author:x"]),
                          text(wire).map(lambda t: "author:" + t)),
        "notifications": st.just(True),
        "since": st.fixed_dictionaries({"offset": st.integers(0, 10 ** 6),
                                        "epoch": st.text(max_size=64)}),
    }[name]
    return st.one_of(plausible, plausible, plausible, values(wire))


def one_in(n: int):
    """True about once in ``n`` draws (``st.integers`` leans towards its bounds)."""
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def op_frames(draw, plan: Plan, comments: list[str]):
    """An op object: valid, or bent (unknown op or field, missing or wrong fields)."""
    wire = plan.wire
    op = draw(st.sampled_from(OPS))
    names = FIELDS[op]
    if op in ("subscribe", "unsubscribe"):
        chosen = [draw(st.sampled_from(["content", "feed", "notifications"]))]
        if draw(st.booleans()) and op == "subscribe":
            chosen.append("since")
        if draw(one_in(10)):
            chosen.append(draw(st.sampled_from(names)))  # two subjects: refused
    else:
        chosen = [n for n in names if n not in ("viewer", "parent") or draw(st.booleans())]
    frame: dict[str, Any] = {"op": op}
    for name in chosen:
        frame[name] = draw(field_value(name, plan, comments))
    if not draw(one_in(4)):
        frame["ref"] = draw(refs(wire))
    bend = draw(st.sampled_from([None] * 6 + [0, 1, 2, 3]))
    if bend == 0:  # unknown op, or an op that is not a string
        frame["op"] = draw(st.one_of(text(wire, 12), values(wire)))
    elif bend == 1:  # an unknown field
        frame[draw(text(wire, 12).filter(lambda k: k not in ("op", "ref") + names))] = \
            draw(values(wire))
    elif bend == 2 and len(frame) > 1:  # a field missing
        del frame[draw(st.sampled_from(sorted(k for k in frame if k != "op")))]
    elif bend == 3:  # no op at all
        del frame["op"]
    return frame


def deep(depth: int, open_: str, close: str) -> str:
    return open_ * depth + close * depth


#: Nesting depths; the protocol sets no limit, so a frame nested 500 or more
#: deep may be answered with its ref or, if the server cannot read it, null.
DEPTHS = [10, 500, 2000, 5000, 20000]
LENIENT_DEPTH = 500


@st.composite
def raw_json_frames(draw):
    """(text, lenient): text that is not a plain op object: not JSON, not an
    object, deeply nested, NaN, trailing garbage, truncated."""
    kind = draw(st.sampled_from(range(8)))
    ref = draw(st.one_of(st.none(), st.integers(0, 999), st.text(max_size=10)))
    prefix = '{"op":"ping","ref":' + json.dumps(ref)
    if kind == 0:
        return draw(st.text(max_size=200)), False
    if kind == 1:
        depth = draw(st.sampled_from(DEPTHS))
        return prefix + ',"x":' + deep(depth, "[", "]") + "}", depth >= LENIENT_DEPTH
    if kind == 2:
        return deep(draw(st.sampled_from(DEPTHS)), "[", "]"), False
    if kind == 3:
        return prefix + ',"x":' + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400",
                                                         "-0", "1.0e-400", "01", "+1"])) + "}", \
            False
    if kind == 4:
        return prefix + "}" + draw(st.sampled_from(["x", "}", " {}", "\x00", "[]"])), False
    if kind == 5:
        whole = prefix + "}"
        return whole[:draw(st.integers(0, len(whole) - 1))], False
    if kind == 6:
        return json.dumps(draw(values("json"))), False  # any JSON value, objects too
    depth = draw(st.sampled_from(DEPTHS[:4]))
    return prefix + ',"x":' + deep(depth, '{"a":', "") + "1" + deep(depth, "", "}") + "}", \
        depth >= LENIENT_DEPTH


@st.composite
def raw_msgpack_frames(draw):
    """(bytes, lenient): bytes that are not a plain op map: random, truncated,
    non-map, ext, non-string keys, deep nesting, trailing bytes."""
    kind = draw(st.sampled_from(range(7)))
    ref = draw(st.one_of(st.none(), st.integers(0, 999), st.text(max_size=10)))
    if kind == 0:
        return draw(st.binary(max_size=200)), False
    if kind == 1:
        whole = msgpack.packb({"op": "ping", "ref": ref})
        return whole[:draw(st.integers(0, len(whole) - 1))], False
    if kind == 2:
        return msgpack.packb(draw(values("msgpack"))), False
    if kind == 3:
        ext = msgpack.ExtType(draw(st.integers(0, 127)), draw(st.binary(max_size=10)))
        return msgpack.packb({"op": "ping", "ref": ref, "x": ext}), False
    if kind == 4:
        return msgpack.packb({"op": "ping", "ref": ref, 1: "int key", b"k": "bin key"},
                             strict_types=False), False
    if kind == 5:
        depth = draw(st.sampled_from(DEPTHS))
        return (b"\x83" + msgpack.packb("op") + msgpack.packb("ping") + msgpack.packb("ref")
                + msgpack.packb(ref) + msgpack.packb("x") + b"\x91" * depth + b"\xc0"), \
            depth >= LENIENT_DEPTH
    return msgpack.packb({"op": "ping", "ref": ref}) + draw(st.binary(min_size=1, max_size=8)), \
        False


# -- what the server must answer ---------------------------------------------------------

class Invalid(Exception):
    """Not a document the wire's format allows."""


def _reject_constant(name: str):
    raise Invalid(name)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: JSON's grammar allows it, no double holds it
        raise Invalid(text)
    return value


def _check_strings(value: Any) -> None:
    """JSON may escape a lone surrogate; UTF-8 (and so the server) cannot hold one."""
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise Invalid("lone surrogate")
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)


def parse(payload: str | bytes, wire: str) -> Any:
    """The document in a frame, as the protocol defines it.

    Raises:
        Invalid: the frame does not carry one (wrong frame type, malformed).
    """
    if wire == "json":
        if isinstance(payload, bytes):
            raise Invalid("binary frame on the JSON wire")
        try:
            document = json.loads(payload, parse_constant=_reject_constant,
                                  parse_float=_finite)
        except (ValueError, RecursionError) as exc:
            raise Invalid(str(exc)) from None
        _check_strings(document)
        return document
    if isinstance(payload, str):
        raise Invalid("text frame on the msgpack wire")
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises many kinds
        raise Invalid(str(exc)) from None


def usable_ref(ref: Any) -> bool:
    return (isinstance(ref, str) or (isinstance(ref, int) and not isinstance(ref, bool))) \
        and len(str(ref)) <= MAX_REF


def key(ref: Any) -> tuple:
    """Refs compare by type too (``1`` is not ``True`` nor ``1.0``)."""
    return (type(ref).__name__, ref)


@dataclass
class Expect:
    """The reply one frame is owed: its ref (one of ``refs``) and type."""

    refs: list[tuple]
    types: set[str]
    what: str


def expect(payload: str | bytes, wire: str) -> Expect:
    what = repr(payload[:300])
    if isinstance(payload, bytes) != (wire == "msgpack"):
        # The wrong frame type is an error; its ref is echoed if the server
        # happens to read it (JSON sent as a binary frame), else null.
        refs = [key(None)]
        try:
            if wire == "json":
                document = parse(payload.decode("utf-8"), "json")
            else:
                document = parse(payload.encode("utf-8", "surrogatepass"), "msgpack")
        except (Invalid, UnicodeDecodeError):
            document = None
        if isinstance(document, dict) and usable_ref(document.get("ref")):
            refs.append(key(document["ref"]))
        return Expect(refs, {"error"}, what)
    try:
        document = parse(payload, wire)
    except Invalid:
        return Expect([key(None)], {"error"}, what)
    if not isinstance(document, dict):
        return Expect([key(None)], {"error"}, what)
    ref = document.get("ref")
    ref_key = key(ref) if usable_ref(ref) else key(None)
    op = document.get("op")
    types = {"error"} | (REPLY_OF.get(op, {"ack"}) if op in OPS else set())
    refs = [ref_key]
    if wire == "msgpack" and any(not isinstance(k, str) for k in document):
        refs.append(key(None))  # a map with non-string keys: the server may not read ref
    return Expect(refs, types, what)


# -- running exchanges ------------------------------------------------------------------

@dataclass
class Findings:
    frames: Counter = field(default_factory=Counter)
    exchanges: int = 0
    replies: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    events: int = 0
    silent: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)


@dataclass
class Frame:
    payload: str | bytes
    kind: str
    expect: Expect


class Connection:
    """One long-lived client connection, reopened if the server drops it."""

    def __init__(self, plan: Plan, url: str, nursery: trio.Nursery) -> None:
        self.plan = plan
        self.url = url
        self.nursery = nursery
        self.ws = None

    async def open(self) -> None:
        url = self.url + (f"?token={self.plan.token}" if self.plan.token else "")
        subprotocols = ["engage.msgpack"] if self.plan.wire == "msgpack" else None
        self.ws = await connect_websocket_url(self.nursery, url, subprotocols=subprotocols,
                                              message_queue_size=64)

    def decode(self, raw: str | bytes) -> dict:
        if self.plan.wire == "msgpack":
            assert isinstance(raw, bytes), "text frame on the msgpack wire"
            return msgpack.unpackb(raw, raw=False, strict_map_key=False)
        assert isinstance(raw, str), "binary frame on the JSON wire"
        return json.loads(raw)


def matching(owed: list[Expect], replies: list[dict]) -> bool:
    """Whether each reply can be paired with a different frame it answers
    (Kuhn's augmenting paths; a handful of frames per exchange)."""
    fits = [[i for i, e in enumerate(owed) if key(r["ref"]) in e.refs and r["type"] in e.types]
            for r in replies]
    owner: dict[int, int] = {}

    def place(r: int, seen: set[int]) -> bool:
        for i in fits[r]:
            if i not in seen:
                seen.add(i)
                if i not in owner or place(owner[i], seen):
                    owner[i] = r
                    return True
        return False

    return all(place(r, set()) for r in range(len(replies)))


async def run_exchange(conn: Connection, frames: list[Frame], findings: Findings) -> None:
    """Send the frames, read one reply per frame, and check they pair up."""
    owed = [f.expect for f in frames]
    replies: list[dict] = []
    label = f"{conn.plan.name}: " + " | ".join(f.expect.what for f in frames)[:1500]
    try:
        for frame in frames:
            await conn.ws.send_message(frame.payload)
        with trio.move_on_after(EXCHANGE_TIMEOUT) as waited:
            while len(replies) < len(frames):
                reply = conn.decode(await conn.ws.get_message())
                kind = reply.get("type") if isinstance(reply, dict) else None
                if kind in EVENT_TYPES:
                    findings.events += 1
                    continue
                findings.replies[kind] += 1
                if kind not in REPLY_TYPES or "ref" not in reply:
                    findings.unexpected.append(f"{label}\n  -> not a reply: {reply!r:.300}")
                    continue
                if kind == "error":
                    code = reply.get("code")
                    findings.codes[code] += 1
                    if code not in DOCUMENTED_CODES or not isinstance(reply.get("message"), str):
                        findings.undocumented.append(f"{label}\n  -> {reply!r:.300}")
                replies.append(reply)
        if waited.cancelled_caught:
            findings.silent.append(f"{label}\n  -> {len(replies)} replies to {len(frames)} "
                                   f"frames: {replies!r:.1000}")
            await conn.ws.aclose()
            await conn.open()  # resynchronise: late replies would confuse the next exchange
        elif not matching(owed, replies):
            findings.unexpected.append(
                f"{label}\n  -> replies {replies!r:.1000}\n  owed "
                f"{[(e.refs, sorted(e.types)) for e in owed]!r:.1000}")
    except ConnectionClosed as exc:
        findings.disconnects.append(f"{label}\n  -> closed: {exc.reason}")
        await conn.open()


def encode_op(frame: dict, wire: str) -> str | bytes:
    if wire == "msgpack":
        return msgpack.packb(frame, strict_types=False)
    return json.dumps(frame, ensure_ascii=True)  # lone surrogates travel as \\udxxx


@st.composite
def exchanges(draw, plans: tuple[Plan, ...], comments: list[str], max_bytes: int):
    index = draw(st.sampled_from(range(len(plans))))
    plan = plans[index]
    frames = []
    pipelined = draw(one_in(30))
    count = draw(st.integers(20, 40)) if pipelined else draw(st.integers(1, 6))
    for _ in range(count):
        lenient = False
        if pipelined:  # a burst of interactions: more than MAX_IN_FLIGHT at once
            frame = {"op": draw(st.sampled_from(["view", "like", "unlike", "applaud"])),
                     "content": draw(st.sampled_from(CONTENT)),
                     "ref": draw(st.integers(0, 10 ** 6))}
            payload, kind = encode_op(frame, plan.wire), "pipelined"
        else:
            choice = draw(st.sampled_from(range(10)))
            if choice < 7:
                payload, kind = encode_op(draw(op_frames(plan, comments)), plan.wire), "op"
            elif choice == 7:
                strategy = raw_json_frames() if plan.wire == "json" else raw_msgpack_frames()
                (payload, lenient), kind = draw(strategy), f"raw {plan.wire}"
            elif choice == 8:  # the other wire's frame type
                op = draw(op_frames(plan, comments))
                try:
                    if plan.wire == "json":
                        payload, kind = msgpack.packb(op, strict_types=False), "binary on json"
                    else:
                        payload, kind = json.dumps(op), "text on msgpack"
                except (OverflowError, UnicodeEncodeError, TypeError):  # not in that format
                    payload = json.dumps(op) if plan.wire == "json" else msgpack.packb(op)
                    payload = payload.encode() if isinstance(payload, str) else payload.hex()
                    kind = "binary on json" if plan.wire == "json" else "text on msgpack"
            else:
                payload, kind = encode_op({"op": "ping", "ref": draw(refs(plan.wire))},
                                          plan.wire), "ping"
        size = len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str)
                   else payload)
        if size >= max_bytes:
            continue
        expected = expect(payload, plan.wire)
        if lenient:
            expected.refs.append(key(None))
        frames.append(Frame(payload, kind, expected))
    return index, frames


def drive(conns: list[Connection], comments: list[str], max_bytes: int,
          findings: Findings) -> None:
    """The hypothesis engine (runs in a worker thread)."""
    plans = tuple(c.plan for c in conns)

    @hypothesis_settings(max_examples=EXCHANGES, deadline=None, database=None,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                         verbosity=Verbosity.quiet)
    @given(exchange=exchanges(plans, comments, max_bytes))
    def run(exchange):
        index, frames = exchange
        if not frames:
            return
        findings.exchanges += 1
        findings.frames.update(f.kind for f in frames)
        trio.from_thread.run(run_exchange, conns[index], frames, findings)

    run()


async def test_ws_fuzz(server, client, auth, settings, nursery, caplog):
    comments = []
    for i in range(3):
        r = await client.post(f"/v1/content/{CONTENT[i]}/comments", json={"body": f"seed {i}"},
                              headers=auth("ws-seed"))
        assert r.status_code == 201, r.text
        comments.append(r.json()["id"])
    url = server.replace("http://", "ws://") + "/v1/ws"
    conns = [Connection(plan, url, nursery) for plan in PLANS]
    for conn in conns:
        await conn.open()

    findings = Findings()
    started = time.monotonic()
    await trio.to_thread.run_sync(partial(drive, conns, comments,
                                          settings.ws_max_message_bytes, findings))
    elapsed = time.monotonic() - started
    total = sum(findings.frames.values())
    print(f"\nWebSocket fuzz: {total} frames in {findings.exchanges} exchanges "
          f"{dict(findings.frames)} in {elapsed:.1f} s; replies {dict(findings.replies)}; "
          f"{findings.events} event frames; error codes {dict(findings.codes.most_common())}")

    assert not findings.disconnects, "unexpected closes:\n" + "\n".join(findings.disconnects)
    assert not findings.silent, "frames without a reply:\n" + "\n".join(findings.silent)
    assert not findings.unexpected, "unexpected replies:\n" + "\n".join(findings.unexpected)
    assert not findings.undocumented, "undocumented errors:\n" + \
        "\n".join(findings.undocumented)
    trouble = server_trouble(caplog.records)
    assert not trouble, "the server logged trouble:\n" + "\n".join(trouble)
    assert total >= 1000 * min(SCALE, 1)

    # Every connection is still open and answers; the server is healthy and works.
    for conn in conns:
        await run_exchange(conn, [Frame(encode_op({"op": "ping", "ref": "last"}, conn.plan.wire),
                                        "ping", Expect([key("last")], {"pong"}, "ping"))],
                           findings)
    assert not findings.disconnects and not findings.silent
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    user = conns[1]
    with trio.fail_after(10):
        await user.ws.send_message(json.dumps({"op": "like", "content": "ws-after",
                                               "ref": "after-like"}))
        await user.ws.send_message(json.dumps({"op": "comment", "content": "ws-after",
                                               "body": "still here", "ref": "after-comment"}))
        replies = {}
        while len(replies) < 2:
            reply = json.loads(await user.ws.get_message())
            if reply.get("ref") in ("after-like", "after-comment"):
                replies[reply["ref"]] = reply
    assert replies["after-like"]["type"] == "ack"
    assert replies["after-like"]["result"]["liked"] is True
    assert replies["after-comment"]["type"] == "ack"
    assert replies["after-comment"]["result"]["comment"]["body"] == "still here"
    r = await client.get("/v1/content/ws-after")
    assert r.json()["likes"] == 1 and r.json()["comments"] == 1
    for conn in conns:
        await conn.ws.aclose()
