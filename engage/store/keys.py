"""Every Redis key Engage uses, in one place, under one prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix`` (default ``engage:``)."""

    prefix: str = "engage:"

    def counts(self, content_id: str) -> str:
        return f"{self.prefix}c:{content_id}"

    def likers(self, content_id: str) -> str:
        return f"{self.prefix}likers:{content_id}"

    def applause(self, content_id: str) -> str:
        return f"{self.prefix}clap:{content_id}"

    def hll(self, content_id: str) -> str:
        return f"{self.prefix}hll:{content_id}"

    def view_seen_prefix(self, content_id: str) -> str:
        """Prefix of the per-viewer keys that de-duplicate views of an item."""
        return f"{self.prefix}seen:{content_id}:"

    def content_keys(self, content_id: str) -> list[str]:
        return [self.counts(content_id), self.likers(content_id),
                self.applause(content_id), self.hll(content_id)]

    def stage(self, token: str, part: str) -> str:
        return f"{self.prefix}stage:{token}:{part}"

    @property
    def events(self) -> str:
        """The event log stream (see engage/store/events.py)."""
        return f"{self.prefix}events"

    @property
    def publish_stream(self) -> str:
        """The publish stream a CMS appends to (see engage/store/publishing.py).

        Also the pub/sub channel of the at-most-once ``PUBLISH`` alternative.
        """
        return f"{self.prefix}publish"

    @property
    def publish_dead(self) -> str:
        """Dead letters of the publish stream, each with a ``reason`` field."""
        return f"{self.prefix}publish:dead"

    @property
    def pending(self) -> str:
        return f"{self.prefix}pending"

    @property
    def pending_since(self) -> str:
        return f"{self.prefix}pending:since"

    @property
    def like_seq(self) -> str:
        return f"{self.prefix}seq:likes"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    @property
    def batches(self) -> str:
        return f"{self.prefix}batches"

    @property
    def batches_since(self) -> str:
        return f"{self.prefix}batches:since"

    # -- real time ---------------------------------------------------------------

    def channel(self, subject: str) -> str:
        """Pub/sub channel of a subject (``content:<id>``, ``feed:all`` ...)."""
        return f"{self.prefix}ch:{subject}"

    def history(self, subject: str) -> str:
        return f"{self.prefix}hist:{subject}"

    def history_meta(self, subject: str) -> str:
        return f"{self.prefix}histmeta:{subject}"

    def watchers(self, subject: str) -> str:
        """Hash: instance id -> "<connections>:<expiry ms>"."""
        return f"{self.prefix}watch:{subject}"

    # -- rate limits ---------------------------------------------------------------

    def rate_limit(self, name: str) -> str:
        """String: a rate limit key's TAT in ms (see engage/store/lua/_gcra.lua).

        ``name`` says what and whose: ``"comment:u:alice"``, ``"ip:1.2.3.4"``.
        """
        return f"{self.prefix}rl:{name}"

    # -- moderation --------------------------------------------------------------

    def ban(self, user: str) -> str:
        """A banned user's mirror of their ban: value = the reason, expiring
        (``PX``) when the ban does. Postgres ``bans`` is the durable truth."""
        return f"{self.prefix}ban:{user}"
