"""RFC 9457 problem details: every HTTP error Engage returns."""

from __future__ import annotations

import json
import math
import logging

from quart import Response
from werkzeug.exceptions import HTTPException

from engage import metrics
from engage.http1.response import PROBLEM_JSON
from engage.errors import (ActorError, ClientError, StoreError, TooManyChildren, TooManyRequests,
                           Unavailable)

log = logging.getLogger(__name__)



def problem(status: int, title: str, detail: str, *, code: str,
            headers: dict[str, str] | None = None, **extra) -> Response:
    """A ``application/problem+json`` response."""
    metrics.HTTP_ERRORS.labels(str(status)).inc()
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": code, **extra}
    return Response(json.dumps(body), status=status, content_type=PROBLEM_JSON,
                    headers=headers or {})


def client_error_parts(exc: ClientError) -> tuple[dict[str, str], dict]:
    """The extra headers and fields of ``exc``'s problem (429: ``Retry-After``)."""
    if isinstance(exc, TooManyRequests):
        # Whole seconds, rounded up: a client that waits Retry-After passes.
        seconds = max(1, math.ceil(exc.retry_after))
        return {"Retry-After": str(seconds)}, {"retry_after": exc.retry_after}
    return {}, {}


def from_client_error(exc: ClientError) -> Response:
    headers, extra = client_error_parts(exc)
    return problem(exc.status, exc.title, exc.detail, code=exc.code, headers=headers, **extra)


def as_client_error(exc: Exception) -> ClientError | None:
    """What a failure means to the client, or None for a bug (500).

    Store outages and busy actors are 503s the client may retry.
    """
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, StoreError):
        return Unavailable("a backing store is unavailable; retry shortly",
                           code="store_unavailable")
    if isinstance(exc, ActorError):
        detail = ("too many active items on this server; retry shortly"
                  if isinstance(exc, TooManyChildren) else "the server is busy; retry shortly")
        return Unavailable(detail, code="busy")
    return None


def from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(status, "http_error")
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    if status == 413:
        headers["Connection"] = "close"
    return problem(status, exc.name, exc.description or exc.name, code=code, headers=headers)


def from_unexpected(exc: BaseException) -> Response:
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return problem(500, "Internal server error",
                   "the server failed to handle this request; it has been logged",
                   code="internal")
