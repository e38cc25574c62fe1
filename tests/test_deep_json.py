"""JSON nested deep (orjson reads up to 1024 levels, where Python's ``str()`` of it exhausts the stack) on the
broker's reply lists and in a request's headers: dropped or converted, never raised, and nothing else lost."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from functools import partial

import orjson
import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel
from flask_multi_redis.broker.envelope import deadline_after, unpack
from flask_multi_redis.errors import InvalidMessage

from .sessions import close_sessions
from .waiting import wait_until

held = Channel("hostile.held", reply=str)

#: A well-formed JSON object whose ``v`` is a list nested 1000 deep: orjson reads it (its limit is 1024), but
#: ``str()`` of it (once used by unpack() to word its complaint about the version) raises RecursionError.
DEEP_V = b'{"v":' + b"[" * 1000 + b"]" * 1000 + b',"kind":"reply","id":"x","channel":"hostile.held"}'


@pytest.fixture
def server(broker_env: dict[str, str]) -> Iterator[tuple[FlaskRedisSingle, threading.Event, threading.Event]]:
    """A serving process (in this one) whose handler on ``held`` waits until the test releases it."""
    ext = FlaskRedisSingle({"URL": broker_env["REDIS_URL"], "PREFIX": broker_env["REDIS_PREFIX"]})
    ext.broker.inline_below = 0
    running, release = threading.Event(), threading.Event()

    @ext.broker.handler(held)
    def hold(_: object) -> str:
        running.set()
        release.wait(20)
        return "done"

    ext.broker.start(timeout=5)
    yield ext, running, release
    release.set()
    close_sessions(ext)


class Watcher:
    """A keyless spy subscribed to every broker channel of the prefix: it notes the ids of the requests."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(f"{prefix}:fmr:*")
        wait_until(lambda: self.pubsub.get_message(timeout=0.1) is not None)  # the psubscribe confirmation
        self.ids: list[str] = []

    def request_id(self) -> str | None:
        message = self.pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "pmessage":
            envelope = orjson.loads(message["data"])
            if envelope.get("kind") == "request":
                self.ids.append(envelope["id"])
        return self.ids[0] if self.ids else None

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


def test_a_deeply_nested_version_on_a_waiting_calls_reply_list_is_dropped_not_raised(
    server: tuple[FlaskRedisSingle, threading.Event, threading.Event],
    caller: FlaskRedisSingle,
    broker_env: dict[str, str],
    raw: redis.Redis,
) -> None:
    """Anything pushed on a reply list that is not the call's answer is taken out and the call goes on waiting
    (reply_lists.ReplyListWait.wait), a deeply nested version too: the real answer, a moment later, is returned."""
    _, running, release = server
    prefix = broker_env["REDIS_PREFIX"]
    watcher = Watcher(broker_env["REDIS_URL"], prefix)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(caller.broker.request(held, None, timeout=15))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    try:
        thread.start()
        assert running.wait(10)
        wait_until(lambda: watcher.request_id() is not None)
        key = f"{prefix}:fmr:reply:{watcher.ids[0]}"
        raw.rpush(key, DEEP_V)
        wait_until(lambda: not thread.is_alive() or raw.llen(key) == 0)  # the junk is read, and taken out
        release.set()
        thread.join(15)
    finally:
        release.set()
        watcher.close()
    assert outcome == ["done"], outcome


