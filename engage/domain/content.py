"""Published content metadata: validation with no I/O."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from engage.domain.counters import validate_content_id
from engage.errors import ValidationError

MAX_TITLE = 500
MAX_URL = 2048
MAX_TAGS = 32
MAX_TAG = 64
MAX_AUTHOR = 128
#: Page sizes of ``GET /v1/content``.
DEFAULT_CONTENT_PAGE = 20
MAX_CONTENT_PAGE = 100
#: An author id inside a feed name: printable, no spaces.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_AUTHOR_RE = re.compile(rf"[^\s\x00-\x1f\x7f]{{1,{MAX_AUTHOR}}}")


@dataclass(frozen=True, slots=True)
class ContentMeta:
    """What a CMS says about a piece of content when it publishes it."""

    id: str
    title: str
    url: str
    author: str
    published_at: datetime
    tags: tuple[str, ...] = field(default_factory=tuple)

    def public(self) -> dict:
        return {
            "id": self.id, "title": self.title, "url": self.url, "author": self.author,
            "published_at": self.published_at.astimezone(timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tags": list(self.tags),
        }


def parse_publish_event(fields: dict[str, str], *, now: datetime | None = None) -> ContentMeta:
    """Validate a publish event's plain string fields (stream entry or JSON object).

    Raises:
        ValidationError: a missing or malformed field, with a clear detail.
    """
    def text(name: str, limit: int) -> str:
        value = fields.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"publish event needs a non-empty {name!r}",
                                  code="invalid_publish_event")
        if len(value) > limit:
            raise ValidationError(f"{name!r} is longer than {limit} characters",
                                  code="invalid_publish_event")
        return value.strip()

    content_id = validate_content_id(fields.get("content"))
    title = text("title", MAX_TITLE)
    url = text("url", MAX_URL)
    if not url.startswith(("http://", "https://")):
        raise ValidationError("'url' must be an http(s) URL", code="invalid_publish_event")
    author = text("author", MAX_AUTHOR)
    raw_when = fields.get("published_at")
    if raw_when in (None, ""):
        published_at = now or datetime.now(timezone.utc)
    else:
        try:
            published_at = datetime.fromisoformat(str(raw_when).replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("'published_at' must be ISO 8601",
                                  code="invalid_publish_event") from None
        if published_at.tzinfo is None:
            published_at = published_at.replace(tzinfo=timezone.utc)
        try:  # stored and shown in UTC: 0001-01-01T00:00+01:00 has no UTC datetime
            published_at.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("'published_at' is out of range in UTC",
                                  code="invalid_publish_event") from None
    raw_tags = fields.get("tags") or ""
    if not isinstance(raw_tags, str):
        raise ValidationError("'tags' must be a comma-separated string",
                              code="invalid_publish_event")
    tags = tuple(t.strip() for t in raw_tags.split(",") if t.strip())
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise ValidationError(f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters",
                              code="invalid_publish_event")
    return ContentMeta(content_id, title, url, author, published_at, tags)


def feed_subject(feed: object) -> str:
    """The real-time subject of a WebSocket feed name.

    ``"all"`` is every publication (``feed:all``); ``"author:<id>"`` is one
    author's (``feed:author:<id>``).

    Raises:
        ValidationError: any other name.
    """
    if feed == "all":
        return "feed:all"
    if isinstance(feed, str) and feed.startswith("author:") and \
            _AUTHOR_RE.fullmatch(feed[len("author:"):]):
        return f"feed:{feed}"
    raise ValidationError('feed must be "all" or "author:<author id>"', code="invalid_feed")


def validate_content_page(limit: object) -> int:
    """The page size of a content listing (default 20, at most 100)."""
    try:
        size = DEFAULT_CONTENT_PAGE if limit in (None, "") else int(limit)  # type: ignore[arg-type]
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_CONTENT_PAGE:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_CONTENT_PAGE}",
                              code="invalid_limit")
    return size


def encode_content_cursor(meta: ContentMeta) -> str:
    """An opaque cursor that continues a listing after ``meta``."""
    micros = (meta.published_at - _EPOCH) // _MICROSECOND  # exact: no float rounding
    raw = f"{micros}:{meta.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_content_cursor(cursor: str) -> tuple[datetime, str]:
    """``(published_at, id)`` of a cursor from :func:`encode_content_cursor`.

    Raises:
        ValidationError: anything we did not issue.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, content_id = raw.split(":", 1)
        return _EPOCH + int(micros) * _MICROSECOND, validate_content_id(content_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError,
            ValidationError):
        raise ValidationError("cursor is not one this server issued",
                              code="invalid_cursor") from None


def parse_publish_fields(fields: dict) -> ContentMeta:
    """:func:`parse_publish_event`, also refusing what Postgres would refuse forever.

    Raises:
        ValidationError: a value is not a string (or was not UTF-8: ``None``),
            holds a NUL character, or fails :func:`parse_publish_event`.
    """
    for name, value in fields.items():
        if not isinstance(value, str):
            raise ValidationError(f"{name!r} must be a UTF-8 string (tags comma-separated)",
                                  code="invalid_publish_event")
        if "\x00" in value:
            raise ValidationError(f"{name!r} contains a NUL character",
                                  code="invalid_publish_event")
    return parse_publish_event(fields)
