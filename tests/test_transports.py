"""The broker over every way of reaching Redis: TLS, an ACL user, a password, RESP2 as well as RESP3, and a
client encoding other than UTF-8 (prefix and channel names go beyond ASCII).

The broker speaks to its hot connections itself once redis-py has connected them (direct.py), so each
transport is checked end to end: a request waiting on its reply list, requests in flight at once (their
replies come through the inbox), and a gathered broadcast.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel
from flask_multi_redis.broker.pipeline import PipelinedConnection

from .conftest import ServerFactory
from .servers import ACLUser, TLSFiles


class Pair(BaseModel):
    a: int
    b: int


class Total(BaseModel):
    total: int
    served_by: str


total = Channel("transport.addé", request=Pair, reply=Total)  # names beyond ASCII, in every encoding
hello = Channel("transport.hellö", reply=str)


def configs(factory: ServerFactory, tls_files: TLSFiles) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per transport: the extension's config and the redis client's keyword arguments."""
    tls = factory(tls=tls_files)
    acl = factory(password="default-secret", user=ACLUser("alice", "alice:s3cret/pw"))
    assert acl.user is not None
    user, password = quote(acl.user.name, safe=""), quote(acl.user.password, safe="")
    plain = factory(password="p@ss word")
    return {
        "tls": ({"URL": f"rediss://{tls.host}:{tls.port}/0", "SSL_CA_CERTS": str(tls_files.ca)}, {}),
        "acl-user": ({"URL": f"redis://{user}:{password}@{acl.host}:{acl.port}/0"}, {}),
        "password-resp2": ({"HOST": plain.host, "PORT": plain.port, "PASSWORD": "p@ss word"}, {"protocol": 2}),
        "password-resp3": ({"HOST": plain.host, "PORT": plain.port, "PASSWORD": "p@ss word"}, {"protocol": 3}),
        "latin-1": ({"HOST": plain.host, "PORT": plain.port, "PASSWORD": "p@ss word"}, {"encoding": "latin-1"}),
    }


@pytest.fixture(scope="module")
def transports(redis_server_factory: ServerFactory, tls_files: TLSFiles) -> dict[str, Any]:
    return configs(redis_server_factory, tls_files)


@pytest.fixture(params=["tls", "acl-user", "password-resp2", "password-resp3", "latin-1"])
def pair(request: pytest.FixtureRequest, transports: dict[str, Any]) -> Iterator[tuple[FlaskRedisSingle, str]]:
    """A serving extension and a calling one, each with its own broker, over one transport."""
    config, kwargs = transports[request.param]
    config = {**config, "PREFIX": f"tr-ü-{request.param}"}
    server = FlaskRedisSingle(config, **kwargs)
    server_id = server.broker.runtime().sender.id

    @server.broker.handler(total)
    def add(message: Pair) -> Total:
        return Total(total=message.a + message.b, served_by=server_id)

    @server.broker.command(hello)
    def greet(_: object) -> str:
        return f"hello from {server_id}"

    server.broker.start(timeout=10)
    caller = FlaskRedisSingle(config, **kwargs)
    caller.broker.start(timeout=10)
    yield caller, server_id
    caller.broker.stop()
    server.broker.stop()


def test_requests_and_broadcasts_over_each_transport(pair: tuple[FlaskRedisSingle, str]) -> None:
    caller, server_id = pair
    assert caller.broker.request(total, Pair(a=2, b=3), timeout=5) == Total(total=5, served_by=server_id)

    results: list[Total] = []
    gate = threading.Barrier(8)

    def call(i: int) -> None:
        gate.wait(5)  # all at once: one waits on its reply list, the others on the inbox
        results.append(caller.broker.request(total, Pair(a=i, b=1), timeout=5))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(result.total for result in results) == list(range(1, 9))

    replies = caller.broker.broadcast(hello, None, gather=True, timeout=5)
    assert sorted(str(reply.value) for reply in replies if reply.ok) == [f"hello from {server_id}"]
    assert caller.broker.health().listener.connected


def test_the_connections_in_use_are_the_configured_ones(pair: tuple[FlaskRedisSingle, str], request: Any) -> None:
    """The hot connections are made by redis-py from the session's settings: the user, the protocol and the
    database stay (and the TLS server has no plain port: every one of them is TLS)."""
    caller, _ = pair
    caller.broker.request(total, Pair(a=1, b=1), timeout=5)
    own = f"flask-redis:{caller.broker.health().sender.id}"
    held = [client for client in caller.getRedis().client_list() if client.get("name") == own]
    assert len(held) >= 3  # its pub/sub connection, the pipelined one and the reply wait's
    transport = request.node.callspec.params["pair"]
    for client in held:
        if transport.endswith(("resp2", "resp3")):
            assert client["resp"] == transport[-1]  # the protocol asked for
        if transport == "acl-user":
            assert client["user"] == "alice"
        assert client["db"] == "0"


def test_error_replies_raise_what_redis_py_would(redis_url: str) -> None:
    """Some of redis-py's error classes are ConnectionErrors (LOADING, NOAUTH, WRONGPASS): raised all the same."""
    pipelined = PipelinedConnection(redis.Redis.from_url(redis_url))
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        pipelined.execute("AUTH", "nobody", "wrong")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        pipelined.execute("NO-SUCH-COMMAND")
    assert pipelined.execute("PING") in (b"PONG", "PONG")  # in step, on a new connection after the AUTH error
    pipelined.close()