def test_junk_in_one_kept_reply_list_loses_no_other_calls_answer(
    server: tuple[FlaskRedisSingle, threading.Event, threading.Event],
    caller: FlaskRedisSingle,
    broker_env: dict[str, str],
    raw: redis.Redis,
) -> None:
    """After its pub/sub connection comes back, a caller reads and deletes the reply lists of all its calls in
    flight at once (Caller.read_kept_replies), then parses each element: a hostile element in one call's list is
    dropped, and the answers of the other calls, already deleted from Redis, are delivered."""
    _, running, release = server
    prefix = broker_env["REDIS_PREFIX"]
    watcher = Watcher(broker_env["REDIS_URL"], prefix)
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = caller.broker.request(held, None, timeout=8)
        except BaseException as exc:
            outcomes[name] = exc

    threads = {name: threading.Thread(target=call, args=(name,)) for name in ("a", "b", "c")}
    try:
        for count, thread in enumerate(threads.values(), start=1):  # a waits on its list, b and c on the inbox
            thread.start()
            wait_until(partial(lambda count: watcher.request_id() is not None and len(watcher.ids) >= count, count))
        _, b_id, c_id = watcher.ids[:3]
        assert running.wait(5)
        sender_id = caller.broker.health().sender.id
        raw.config_set("requirepass", "hostile-review-pass")  # the listener cannot come back for now
        name = f"flask-redis:{sender_id}"
        listeners = [client for client in raw.client_list() if client["name"] == name and "P" in client["flags"]]
        assert len(listeners) == 1
        raw.client_kill_filter(_id=listeners[0]["id"])
        wait_until(lambda: not caller.broker.health().listener.connected)
        release.set()  # all three are answered: kept in their lists, published to an inbox nobody reads now
        for call_id in (b_id, c_id):  # (a's list may be deleted already: a is answered, on its own connection)
            wait_until(partial(lambda key: raw.llen(key) >= 1, f"{prefix}:fmr:reply:{call_id}"))
        raw.rpush(f"{prefix}:fmr:reply:{b_id}", DEEP_V)  # junk behind b's answer
        raw.config_set("requirepass", "")
        for thread in threads.values():
            thread.join(15)
    finally:
        release.set()
        raw.config_set("requirepass", "")
        watcher.close()
    assert outcomes == {"a": "done", "b": "done", "c": "done"}, outcomes


echo = Channel("hostile.echo", reply=str)


class Quiet:
    """An instrument that does nothing (as a metrics or tracing one would, but for the headers it is given)."""

    def call(self, kind: str, channel: str, headers: dict[str, str]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def test_a_deeply_nested_header_value_does_not_fail_a_request_when_instrumented(
    broker_env: dict[str, str], raw: redis.Redis
) -> None:
    """PROTOCOL.md: header values that are not strings are converted to strings (arrays and objects to their
    JSON; one nested past 255 levels is dropped), and keys other than the trace context are ignored: with an
    instrument (tracing, metrics), which reads the headers, a request with such a header is served as without."""
    prefix = broker_env["REDIS_PREFIX"]
    ext = FlaskRedisSingle({"URL": broker_env["REDIS_URL"], "PREFIX": prefix})
    ran: list[object] = []

    @ext.broker.handler(echo)
    def answer(message: object) -> str:
        ran.append(message)
        return "ok"

    ext.broker.instrument(Quiet())
    ext.broker.start(timeout=5)
    try:
        deep = "[" * 1000 + "]" * 1000
        request = (
            '{"v":1,"kind":"request","id":"hostile-deep-header","channel":"hostile.echo",'
            f'"deadline":{deadline_after(10)},"headers":{{"note":{deep}}},"body":1}}'
        ).encode()
        assert raw.publish(f"{prefix}:fmr:req:hostile.echo", request) == 1
        kept = raw.blpop([f"{prefix}:fmr:reply:hostile-deep-header"], timeout=10)
        assert kept is not None
        answer_envelope = orjson.loads(kept[1])
    finally:
        close_sessions(ext)
    assert (answer_envelope["kind"], answer_envelope["body"]) == ("reply", "ok"), answer_envelope
    assert ran == [1]


def test_header_values_are_converted_to_text_and_deep_ones_dropped() -> None:
    deep = "[" * 300 + "]" * 300
    data = (
        '{"v":1,"kind":"command","id":"i","channel":"c","body":null,"headers":'
        f'{{"s":"x","n":5,"t":true,"a":[1,{{"b":null}}],"deep":{deep}}}}}'
    ).encode()
    assert unpack(data, 1 << 20).headers == {"s": "x", "n": "5", "t": "True", "a": '[1,{"b":null}]'}


@pytest.mark.parametrize("field", ["v", "kind"])
def test_a_deeply_nested_version_or_kind_is_an_invalid_message(field: str) -> None:
    fields = {"v": "1", "kind": '"command"', "id": '"i"', "channel": '"c"'}
    fields[field] = "[" * 1000 + "]" * 1000
    data = ("{" + ",".join(f'"{name}":{value}' for name, value in fields.items()) + "}").encode()
    with pytest.raises(InvalidMessage, match="a JSON array"):
        unpack(data, 1 << 20)
