"""Redlock on ``redis.asyncio``: the same lock, names and guarantees as :class:`flask_multi_redis.lock.Redlock`,
for async views, Quart and scripts (``async with lock:``). The algorithm and its decisions are in
:mod:`.algorithm`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import RedisClusterException

from flask_multi_redis.errors import LockError, LockTimeout

from .algorithm import ACQUIRE, EXTEND, FENCE, RELEASE, LockState, check_servers, checked_ttl, gathered

__all__ = ["Redlock"]

log = logging.getLogger(__name__)


Server = redis.asyncio.Redis | redis.asyncio.RedisCluster
_timeout = getattr(asyncio, "timeout", None)  # Python 3.11: a deadline on an await, with no task of its own


class Redlock(LockState[Server]):
    """A lock named ``key`` on ``masters`` (one ``redis.asyncio.Redis`` or a list of them, independent servers);
    see :class:`flask_multi_redis.lock.Redlock` for every parameter."""

    def __init__(
        self,
        key: str,
        masters: Server | Sequence[Server],
        ttl: float = 10.0,
        *,
        auto_renew: bool = False,
        timeout: float | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        servers = [masters] if isinstance(masters, (redis.asyncio.Redis, redis.asyncio.RedisCluster)) else list(masters)
        check_servers(servers, (redis.asyncio.Redis, redis.asyncio.RedisCluster), "flask_multi_redis.lock.Redlock")
        super().__init__(key, servers, ttl, auto_renew, timeout, retry_delay)
        self._renewer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()  # calls not waited for, kept until they end
        self._scripts: dict[tuple[int, str], Any] = {}
        self._held_late: set[asyncio.Future[Any]] = set()  # calls of the rounds that took the lock held now

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """As :meth:`flask_multi_redis.lock.Redlock.acquire`."""
        blocking, deadline = self.tries(blocking, timeout)
        while True:
            if await self._try(deadline):
                if self.auto_renew:
                    self._renewer = asyncio.ensure_future(self._renew())
                return True
            pause = self.pause(deadline) if blocking else None
            if pause is None:
                return False
            await asyncio.sleep(pause)

    async def _try(self, deadline: float | None) -> bool:
        value = self.new_value()
        started = time.monotonic()
        late: set[asyncio.Future[Any]] = set()
        try:
            granted = await self._on_all(ACQUIRE, self.keys, self.acquire_args(value), until=deadline, late=late)
            winners = self.winners(granted)
            if winners:
                token = self.next_token(granted, winners)
                fenced = (
                    granted
                    if self.alone
                    else await self._on_all(FENCE, self.keys, [value, token], winners, until=deadline, late=late)
                )
                valid_for = self.validity(self.ttl, started)
                if self.winners(fenced) and valid_for > 0:
                    self.take(value, token, valid_for)
                    self._held_late = late  # a release goes after them too: one landing after it would keep the key
                    return True
        except BaseException:  # cancelled half-way: undo what may have been taken, then go on cancelling
            self._keep(asyncio.ensure_future(self._undo(value, late)))
            raise
        self._keep(asyncio.ensure_future(self._undo(value, late)))  # undo the partial holding, not waited for
        return False

    async def _undo(self, value: str, late: set[asyncio.Future[Any]]) -> None:
        """Release ``value`` everywhere, once the tries still on their way have landed (or the TTL passed)."""
        if late:
            await asyncio.wait(late, timeout=self.ttl)
        await self._on_all(RELEASE, [self.key], [value], wait=False)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """Hold on to a call not waited for until it ends (the loop keeps only weak references to tasks)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def release(self) -> None:
        """As :meth:`flask_multi_redis.lock.Redlock.release`."""
        value = self.give_up()
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        await self._on_all(RELEASE, [self.key], [value])
        late, self._held_late = self._held_late, set()
        if late and not all(call.done() for call in late):  # the acquisition's calls still on their way
            self._keep(asyncio.ensure_future(self._undo(value, late)))

    async def extend(self, ttl: float | None = None) -> bool:
        """As :meth:`flask_multi_redis.lock.Redlock.extend`."""
        value, ttl = self.held_value(), self.ttl if ttl is None else checked_ttl(ttl)
        started = time.monotonic()
        replies = await self._on_all(EXTEND, [self.key], [value, int(ttl * 1000)])
        return self.extended(self.validity(ttl, started), bool(self.winners(replies)))

    async def locked(self) -> bool:
        """As :meth:`flask_multi_redis.lock.Redlock.locked`."""
        return self.held(await self._on_all(None, [self.key], []))

    async def __aenter__(self) -> Redlock:
        if not await self.acquire(timeout=self.timeout):
            raise LockTimeout(f"the lock {self.key!r} was not acquired within {self.timeout} s")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._value is not None:
            await self.release()

    async def _on_all(
        self,
        script: str | None,
        keys: list[str],
        args: list[Any],
        only: list[int] | None = None,
        *,
        until: float | None = None,
        wait: bool = True,
        late: set[asyncio.Future[Any]] | None = None,
    ) -> dict[int, Any]:
        """As the sync Redlock's: every server at once, a slow one (half the TTL, or ``until``) counts as no,
        and the round ends as soon as its outcome is known; the calls not waited for go on by themselves (never
        cancelled: a release must reach every server it can), and are added to ``late``."""
        indexes = list(range(len(self.masters))) if only is None else only
        if self.alone and wait:  # one server: its reply, awaited here (no task), by the same deadline
            return await self._on_one(self._call(0, script, keys, args), until)
        tasks = {asyncio.ensure_future(_run(self._call(i, script, keys, args))): i for i in indexes}
        if not wait:
            for task in tasks:
                self._keep(task)
            return {}
        deadline = time.monotonic() + self.ttl / 2
        if until is not None:
            deadline = min(deadline, until)
        replies: dict[int, Any] = {}
        pending = set(tasks)
        while pending and not (script is not None and self.decided(gathered(replies))):
            done, pending = await asyncio.wait(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            replies.update((tasks[task], task.result()) for task in done)
        for task in pending:  # too slow, or not needed: they go on, and an undo waits for them
            self._keep(task)
        if late is not None:
            late.update(pending)
        return gathered(replies)

    async def _on_one(self, call: Callable[[], Awaitable[Any]], until: float | None) -> dict[int, Any]:
        left = max(0.0, self.ttl / 2 if until is None else min(self.ttl / 2, until - time.monotonic()))
        try:
            if _timeout is None:  # Python 3.10
                return gathered({0: await asyncio.wait_for(_run(call), left)})
            async with _timeout(left):
                return gathered({0: await _run(call)})
        except asyncio.TimeoutError:  # too slow: no reply (an undo that follows covers what landed)
            return {}

    def _call(self, index: int, script: str | None, keys: list[str], args: list[Any]) -> Callable[[], Awaitable[Any]]:
        client = self.masters[index]
        if script is None:
            return lambda: client.exists(*keys)
        found = self._scripts.get((index, script))
        if found is None:
            found = self._scripts[(index, script)] = client.register_script(script)
        return lambda: found(keys, args)

    async def _renew(self) -> None:
        value = self._value
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = await self.extend()
            except LockError:
                return
            except Exception:  # not renewed, whatever the reason: the holder must hear of it
                log.exception("renewing the lock %r failed", self.key)
                renewed = False
            if not renewed:
                if self._value != value:  # released, or taken anew, while it extended
                    return
                self.lost = True
                log.warning("the lock %r could not be renewed on a majority: it may be held by another now", self.key)
                return


async def _run(call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await call()
    except (redis.RedisError, RedisClusterException) as exc:  # a server (or a whole cluster) down counts as a no
        log.debug("a Redlock server did not answer: %s", exc)
        return None
