"""The database's access keys in memory, so a request's key check never waits on SQL.

Every key is kept by its hash, as a ``Caller``; a request's key is hashed
and looked up in a dict. The cache polls the store's change counter (one
tiny query) every ``poll`` seconds and reloads every key when it moved, so a
key made, changed or revoked anywhere (the CLI, the admin API, another
instance) takes effect here within ``poll`` seconds plus one reload. When the
database cannot be reached, the keys last loaded stay in force and one
warning is logged until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gptrelay.auth.caller import Caller
from gptrelay.auth.keys import KeyStore, hash_key
from gptrelay.errors import StorageError

log = logging.getLogger("gptrelay")

POLL = 0.25  # seconds between looks at the change counter: a revoke is in force within a second


class KeyCache:
    __slots__ = ("_by_hash", "_counter", "_failing", "_poll", "_store", "_task")

    def __init__(self, store: KeyStore, poll: float = POLL) -> None:
        self._store = store
        self._poll = poll
        self._by_hash: dict[str, Caller] = {}
        self._counter = -1
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load every key (raises ``StorageError`` if the database cannot be read), then keep watching."""
        await self.reload()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="gptrelay key cache")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def empty(self) -> bool:
        return not self._by_hash

    def find(self, key: str) -> Caller | None:
        """The caller whose key this is, whatever its state (the caller says if it may pass)."""
        return self._by_hash.get(hash_key(key))

    async def reload(self) -> None:
        """Load every key again (also at once after a change made in this process)."""
        counter = await self._store.change_counter()
        keys = await self._store.hashed()
        self._by_hash = {key_hash: Caller.of(record) for key_hash, record in keys.items()}
        self._counter = counter

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                if await self._store.change_counter() != self._counter:
                    await self.reload()
            except StorageError as error:
                if not self._failing:
                    log.warning("access keys: %s; the keys loaded before stay in force", error.message)
                self._failing = True
                continue
            if self._failing:
                log.warning("access keys: the database answers again")
                self._failing = False
