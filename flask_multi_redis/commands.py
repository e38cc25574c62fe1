"""Redis commands called on an extension (``ext.get("k")``, ``ext["k"]``, ``ext.pipeline()``) go to its client,
as flask-redis and Flask-And-Redis offer them. Editors and type checkers see redis-py's own command classes; at
run time ``__getattr__`` and the item methods forward to what ``_commands()`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from .session import RedisSession

__all__ = ["ForwardedCommands"]

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal

    from redis import ConnectionPool
    from redis.client import Pipeline, PubSub
    from redis.commands import CoreCommands, RedisModuleCommands, SentinelCommands
    from redis.lock import Lock

    class ForwardedCommands(RedisModuleCommands, CoreCommands, SentinelCommands):
        """Every command of a ``redis.Redis``, for type checkers."""

        _is_async_client: Literal[False]
        _event_dispatcher: Any
        execute_command: Callable[..., Any]
        connection_pool: ConnectionPool

        def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline: ...
        def pubsub(self, **kwargs: Any) -> PubSub: ...
        def lock(self, name: str, timeout: float | None = None, **kwargs: Any) -> Lock: ...
        def transaction(self, func: Callable[[Pipeline], None], *watches: Any, **kwargs: Any) -> Any: ...
        def _commands(self) -> Any: ...

else:

    class ForwardedCommands:
        """Forwards every public attribute it lacks, and ``[]``, to the client ``_commands()`` returns."""

        __slots__ = ()
        __iter__ = None  # not a sequence: without this, iter() would try [0], [1] ... as GET 0, GET 1

        def _commands(self) -> Any:
            """The client the commands go to; None before there is one."""
            raise NotImplementedError

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):  # never a command; and looked up before __init__ has run (copy, pickle)
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            try:
                client = self._commands()
            except Exception as exc:  # no client here: for a command, why; for any other name, no such attribute
                if hasattr(redis.Redis, name) or hasattr(RedisSession, name):  # a session's own too
                    raise
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from exc
            if client is None:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r} (no client yet: call init_app)"
                )
            try:
                return getattr(client, name)
            except AttributeError:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}, and it is no Redis command"
                ) from None

        def __getitem__(self, name: Any) -> Any:
            return self._commands()[name]

        def __setitem__(self, name: Any, value: Any) -> None:
            self._commands()[name] = value

        def __delitem__(self, name: Any) -> None:
            del self._commands()[name]

        def __contains__(self, name: Any) -> bool:
            return name in self._commands()
