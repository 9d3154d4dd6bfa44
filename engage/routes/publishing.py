"""Publishing routes: a CMS announces content, readers list what was published.

``POST /v1/content`` is the HTTP door to the publish stream (see
docs/publishing.md): it validates the event, appends it exactly as a CMS
would with ``XADD <prefix>publish``, and answers 202 before the publisher
actor has stored it. ``GET /v1/content`` lists published content, newest first.
"""

from __future__ import annotations

import msgspec
from quart import request
from quart_trio import QuartTrio

from engage import web
from engage.domain.content import (
    decode_content_cursor,
    encode_content_cursor,
    parse_publish_fields,
    validate_content_page,
)
from engage.errors import ValidationError
from engage.store.keys import Keys
from engage.store.publishing import PublishStream
from engage.system import System
from engage.schemas import PublishBody
from engage.web import ok


def register(app: QuartTrio, system: System) -> None:
    """Add the publishing routes to ``app``."""
    settings = system.settings
    stream = PublishStream(system.stores.redis, system.stores.bridge,
                           Keys(settings.redis_prefix), settings.redis_url)  # appends only

    @app.post("/v1/content")
    async def publish_content():
        web.require_user(settings, "publisher")
        fields = {k: v for k, v in msgspec.structs.asdict(await web.body(PublishBody)).items()
                  if v is not None}
        meta = parse_publish_fields(fields)  # refuse now what the consumer would dead-letter
        event_id = await stream.append(fields)
        return ok({"id": event_id, "content": meta.id}, 202)

    @app.get("/v1/content")
    async def list_content():
        author = request.args.get("author") or None
        if author is not None and "\x00" in author:  # Postgres text cannot hold NUL
            raise ValidationError("author must not contain NUL", code="invalid_author")
        limit = validate_content_page(request.args.get("limit"))
        cursor = request.args.get("cursor")
        after = decode_content_cursor(cursor) if cursor else None
        items, more = await system.stores.content_meta.newest(author, after, limit)
        next_cursor = encode_content_cursor(items[-1]) if more and items else None
        return ok({"items": [m.public() for m in items], "next": next_cursor})
