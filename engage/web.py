"""Request helpers shared by every route module: identity, JSON bodies, replies."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from quart import Response, request

from engage.auth import Identity, parse_authorization
from engage.domain.address import client_address
from engage.errors import Forbidden, Unauthorized, UnsupportedMediaType
from engage.schemas.base import decode_body
from engage.settings import Settings

T = TypeVar("T")

#: Seconds a request waits on an actor before answering 503.
REQUEST_TIMEOUT = 10.0


def current_identity(settings: Settings) -> Identity | None:
    """The caller's identity from ``Authorization``, or ``None`` if anonymous.

    Raises:
        Unauthorized: a token is present but not valid.
    """
    return parse_authorization(request.headers.get("Authorization"), settings)


def current_user(settings: Settings) -> str | None:
    identity = current_identity(settings)
    return identity.user if identity else None


def require_user(settings: Settings, role: str | None = None) -> Identity:
    """The signed-in caller, optionally with ``role``.

    Raises:
        Unauthorized: no valid token.
        Forbidden: the token lacks ``role``.
    """
    identity = current_identity(settings)
    if identity is None:
        raise Unauthorized("sign in first (Authorization: Bearer <token>)")
    if role is not None and not identity.has(role):
        raise Forbidden(f"this needs the {role!r} role", code="missing_role")
    return identity


async def body(schema: type[T], *, required: bool = True) -> T | None:
    """The request's JSON body decoded against ``schema`` (a msgspec struct).

    Returns ``None`` for an empty body when not ``required``.

    Raises:
        ValidationError: missing, malformed, or not fitting the schema (unknown
            fields, wrong types), with a stable code.
        UnsupportedMediaType: a body that is not ``application/json``.
    """
    raw = await request.get_data(as_text=False)
    return decode_body(raw, request.mimetype, schema, required=required)


async def refuse_non_json() -> None:
    """Before every state-changing request: a declared body type other than
    JSON is refused, body or not. (A coroutine: quart-trio runs plain
    functions in a worker thread, which cost more than the whole check.)

    HTML forms can only send ``application/x-www-form-urlencoded``,
    ``multipart/form-data`` or ``text/plain``, without a CORS preflight; so no
    other site's page can make a browser change anything here.

    Raises:
        UnsupportedMediaType: the request declares a non-JSON body.
    """
    if request.method in ("POST", "PUT", "PATCH", "DELETE") \
            and request.headers.get("Content-Type") and request.mimetype != "application/json":
        raise UnsupportedMediaType("state-changing requests take Content-Type: "
                                   "application/json (or no body)")


def ok(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status,
                    content_type="application/json")


def client_ip(settings: Settings) -> str:
    """The caller's address for per-address rate limits (``X-Forwarded-For``
    only from ``trusted_proxies``)."""
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          settings.proxies)
