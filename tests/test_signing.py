"""Signed messages: nothing forged is run, answered or taken for an answer; keys rotate; PROTOCOL.md's vector."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import RequestTimeout
from flask_multi_redis.broker.envelope import Kind, deadline_after, pack
from flask_multi_redis.broker.signing import Signer
from flask_multi_redis.errors import InvalidMessage

from .apps.svc import AddIn, Gate, add, gate, stats
from .conftest import ROOT
from .waiting import wait_until

Spawn = Callable[[], "subprocess.Popen[str]"]
KEY = "a key of the tests: 33 bytes long"
OLD = "the key before it: also long enough"


def test_a_signed_envelope_verifies_and_any_change_is_refused() -> None:
    signer = Signer([KEY.encode()])
    unsigned = pack("request", "abc", "math.add", b'{"a":1}', deadline=5, max_size=4096)
    signed = signer.sign(unsigned)
    assert signer.verify(signed) == unsigned
    for at in range(len(signed)):
        changed = signed[:at] + bytes([signed[at] ^ 1]) + signed[at + 1 :]
        with pytest.raises(InvalidMessage):
            signer.verify(changed)
    with pytest.raises(InvalidMessage, match="not signed"):
        signer.verify(unsigned)
    with pytest.raises(InvalidMessage, match="not signed with this environment's key"):
        Signer([OLD.encode()]).verify(signed)
    assert KEY not in repr(signer)


def test_the_first_key_signs_and_any_is_accepted() -> None:
    old, both = Signer([OLD.encode()]), Signer([KEY.encode(), OLD.encode()])
    unsigned = b'{"v":1,"kind":"reply","id":"a","channel":"c","body":1}'
    assert both.verify(old.sign(unsigned)) == unsigned
    assert Signer([KEY.encode()]).verify(both.sign(unsigned)) == unsigned


def test_protocol_md_s_vector() -> None:
    text = (ROOT / "PROTOCOL.md").read_text()
    key = re.search(r"with the key `([^`]+)` \(\d+ characters\) and the prefix `([^`]*)`", text)
    unsigned = re.search(r"^unsigned: (.+)$", text, re.MULTILINE)
    signed = re.search(r"^signed: +(.+)$", text, re.MULTILINE)
    assert key is not None
    assert unsigned is not None
    assert signed is not None
    signer = Signer([key.group(1).encode()], key.group(2))
    assert signer.sign(unsigned.group(1).encode()) == signed.group(1).encode()


@pytest.fixture
def signed_env(broker_env: dict[str, str]) -> dict[str, str]:
    broker_env["REDIS_SIGNING_KEYS"] = KEY
    return broker_env


@pytest.fixture
def signed_caller(signed_env: dict[str, str]) -> Iterator[FlaskRedisSingle]:
    ext = FlaskRedisSingle({"URL": signed_env["REDIS_URL"], "PREFIX": signed_env["REDIS_PREFIX"], "SIGNING_KEY": KEY})
    yield ext
    ext.broker.stop()


def test_signed_processes_work_together(spawn_backend: Spawn, signed_caller: FlaskRedisSingle) -> None:
    backend = spawn_backend()
    assert signed_caller.broker.request(add, AddIn(a=2, b=3), timeout=5).pid == backend.pid
    (reply,) = signed_caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert reply.ok
    assert [p.sender.pid for p in signed_caller.broker.responders(add)] == [backend.pid]


def test_forged_requests_and_commands_are_dropped_and_counted(
    spawn_backend: Spawn, signed_caller: FlaskRedisSingle, signed_env: dict[str, str]
) -> None:
    """A client that may publish in the prefix but has no key runs nothing."""
    spawn_backend()
    prefix = signed_env["REDIS_PREFIX"]
    forger = redis.Redis.from_url(signed_env["REDIS_URL"])
    targets: list[tuple[str, Kind]] = [(f"{prefix}:fmr:req:math.add", "request"), (f"{prefix}:test.stats", "command")]
    for channel, kind in targets:
        forged = pack(kind, f"forged-{kind}", "math.add", b'{"a":1,"b":1}', deadline=deadline_after(5), max_size=4096)
        assert forger.publish(channel, forged) == 1  # delivered: and dropped
        wrongly = Signer([OLD.encode()]).sign(forged)
        assert forger.publish(channel, wrongly) == 1
    (reply,) = signed_caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.dropped == 4
    assert reply.value.added == 0  # no forged request ran
    assert not forger.keys(f"{prefix}:fmr:claim:forged-*")


def test_a_forged_answer_is_not_taken_for_the_real_one(
    spawn_backend: Spawn, signed_caller: FlaskRedisSingle, signed_env: dict[str, str]
) -> None:
    """An attacker who reads the requests (it subscribes to the prefix) answers first: its answer, by pub/sub
    and in the reply list, is dropped; the caller gets the real one, or nothing."""
    spawn_backend()
    prefix = signed_env["REDIS_PREFIX"]
    forger = redis.Redis.from_url(signed_env["REDIS_URL"])
    watcher = forger.pubsub()
    watcher.psubscribe(f"{prefix}:fmr:*")
    wait_until(lambda: watcher.get_message(timeout=0.1) is not None)
    stop = threading.Event()

    def forge() -> None:
        while not stop.is_set():
            message = watcher.get_message(timeout=0.1)
            if not message or message["type"] != "pmessage":
                continue
            request = orjson.loads(message["data"])
            body = b'{"sum":-1,"pid":-1}'
            fake = pack("reply", request["id"], request["channel"], body, max_size=4096)
            forger.rpush(f"{prefix}:fmr:reply:{request['id']}", fake)
            if request.get("reply_to"):
                forger.publish(request["reply_to"], fake)

    thread = threading.Thread(target=forge)
    thread.start()
    try:
        results = [signed_caller.broker.request(add, AddIn(a=i, b=1), timeout=5) for i in range(5)]
        calls: list[object] = []
        threads = [threading.Thread(target=lambda: calls.append(slow(signed_caller, prefix))) for _ in range(3)]
        for worker in threads:
            worker.start()
        wait_until(lambda: signed_caller.broker.health().waiting_calls == 3)
        forger.rpush("gate:forge", *range(3))
        for worker in threads:
            worker.join(10)
    finally:
        stop.set()
        thread.join(5)
        watcher.close()
    assert [result.sum for result in results] == [1, 2, 3, 4, 5]
    assert [getattr(call, "sum", call) for call in calls] == [0, 0, 0]  # the gate's real answer
    assert signed_caller.broker.health().counters.dropped > 0  # forged answers came, and were dropped


def slow(caller: FlaskRedisSingle, prefix: str) -> object:
    """A request that waits at a gate, so that a forger's answer comes long before the real one."""
    try:
        return caller.broker.request(gate, Gate(key="gate:forge"), timeout=8)
    except Exception as exc:
        return exc


