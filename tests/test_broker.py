"""Request/reply and broadcast between real processes: tests/apps/serve.py serves, the test process calls."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from fnmatch import fnmatch
from subprocess import Popen
from typing import cast

import pytest

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import (
    BrokerUnavailable,
    Channel,
    InvalidMessage,
    MessageTooLarge,
    NoResponders,
    RemoteError,
    RemoteInvalidMessage,
    RequestTimeout,
)
from flask_multi_redis.broker.envelope import deadline_after, pack

from .apps.svc import AddIn, AddOut, Gate, Stats, Who, add, bad_reply, fail, gate, stats, whoami
from .conftest import ROOT
from .gates import call_at_gate
from .waiting import wait_until

Spawn = Callable[[], "Popen[str]"]


def test_a_request_is_served_by_another_process(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    backend = spawn_backend()
    out = caller.broker.request(add, AddIn(a=2, b=3), timeout=5)
    assert isinstance(out, AddOut)
    assert (out.sum, out.pid) == (5, backend.pid)
    assert out.pid != os.getpid()


def test_each_request_runs_once_and_load_spreads(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    pids = {spawn_backend().pid for _ in range(3)}
    served = Counter(caller.broker.request(add, AddIn(a=i, b=1), timeout=5).pid for i in range(300))
    assert set(served) == pids
    assert all(count >= 60 for count in served.values()), served
    handled = caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert sum(reply.value.added for reply in handled if reply.value) == 300  # exactly once: no duplicates ran


def test_no_responders_is_raised_at_once(caller: FlaskRedisSingle) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders, match=r"math\.add"):
        caller.broker.request(add, AddIn(a=1, b=1), timeout=10)
    assert time.monotonic() - started < 1.0  # not the 10 s timeout


def test_no_responders_once_the_last_server_is_killed(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    backend = spawn_backend()
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).pid == backend.pid
    backend.kill()
    backend.wait(5)
    started = time.monotonic()
    with pytest.raises(NoResponders):  # its registry entry is still there: the publish to it reaches nobody
        caller.broker.request(add, AddIn(a=1, b=1), timeout=10)
    assert time.monotonic() - started < 1.0


def test_a_killed_responder_still_in_the_registry_is_skipped(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    dead, alive = spawn_backend(), spawn_backend()
    wait_until(lambda: len(caller.broker.responders(add)) == 2, timeout=10)
    dead.kill()
    dead.wait(5)
    started = time.monotonic()
    served = [caller.broker.request(add, AddIn(a=i, b=1), timeout=10).pid for i in range(6)]
    assert served == [alive.pid] * 6  # those sent to the dead one's inbox first reached nobody, and went on
    assert time.monotonic() - started < 2.0  # no wait for a reply that could not come
    assert caller.broker.health().counters.dropped == 0  # the "nobody" marker is not taken for a reply
    prefix = broker_env["REDIS_PREFIX"]
    wait_until(lambda: not caller.getRedis().keys(f"{prefix}:fmr:reply:*"), timeout=5)


def test_a_handler_that_raises_gives_remote_error(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    backend = spawn_backend()
    with pytest.raises(RemoteError) as caught:
        caller.broker.request(fail, {"x": 1}, timeout=5)
    assert caught.value.remote_type == "ValueError"
    assert caught.value.remote_message == "refused ['x']"
    assert str(backend.pid) in str(caught.value)


def test_an_invalid_request_is_refused_before_sending(caller: FlaskRedisSingle) -> None:
    with pytest.raises(InvalidMessage, match="not a valid AddIn"):
        caller.broker.request(add, {"a": "one", "b": 2}, timeout=5)  # type: ignore[misc]


def test_an_invalid_request_is_reported_by_the_server(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    loose = Channel("math.add", request=dict, reply=dict)  # a caller whose declaration disagrees
    with pytest.raises(RemoteInvalidMessage) as caught:  # a RemoteError, and an InvalidMessage
        caller.broker.request(loose, {"a": "one"}, timeout=5)
    assert isinstance(caught.value, RemoteError)
    assert isinstance(caught.value, InvalidMessage)
    assert caught.value.remote_type == "InvalidMessage"
    assert "AddIn" in caught.value.remote_message


def test_an_invalid_reply_is_reported_both_ways(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    with pytest.raises(RemoteInvalidMessage) as caught:  # the handler returned something that is not an AddOut
        caller.broker.request(bad_reply, {}, timeout=5)
    assert caught.value.remote_type == "InvalidMessage"
    expecting_who = Channel("math.add", request=AddIn, reply=Who)  # a reply that the caller cannot accept
    with pytest.raises(InvalidMessage, match="not a valid Who"):
        caller.broker.request(expecting_who, AddIn(a=1, b=2), timeout=5)


def test_request_timeout_at_the_deadline(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    session = caller.getRedis()
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        caller.broker.request(gate, Gate(key="gate:timeout"), timeout=0.5)
    assert isinstance(caught.value, TimeoutError)
    assert 0.5 <= time.monotonic() - started < 3
    session.rpush("gate:timeout", 1)  # release the handler


def test_a_request_past_its_deadline_is_not_started(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    spawn_backend()
    prefix = broker_env["REDIS_PREFIX"]
    session = caller.getRedis()
    expired = pack("request", "expired-1", "math.add", b'{"a":1,"b":2}', deadline=deadline_after(-1), max_size=1 << 20)
    assert session.execute_command("PUBLISH", f"{prefix}:fmr:req:math.add", expired) == 1  # type: ignore[no-untyped-call]
    (reply,) = caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert reply.value is not None
    assert (reply.value.expired, reply.value.added) == (1, 0)
    assert not session.exists(f"{prefix}:fmr:reply:expired-1")  # no reply either


def test_broadcast_gathers_one_reply_per_process(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    pids = {spawn_backend().pid for _ in range(2)}
    assert caller.broker.broadcast(whoami, None) == 2
    replies = caller.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert {reply.value.pid for reply in replies if reply.value} == pids
    assert all(reply.ok and reply.sender is not None for reply in replies)
    assert {reply.sender.pid for reply in replies if reply.sender} == pids


def test_a_gather_reports_processes_that_do_not_answer(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    backend = spawn_backend()
    silent = caller.getRedis().subscribe(whoami.name)  # a subscriber that never answers
    try:
        started = time.monotonic()
        replies = caller.broker.broadcast(whoami, None, gather=True, timeout=0.5)
        assert time.monotonic() - started < 3
    finally:
        silent.close()
    answered = [reply for reply in replies if reply.ok]
    assert [reply.value.pid for reply in answered if reply.value] == [backend.pid]
    (missing,) = [reply for reply in replies if not reply.ok]
    assert missing.sender is None
    assert isinstance(missing.error, RequestTimeout)


def test_oversized_messages_are_refused_and_dropped(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    spawn_backend()
    with pytest.raises(MessageTooLarge):
        caller.broker.request(fail, {"x": "y" * (2 << 20)}, timeout=5)
    huge = b'{"v":1,"kind":"request","id":"big","channel":"test.fail","body":"' + b"y" * (2 << 20) + b'"}'
    caller.getRedis().execute_command("PUBLISH", f"{broker_env['REDIS_PREFIX']}:fmr:req:test.fail", huge)  # type: ignore[no-untyped-call]
    (reply,) = caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.dropped == 1
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2


def test_garbage_leaves_the_listener_alive(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    spawn_backend()
    prefix = broker_env["REDIS_PREFIX"]
    garbage: list[bytes] = [
        b"",
        b"not json",
        b"[1,2]",
        b'{"v":2}',
        b'{"v":1,"kind":"explode","id":"x","channel":"math.add"}',
        b'{"v":1,"kind":"request","channel":"math.add"}',
        b'{"v":1,"kind":"request","id":"x","channel":"math.add","deadline":"soon"}',
        b'{"v":1,"kind":"reply","id":"x","channel":"math.add","body":1}',
        bytes(range(256)),
        b'{"v":1,"kind":"request","id":"x","channel":"math.add","body":{"a":"not a number"}}',
    ]
    pipe = caller.getRedis().pipeline(transaction=False)
    for index in range(1000):
        pipe.execute_command("PUBLISH", f"{prefix}:fmr:req:{add.name}", garbage[index % len(garbage)])  # type: ignore[no-untyped-call]
    pipe.execute()

    def counted() -> Stats:
        (reply,) = caller.broker.broadcast(stats, None, gather=True, timeout=10)
        assert reply.value is not None
        return reply.value

    # the command may be answered before the pool has run the one handler the well-formed requests claim
    wait_until(lambda: counted().failed >= 1, timeout=10)
    final = counted()
    assert final.dropped == 900  # the last kind is a well-formed request: answered with an error
    assert final.failed == 1  # all 100 share one id: one claim, one handler run, 99 skipped
    assert caller.broker.request(add, AddIn(a=20, b=22), timeout=5).sum == 42


def test_no_keys_are_left_behind(spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]) -> None:
    backend = spawn_backend()
    for i in range(20):
        caller.broker.request(add, AddIn(a=i, b=i), timeout=5)
    with pytest.raises(RemoteError):
        caller.broker.request(fail, {}, timeout=5)
    caller.broker.broadcast(whoami, None, gather=True, timeout=5)
    session = caller.getRedis()
    prefix = broker_env["REDIS_PREFIX"]
    wait_until(lambda: not session.keys(f"{prefix}:fmr:reply:*"), timeout=5)  # deleted by the caller's heartbeat
    keys = sorted(key.decode() for key in cast(list[bytes], session.keys("*")))
    served = ("math.add", "test.bad-reply", "test.fail", "test.gate")
    assert [key for key in keys if ":fmr:serves:" in key] == [f"{prefix}:fmr:serves:{name}" for name in served]
    own = f"{prefix}:fmr:process:{caller.broker.runtime().sender.id}"  # the caller listens too: it is listed
    (process_key,) = [key for key in keys if ":fmr:serves:" not in key and key != own]
    assert fnmatch(process_key, f"{prefix}:fmr:process:*-{backend.pid}-*")
    backend.terminate()
    backend.wait(10)
    assert [key.decode() for key in cast(list[bytes], session.keys("*"))] == [
        own
    ]  # a stopped process leaves the registry
    caller.broker.stop()
    assert session.keys("*") == []


def test_many_requests_in_flight_from_gevent_share_a_few_connections(
    spawn_backend: Spawn, broker_env: dict[str, str]
) -> None:
    spawn_backend()
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.gevent_caller", "200", "gate:many"],
        env=broker_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["in_flight"] == 200
    assert report["ok"] == 200
    assert (
        report["connections"] <= 5
    )  # the broker's 4 command connections (the pipelined one included) and its pub/sub one


def test_a_gather_counts_only_processes_with_a_command(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()  # it has a handler for math.add, and no command for it
    started = time.monotonic()
    assert caller.broker.broadcast(add, AddIn(a=1, b=1), gather=True, timeout=5) == []
    assert time.monotonic() - started < 1.0


def test_a_request_on_a_command_only_channel_has_no_responders(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()  # it has a command for test.whoami, and no handler for it
    started = time.monotonic()
    with pytest.raises(NoResponders):
        caller.broker.request(whoami, None, timeout=5)
    assert time.monotonic() - started < 1.0


def test_an_idle_process_holds_two_connections(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    caller.broker.heartbeat_interval = 0.2
    runtime = caller.broker.start(timeout=5)
    for i in range(5):
        caller.broker.request(add, AddIn(a=i, b=1), timeout=5)
    own = f"flask-redis:{runtime.sender.id}"
    session = caller.getRedis()

    def held() -> int:
        return sum(1 for client in session.client_list() if client.get("name") == own)

    wait_until(lambda: held() == 2, timeout=5)  # its pub/sub connection and its lane: the waiting one is closed
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2  # and opened again when needed


def test_quick_handlers_run_on_the_listener_and_slow_ones_in_the_pool(
    spawn_backend: Spawn, caller: FlaskRedisSingle
) -> None:
    spawn_backend()

    def thread_of_whoami() -> str:
        (reply,) = caller.broker.broadcast(whoami, None, gather=True, timeout=5)
        assert reply.value is not None
        return reply.value.thread

    assert thread_of_whoami().startswith("flask-redis-handler")  # its cost is not known yet
    # once its average is measured under the threshold (the first run pays one-time costs), no more hand-over
    wait_until(lambda: thread_of_whoami().startswith("flask-redis-listener"))
    session = caller.getRedis()
    slow, results = call_at_gate(caller, "gate:slow", 3)
    # slow handlers each get a handler thread: all three wait at the gate at once
    wait_until(lambda: sum(1 for c in session.client_list() if c.get("cmd") == "blpop" and not c.get("name")) == 3)
    session.rpush("gate:slow", 1, 2, 3)
    for thread in slow:
        thread.join(10)
    assert [type(result) for result in results] == [AddOut, AddOut, AddOut]


def test_the_prefix_keeps_two_environments_apart(spawn_backend: Spawn, broker_env: dict[str, str]) -> None:
    spawn_backend()  # serves math.add in its environment only
    other = FlaskRedisSingle({"URL": broker_env["REDIS_URL"], "PREFIX": broker_env["REDIS_PREFIX"] + "-staging"})
    try:
        with pytest.raises(NoResponders):
            other.broker.request(add, AddIn(a=1, b=1), timeout=5)
        assert other.broker.broadcast(whoami, None) == 0
        assert [p.sender.role for p in other.broker.processes()] == ["web"]  # itself only, not the worker
    finally:
        other.broker.stop()


def test_a_stopped_broker_starts_afresh_when_used_again(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    first = caller.broker.start(timeout=5).sender.id
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
    assert caller.broker.stop(timeout=5)
    assert caller.broker.request(add, AddIn(a=2, b=2), timeout=5).sum == 4
    assert caller.broker.runtime().sender.id != first
    assert caller.broker.health().listener.running


def test_a_call_while_the_broker_stops_is_refused_and_does_not_start_it_again(
    spawn_backend: Spawn, caller: FlaskRedisSingle
) -> None:
    spawn_backend()
    runtime = caller.broker.start(timeout=5)
    assert runtime.stop(timeout=5)  # as Broker.stop does, before it forgets the runtime
    with pytest.raises(BrokerUnavailable, match="stopping"):
        caller.broker.request(add, AddIn(a=1, b=1), timeout=5)
    assert not runtime.listener.running
    assert caller.broker.stop(timeout=5)  # forgotten now: the next call starts a new one
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2


def test_concurrent_first_calls_start_one_listener(caller: FlaskRedisSingle) -> None:
    ready = threading.Barrier(16)
    failures: list[BaseException] = []
    name = caller.broker.runtime().listener.name  # made, not started

    def listeners() -> int:
        return len([t for t in threading.enumerate() if t.name == name])

    wait_until(lambda: listeners() == 0, timeout=10)  # an earlier test's, still stopping

    def first_call() -> None:
        ready.wait()
        try:
            caller.broker.start()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert listeners() == 1
    assert caller.broker.wait_ready(5)


def test_no_responders_keeps_the_connections(caller: FlaskRedisSingle) -> None:
    admin = caller.getRedis()
    with pytest.raises(NoResponders):
        caller.broker.request(add, AddIn(a=1, b=1), timeout=5)
    before = admin.info("stats")["total_connections_received"]
    for _ in range(20):
        with pytest.raises(NoResponders):
            caller.broker.request(add, AddIn(a=1, b=1), timeout=5)
    assert admin.info("stats")["total_connections_received"] - before <= 1  # the INFO call's own, if new


def test_a_child_forked_without_pythons_fork_hooks_gets_a_runtime_of_its_own(caller: FlaskRedisSingle) -> None:
    """uWSGI forks its workers without running Python's fork hooks (unless told to): the child must not take
    its parent's runtime, whose connections the parent and every sibling hold."""
    import ctypes

    parent = caller.broker.start(timeout=5)
    read_end, write_end = os.pipe()
    pid = ctypes.PyDLL(None).fork()  # libc's fork, holding the GIL: no os.register_at_fork hook runs
    if pid == 0:
        try:
            runtime = caller.broker.runtime()
            os.write(write_end, b"1" if runtime is not parent and runtime.pid == os.getpid() else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answered = select.select([read_end], [], [], 10)[0]  # a lock some thread held at the fork would hang it
        if not answered:
            os.kill(pid, signal.SIGKILL)
        assert answered, "the forked child did not answer within 10 s"
        assert os.read(read_end, 1) == b"1"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


def test_a_pattern_subscriber_fools_neither_no_responders_nor_a_gather(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    """A monitor's PSUBSCRIBE prefix:* is counted by PUBLISH, and never answers."""
    monitor = caller.getRedis().pubsub()
    monitor.psubscribe(f"{broker_env['REDIS_PREFIX']}:*")
    wait_until(lambda: monitor.get_message(timeout=0.1) is not None)  # the psubscribe confirmation
    try:
        with pytest.raises(NoResponders):  # at once, not a RequestTimeout after 10 s
            caller.broker.request(add, AddIn(a=1, b=1), timeout=10)
        backend = spawn_backend()
        replies = caller.broker.broadcast(whoami, None, gather=True, timeout=10)
        assert [(reply.ok, reply.value.pid if reply.value else None) for reply in replies] == [(True, backend.pid)]
    finally:
        monitor.close()
