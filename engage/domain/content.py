"""Published content metadata: validation with no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from engage.domain.counters import validate_content_id
from engage.errors import ValidationError

MAX_TITLE = 500
MAX_URL = 2048
MAX_TAGS = 32
MAX_TAG = 64
MAX_AUTHOR = 128


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
    raw_tags = fields.get("tags") or ""
    if not isinstance(raw_tags, str):
        raise ValidationError("'tags' must be a comma-separated string",
                              code="invalid_publish_event")
    tags = tuple(t.strip() for t in raw_tags.split(",") if t.strip())
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise ValidationError(f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters",
                              code="invalid_publish_event")
    return ContentMeta(content_id, title, url, author, published_at, tags)
