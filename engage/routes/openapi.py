"""``GET /openapi.json``: the OpenAPI 3.1 document of the HTTP API.

Built once, when the app is made (engage/openapi/ holds the route table),
and served as the same bytes every time. Routes the table does not cover are
logged at start-up (tests/test_openapi.py fails on them).
"""

from __future__ import annotations

import logging

from quart import Response
from quart_trio import QuartTrio

from engage import openapi
from engage.hot import HOT_RULES
from engage.system import System

log = logging.getLogger(__name__)


def register(app: QuartTrio, system: System) -> None:
    """Add ``GET /openapi.json`` to ``app`` (register it last: it checks the others)."""
    document = openapi.build_document(system.settings)
    encoded = openapi.encode_document(document)

    @app.get("/openapi.json")
    async def openapi_document():
        return Response(encoded, content_type="application/json")

    missing = openapi.undocumented([*app.url_map.iter_rules(), *HOT_RULES], document)
    if missing:
        log.warning("routes missing from /openapi.json (engage/openapi/): %s",
                    ", ".join(missing))
