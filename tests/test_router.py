"""Router: routes by kind and channel, inclusion, and one command and one handler per channel wherever they meet."""

from __future__ import annotations

import pytest

from flask_multi_redis.broker import Channel, Router

ping = Channel("router.ping", reply=str)
pong = Channel("router.pong", reply=str)


def answer(_: object) -> str:
    return "ok"


def test_routes_are_kept_by_kind_and_channel() -> None:
    router = Router()
    router.handler(ping)(answer)
    router.command(ping)(answer)  # a command and a handler may share a channel
    router.command(pong)(answer)
    assert router.channel_names("handler") == ("router.ping",)
    assert router.channel_names("command") == ("router.ping", "router.pong")
    found = router.route("handler", "router.ping")
    assert found is not None
    assert (found.kind, found.channel, found.func) == ("handler", ping, answer)
    assert router.route("handler", "router.pong") is None


def test_the_decorators_return_the_function_unchanged() -> None:
    assert Router().handler(ping)(answer) is answer


def test_a_decorator_takes_a_channel() -> None:
    with pytest.raises(TypeError, match="takes a Channel, not str"):
        Router().handler("router.ping")  # type: ignore[arg-type]


def test_a_second_route_of_a_kind_for_a_channel_is_refused() -> None:
    router = Router()
    router.handler(ping)(answer)
    with pytest.raises(ValueError, match=r"'router\.ping' already has a handler"):
        router.handler(ping)(answer)


def test_included_routes_are_served_by_the_includer() -> None:
    outer, inner, deeper = Router(), Router(), Router()
    deeper.command(pong)(answer)
    inner.include_router(deeper)
    outer.include_router(inner)
    inner.handler(ping)(answer)  # added after the include: still served
    assert outer.channel_names("handler") == ("router.ping",)
    assert outer.channel_names("command") == ("router.pong",)
    assert outer.includes(inner)
    assert outer.includes(deeper)
    assert not inner.includes(outer)
    assert not outer.includes(outer)


def test_including_a_router_with_a_route_already_served_is_refused() -> None:
    outer, inner = Router(), Router()
    outer.handler(ping)(answer)
    inner.handler(ping)(answer)
    with pytest.raises(ValueError, match="already has a handler"):
        outer.include_router(inner)
    assert not outer.includes(inner)


def test_a_route_added_to_an_included_router_may_not_duplicate_its_includers_route() -> None:
    """The includer already handles the channel: adding a handler below it is refused at that moment."""
    outer, inner = Router(), Router()
    outer.handler(ping)(answer)
    outer.include_router(inner)
    with pytest.raises(ValueError, match=r"'router\.ping' already has a handler"):
        inner.handler(ping)(answer)
    assert [route.func for route in outer.routes()] == [answer]


def test_a_route_is_checked_against_every_router_it_would_be_served_with() -> None:
    """Deep below two includers, a handler is refused when either of them (or anything they include) has one."""
    left, right, shared, sibling = Router(), Router(), Router(), Router()
    left.include_router(shared)
    right.include_router(sibling)
    deeper = Router()
    shared.include_router(deeper)
    sibling.handler(pong)(answer)
    deeper.handler(pong)(answer)  # left serves shared and deeper: no other handler of pong there
    with pytest.raises(ValueError, match="already has a handler"):
        right.include_router(shared)  # right would serve two handlers of pong
    lone = Router()
    right.include_router(lone)
    with pytest.raises(ValueError, match="already has a handler"):
        lone.handler(pong)(answer)  # its sibling under right has one


def test_a_router_cannot_include_itself_or_an_includer() -> None:
    outer, inner = Router(), Router()
    outer.include_router(inner)
    with pytest.raises(ValueError, match="cannot include itself"):
        outer.include_router(outer)
    with pytest.raises(ValueError, match="cannot include itself"):
        inner.include_router(outer)


def test_includers_hear_of_every_change_below_them() -> None:
    heard: list[str] = []

    class Listening(Router):
        def routes_changed(self) -> None:
            heard.append("changed")

    outer, inner = Listening(), Router()
    outer.include_router(inner)
    assert heard == ["changed"]
    inner.command(pong)(answer)
    assert heard == ["changed", "changed"]


@pytest.mark.parametrize(
    "name",
    ["", "x" * 257, "has space", "tab\there", "line\nbreak", "bell\x07", "fmr:inbox", 7, None],
    ids=["empty", "257 characters", "space", "tab", "newline", "control", "reserved", "int", "None"],
)
def test_a_channel_name_an_envelope_would_refuse_is_refused_at_once(name: object) -> None:
    with pytest.raises(ValueError, match="channel name"):
        Channel(name)  # type: ignore[arg-type]


def test_a_channel_name_may_be_long_and_not_ascii() -> None:
    assert Channel("é" * 256).name == "é" * 256
