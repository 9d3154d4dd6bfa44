"""Lua scripts: loaded once per client, run by SHA, reloaded if Redis forgot them."""

from __future__ import annotations

import re
from importlib import resources
from typing import Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

#: A whole line ``--#include <name>``: replaced by ``lua/_<name>.lua``. A Lua
#: comment, so a script with the line left in is still valid Lua.
_INCLUDE_RE = re.compile(r"^--#include[ \t]+([A-Za-z0-9_]+)[ \t]*$", re.MULTILINE)


def _lua_file(filename: str) -> str:
    return resources.files("engage.store").joinpath("lua", filename).read_text()


def script_source(name: str) -> str:
    """The text of ``engage/store/lua/<name>.lua``, includes expanded.

    A line ``--#include gcra`` is replaced by the text of ``lua/_gcra.lua``
    (the leading underscore marks a snippet that is not a script of its own),
    so scripts share Lua functions without Redis functions or copies. Snippets
    may include others; each is included at most once per script, which keeps
    their ``local function`` definitions from being repeated. Line numbers in
    Redis error messages count the expanded text.

    Raises:
        FileNotFoundError: a script or an included snippet does not exist.
    """
    seen: set[str] = set()

    def expand(text: str) -> str:
        def include(match: re.Match) -> str:
            snippet = match.group(1)
            if snippet in seen:
                return f"-- ({snippet} already included)"
            seen.add(snippet)
            return expand(_lua_file(f"_{snippet}.lua")).rstrip("\n")
        return _INCLUDE_RE.sub(include, text)

    return expand(_lua_file(f"{name}.lua"))


class Scripts:
    """A named set of Lua scripts for one redis-py client (asyncio side).

    Args:
        client: the redis-py asyncio client.
        names: script names under ``engage/store/lua/`` (without ``.lua``).
    """

    def __init__(self, client: aioredis.Redis, names: Sequence[str]) -> None:
        self.client = client
        self._sources = {name: script_source(name) for name in names}
        self._sha: dict[str, str] = {}

    async def _load(self) -> None:
        loaded = {name: await self.client.script_load(source)
                  for name, source in self._sources.items()}
        self._sha.update(loaded)  # all at once: nobody sees a half-filled table

    async def run_many(self, calls: Sequence[tuple[str, Sequence, Sequence]]) -> list:
        """Run ``(name, keys, args)`` calls in one pipeline; results in order.

        Scripts are (re)loaded first when Redis does not know them (a restart
        or SCRIPT FLUSH), once.
        """
        if len(self._sha) < len(self._sources):  # concurrent first callers may both load
            await self._load()
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for name, keys, args in calls:
                pipe.evalsha(self._sha[name], len(keys), *keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                await self._load()
        raise AssertionError("unreachable")

    async def run(self, name: str, keys: Sequence, args: Sequence):
        """Run one script."""
        (result,) = await self.run_many([(name, keys, args)])
        return result