def test_fake_responders_take_no_request_when_records_are_signed(
    spawn_backend: Spawn, signed_caller: FlaskRedisSingle, signed_env: dict[str, str]
) -> None:
    backend = spawn_backend()
    prefix = signed_env["REDIS_PREFIX"]
    forger = redis.Redis.from_url(signed_env["REDIS_URL"])
    fakes = {f"fake-{i}": 1 << 52 for i in range(3)} | {f"fake-soon-{i}": 0 for i in range(3)}
    forger.zadd(f"{prefix}:fmr:serves:math.add", {name: score for name, score in fakes.items()})
    forged_record = orjson.dumps({"sender": {"id": "fake-soon-0", "host": "h", "pid": 1, "role": "worker"}})
    forger.set(f"{prefix}:fmr:process:fake-soon-0", forged_record, px=60_000)
    assert [p.sender.pid for p in signed_caller.broker.responders(add)] == [backend.pid]
    assert all(signed_caller.broker.request(add, AddIn(a=1, b=1), timeout=5).pid == backend.pid for _ in range(10))


def test_an_unsigned_caller_gets_no_answer_from_a_signed_worker(
    spawn_backend: Spawn, caller: FlaskRedisSingle, signed_env: dict[str, str]
) -> None:
    spawn_backend()
    with pytest.raises(RequestTimeout):
        caller.broker.request(add, AddIn(a=1, b=1), timeout=1)


