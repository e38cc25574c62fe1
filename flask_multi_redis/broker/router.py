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

    def summary(self) -> dict[str, Any]:
        """This route as ``flask redis channels --json`` and the dashboard list it: channel, kind, and the
        request's and reply's JSON Schema."""
        return {"channel": self.channel.name, "kind": self.kind, **self.channel.json_schemas()}


class Router:
    """Collects commands and handlers; include it in a :class:`~flask_multi_redis.broker.Broker` or a Worker.

    A channel has at most one command and one handler among all the routes served together: a router, the
    routers it includes, and every router that includes it. A route that would break this is refused with a
    ``ValueError`` when it is added, whichever router it is added to.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[RouteKind, str], Route] = {}
        self._included: list[Router] = []
        self._includers: list[Router] = []

    def command(self, channel: Channel[Req, Rep]) -> Callable[[F], F]:
        """Register the decorated function to run in every listening process for each message on ``channel``.

        It receives the validated request; what it returns is sent back when the broadcast gathers replies.
        """
        return self._decorator("command", channel)

    def handler(self, channel: Channel[Req, Rep]) -> Callable[[F], F]:
        """Register the decorated function to answer requests on ``channel``: one process runs it per request."""
        return self._decorator("handler", channel)

    def include_router(self, router: Router) -> None:
        """Serve ``router``'s routes here too, including those it gets later.

        :raises ValueError: ``router`` is this one or includes it, or one of its channels already has a route of
            the same kind among the routes served with this router.
        """
        if router is self or self in router._family():
            raise ValueError("a router cannot include itself")
        for route in router.routes():
            self._check_free(route.kind, route.channel)
        self._included.append(router)
        router._includers.append(self)
        self._changed()

    def includes(self, router: Router) -> bool:
        """Whether ``router``'s routes are served here: it was included here, or in a router included here."""
        return router is not self and router in self._family()

    def routes(self) -> list[Route]:
        """Every route of this router and of the routers it includes."""
        return [route for router in self._family() for route in router._routes.values()]

    def channel_names(self, kind: RouteKind) -> tuple[str, ...]:
        """The names of the channels that have a route of ``kind`` here, sorted."""
        return tuple(sorted(route.channel.name for route in self.routes() if route.kind == kind))

    def route(self, kind: RouteKind, name: str) -> Route | None:
        """The route of ``kind`` for channel ``name``, if any."""
        for router in self._family():
            found = router._routes.get((kind, name))
            if found is not None:
                return found
        return None

    def routes_changed(self) -> None:
        """Called whenever a route is added here or to a router included here; a Broker follows the change."""

    def _family(self) -> list[Router]:
        """This router and every router it includes, however deep."""
        found: list[Router] = [self]
        for router in self._included:
            found.extend(router._family())
        return found

    def _tops(self) -> list[Router]:
        """The routers at the top of every chain of inclusions that reaches this one (this one when none)."""
        if not self._includers:
            return [self]
        return [top for includer in self._includers for top in includer._tops()]

    def _check_free(self, kind: RouteKind, channel: Channel[Any, Any]) -> None:
        """Refuse a second ``kind`` route for ``channel`` anywhere it would be served together with this one."""
        for top in self._tops():
            if top.route(kind, channel.name) is not None:
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
        self.routes_changed()
        for includer in list(self._includers):
            includer._changed()
