"""What a hot route needs from a request, and how it answers: identity, address,
bodies, JSON and problem responses, without a framework in between.

The same rules as the quart routes' helpers (:mod:`engage.web`,
:mod:`engage.problems`): a declared non-JSON body on a state-changing request
is 415, bodies are decoded by the msgspec schemas, errors are problem+json
with the codes of :mod:`engage.errors`.
"""

from __future__ import annotations

import logging
from typing import Final, TypeVar

import msgspec

from engage import problems
from engage.auth import Identity, parse_authorization
from engage.domain.address import client_address
from engage.errors import UnsupportedMediaType
from engage.http1 import Request, Response
from engage.http1.response import problem
from engage.schemas.base import decode_body
from engage.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

JSON: Final = [("content-type", "application/json")]
STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_encode = msgspec.json.Encoder().encode


def json_response(body: object, status: int = 200) -> Response:
    return Response(status, _encode(body), JSON)


def identity(request: Request, settings: Settings) -> Identity | None:
    """The caller from ``Authorization``; None if anonymous.

    Raises:
        Unauthorized: a token is present but not valid.
    """
    return parse_authorization(request.header_str(b"authorization"), settings)


def address(request: Request, settings: Settings) -> str:
    """The caller's address for rate limits (``X-Forwarded-For`` only from trusted proxies)."""
    return client_address(request.client[0], request.header_str(b"x-forwarded-for"),
                          settings.proxies)


def refuse_non_json(request: Request) -> None:
    """A state-changing request that declares a non-JSON body is 415, body or not
    (HTML forms cannot send JSON without a CORS preflight).

    Raises:
        UnsupportedMediaType: it declares another type.
    """
    if request.method in STATE_CHANGING and request.header(b"content-type") \
            and request.media_type != "application/json":
        raise UnsupportedMediaType("state-changing requests take Content-Type: "
                                   "application/json (or no body)")


def body(request: Request, schema: type[T], *, required: bool = True) -> T | None:
    """The JSON body decoded against ``schema``; None if empty and not ``required``.

    Raises:
        ValidationError: missing, malformed, or not fitting the schema.
        UnsupportedMediaType: a body that is not ``application/json``.
    """
    return decode_body(request.body, request.media_type, schema, required=required)


def error_response(exc: Exception, request: Request) -> Response:
    """The problem+json answer for a failed hot request (500 and a log line for a bug)."""
    error = problems.as_client_error(exc)
    if error is None:
        log.error("unhandled error in %s %r", request.method, request.target[:200],
                  exc_info=(type(exc), exc, exc.__traceback__))
        return problem(500, "the server failed to handle this request; it has been logged",
                       code="internal")
    headers, extra = problems.client_error_parts(error)
    return problem(error.status, error.detail, code=error.code,
                   headers=list(headers.items()), title=error.title, **extra)
