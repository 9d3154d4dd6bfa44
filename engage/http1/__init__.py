"""HTTP/1.1 on trio: our own server for every HTTP request (docs/decisions.md §12).

    parser.py      bytes -> requests (httptools/llhttp), limits: head 431, body 413, 505
    request.py     Request and Response, plain classes
    response.py    framing answers: status line, Date, nosniff, Content-Length, problems
    connection.py  one connection: keep-alive, pipelining, deadlines, 100-continue, closing
    admission.py   connection caps: per process (below the descriptor limit) and per address
    asgi.py        the ASGI bridge to the quart-trio app, and its lifespan
"""

from engage.http1.admission import (Admission, connection_capacity, raise_descriptor_limit,
                                    refuse_now)
from engage.http1.asgi import AsgiBridge, run_lifespan
from engage.http1.connection import KEEP_ALIVE_TIMEOUT, REQUEST_TIMEOUT, HttpConnection
from engage.http1.parser import MAX_HEAD_BYTES, ParseError, RequestParser
from engage.http1.request import Request, Response
from engage.http1.response import encode_response, problem, problem_body

__all__ = [
    "Admission", "AsgiBridge", "HttpConnection", "KEEP_ALIVE_TIMEOUT", "MAX_HEAD_BYTES",
    "ParseError", "REQUEST_TIMEOUT", "Request", "RequestParser", "Response",
    "connection_capacity", "encode_response", "problem", "problem_body",
    "raise_descriptor_limit", "refuse_now", "run_lifespan",
]
