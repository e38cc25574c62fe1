"""Router: the ``command`` and ``handler`` decorators, grouping routes in a module to include elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .channel import Channel

__all__ = ["Route", "RouteKind", "Router"]

Req = TypeVar("Req")
Rep = TypeVar("Rep")
F = TypeVar("F", bound=Callable[..., Any])

RouteKind = Literal["command", "handler"]


@dataclass(frozen=True)
class Route:
    """A function bound to a channel: a ``command`` runs in every listening process, a ``handler`` in one."""

    kind: RouteKind
    channel: Channel[Any, Any]
    func: Callable[[Any], Any]


class Router:
    """Collects commands and handlers; include it in a :class:`~flask_multi_redis.broker.Broker` or a Worker.

    A channel has at most one command and one handler in a router and in everything it includes.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[RouteKind, str], Route] = {}
        self._included: list[Router] = []
        self._watchers: list[Callable[[], None]] = []

    def command(self, channel: Channel[Req, Rep]) -> Callable[[F], F]:
        """Register the decorated function to run in every listening process for each message on ``channel``.

        It receives the validated request; what it returns is sent back when the broadcast gathers replies.
        """
        return self._decorator("command", channel)

    def handler(self, channel: Channel[Req, Rep]) -> Callable[[F], F]:
        """Register the decorated function to answer requests on ``channel``: one process runs it per request."""
        return self._decorator("handler", channel)

    def include_router(self, router: Router) -> None:
        """Serve ``router``'s routes here too, including those it gets later."""
        if router is self or self in router._all_routers():
            raise ValueError("a router cannot include itself")
        for route in router.routes():
            self._check_free(route.kind, route.channel)
        self._included.append(router)
        router._watchers.append(self._changed)
        self._changed()

    def routes(self) -> list[Route]:
        """Every route of this router and of the routers it includes."""
        return [route for router in self._all_routers() for route in router._routes.values()]

    def channel_names(self, kind: RouteKind) -> tuple[str, ...]:
        """The names of the channels that have a route of ``kind`` here, sorted."""
        return tuple(sorted(route.channel.name for route in self.routes() if route.kind == kind))

    def route(self, kind: RouteKind, name: str) -> Route | None:
        """The route of ``kind`` for channel ``name``, if any."""
        for router in self._all_routers():
            found = router._routes.get((kind, name))
            if found is not None:
                return found
        return None

    def _all_routers(self) -> list[Router]:
        found: list[Router] = [self]
        for router in self._included:
            found.extend(router._all_routers())
        return found

    def _check_free(self, kind: RouteKind, channel: Channel[Any, Any]) -> None:
        if self.route(kind, channel.name) is not None:
            raise ValueError(f"channel {channel.name!r} already has a {kind}")

    def _decorator(self, kind: RouteKind, channel: Channel[Any, Any]) -> Callable[[F], F]:
        if not isinstance(channel, Channel):
            raise TypeError(f"@{kind} takes a Channel, not {type(channel).__name__}")

        def register(func: F) -> F:
            self._check_free(kind, channel)
            self._routes[(kind, channel.name)] = Route(kind, channel, func)
            self._changed()
            return func

        return register

    def _changed(self) -> None:
        for watcher in list(self._watchers):
            watcher()
