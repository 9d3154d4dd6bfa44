"""The OpenAPI 3.1 document of the HTTP API (served at ``GET /openapi.json``).

``routes.py`` holds the table, ``responses.py`` the response structs,
``document.py`` builds the document and compares it with the app.

:data:`ROUTES` is the table: one :class:`Route` per method and path, saying
who may call it, what it takes and what it answers. Request bodies are the
msgspec structs the routes decode with (:mod:`engage.schemas.http`); response
bodies are the structs below, which only describe (nothing decodes with
them). Value rules that live in :mod:`engage.domain` rather than in the
structs (content id syntax, ranges, lengths) are added to the generated
schemas by :func:`_refine`, with the configured limits.

:func:`build_document` runs once at start-up (``engage/routes/openapi.py``);
:func:`undocumented` lists the app's routes the table does not cover, so
tests/test_openapi.py can fail when a route is added without a row here.
"""

from engage.openapi.document import (build_document, encode_document, routes_for, rule_path,
                                     undocumented)
from engage.openapi.responses import REQUEST_STRUCTS, RESPONSE_STRUCTS
from engage.openapi.routes import ROUTES, Route

__all__ = ["REQUEST_STRUCTS", "RESPONSE_STRUCTS", "ROUTES", "Route", "build_document",
           "encode_document", "routes_for", "rule_path", "undocumented"]