def test_keys_rotate_without_a_lost_call(spawn_backend: Spawn, signed_env: dict[str, str]) -> None:
    """Step 2 of a rotation: the worker signs with the new key and accepts the old; a caller still on the old
    one for signing, and accepting the new, is answered."""
    signed_env["REDIS_SIGNING_KEYS"] = f"{KEY},{OLD}"
    backend = spawn_backend()
    config = {"URL": signed_env["REDIS_URL"], "PREFIX": signed_env["REDIS_PREFIX"], "SIGNING_KEYS": [OLD, KEY]}
    caller = FlaskRedisSingle(config)
    try:
        assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).pid == backend.pid
    finally:
        caller.broker.stop()


def test_ping_says_whether_messages_are_signed(signed_env: dict[str, str]) -> None:
    from flask import Flask

    app = Flask("signed")
    app.config["REDIS"] = {"URL": signed_env["REDIS_URL"], "SIGNING_KEY": KEY}
    FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.output.splitlines()[-1] == "broker messages are signed"
    assert KEY not in result.output


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_the_signature_is_hmac_sha256(length: int) -> None:
    """The signer's precomputed HMAC gives what the standard library's gives, for keys of every length."""
    import hmac as stdlib_hmac

    key = bytes(i % 251 for i in range(length))
    message = b'{"v":1,"kind":"reply","id":"abc","channel":"c","body":[1,2,3]}'
    signed = Signer([key], "env").sign(message)
    assert signed[-66:-2] == stdlib_hmac.digest(key, b"env\n" + message, "sha256").hex().encode()


def test_a_message_signed_for_another_environment_is_refused() -> None:
    message = b'{"v":1,"kind":"command","id":"abc","channel":"c","body":1}'
    with pytest.raises(InvalidMessage, match="not signed with this environment's key"):
        Signer([KEY.encode()], "production").verify(Signer([KEY.encode()], "staging").sign(message))


def test_a_signed_message_copied_to_another_channel_runs_nothing(
    spawn_backend: Spawn, signed_caller: FlaskRedisSingle, signed_env: dict[str, str]
) -> None:
    """A keyless spy publishes the exact bytes of signed messages on other channels of the same kind: the serving
    process drops them, as their channel field is not the channel they came on."""
    spawn_backend()
    prefix = signed_env["REDIS_PREFIX"]
    signer = Signer([KEY.encode()], prefix)  # what the spy captured was signed so
    request = signer.sign(pack("request", "copied-1", "test.fail", b"{}", deadline=deadline_after(60), max_size=4096))
    command = signer.sign(
        pack("command", "copied-2", "test.stats", b"null", deadline=deadline_after(60), max_size=4096)
    )
    spy = redis.Redis.from_url(signed_env["REDIS_URL"])
    (before,) = signed_caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert spy.publish(f"{prefix}:fmr:req:math.add", request) == 1  # received: a request, for another channel
    assert spy.publish(f"{prefix}:test.whoami", command) == 1  # received: a command, for another channel
    (after,) = signed_caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert before.value is not None
    assert after.value is not None
    assert after.value.dropped - before.value.dropped == 2
    assert after.value.added == before.value.added
    assert not spy.exists(f"{prefix}:fmr:claim:copied-1")  # not even claimed


def test_a_plain_broadcast_carries_a_deadline(signed_caller: FlaskRedisSingle, signed_env: dict[str, str]) -> None:
    """So that a copy published again much later runs nothing."""
    prefix = signed_env["REDIS_PREFIX"]
    spy = redis.Redis.from_url(signed_env["REDIS_URL"]).pubsub()
    spy.subscribe(f"{prefix}:test.stats")
    wait_until(lambda: spy.get_message(timeout=0.1) is not None)
    signed_caller.broker.publish(stats, None)
    seen: list[bytes] = []

    def a_message() -> bool:
        message = spy.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            seen.append(message["data"])
        return bool(seen)

    wait_until(a_message)
    spy.close()
    envelope = orjson.loads(Signer([KEY.encode()], prefix).verify(seen[0]))
    assert envelope["deadline"] > deadline_after(250)  # max_timeout (300 s) ahead
