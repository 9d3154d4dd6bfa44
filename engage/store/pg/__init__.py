"""A trio-native Postgres client for the hot statements (docs/decisions.md §15).

asyncpg on the trio-asyncio bridge stays the driver for everything else:
migrations, flushes, listings, moderation. The comment path's statements
(authors' standing, the insert) run here, without a bridge crossing.
"""

from engage.store.pg.address import PgAddress
from engage.store.pg.connection import PgConnection
from engage.store.pg.pool import CALL_TIMEOUT, PgPool

__all__ = ["CALL_TIMEOUT", "PgAddress", "PgConnection", "PgPool"]
