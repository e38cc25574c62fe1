"""PROTOCOL.md, proved with redis-cli as the foreign client: hand-written envelopes, served by tests/apps/serve.py.

The test process never uses the library here: every message is sent and read by a ``redis-cli`` subprocess.
"""

from __future__ import annotations

import json
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from subprocess import Popen
from typing import Any
from urllib.parse import urlsplit

import pytest

Spawn = Callable[[], "Popen[str]"]

#: How far ahead the test's requests put their deadline.
TIMEOUT_MS = 10_000
#: A claim or a kept reply expires at most this long after the request's deadline (PROTOCOL.md).
GRACE_MS = 1000
#: So their time to live never exceeds this: the serving process sets it after the request was written.
MAX_KEPT_TTL_MS = TIMEOUT_MS + GRACE_MS
#: Registry entries live three heartbeat intervals of 2 s.
REGISTRY_TTL_MS = 6000


def now_ms() -> int:
    return int(time.time() * 1000)


class Cli:
    """``redis-cli`` against the test's own server (never the machine's 6379)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "redis"
        assert parts.hostname is not None
        assert parts.port is not None
        self.base = ["redis-cli", "-h", parts.hostname, "-p", str(parts.port)]

    def __call__(self, *args: str) -> list[str]:
        """Run one command; its reply as redis-cli prints it when not on a terminal, one line per element."""
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30, check=True)
        assert done.stderr == ""
        return done.stdout.splitlines()

    def keys(self, pattern: str) -> list[str]:
        return sorted(key for key in self("KEYS", pattern) if key)  # an empty list prints as one empty line


class Subscriber:
    """A ``redis-cli SUBSCRIBE`` process; a thread reads its output so that every read has a deadline."""

    def __init__(self, cli: Cli, channel: str) -> None:
        self.channel = channel
        self.process = subprocess.Popen(
            [*cli.base, "SUBSCRIBE", channel], stdout=subprocess.PIPE, text=True, encoding="utf-8"
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def read(self, count: int, timeout: float = TIMEOUT_MS / 1000) -> list[str]:
        """The next ``count`` output lines, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        try:
            while len(lines) < count:
                lines.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"redis-cli printed {lines!r} on {self.channel!r} within {timeout} s") from None
        return lines

    def message(self) -> dict[str, Any]:
        """The next message on the channel, parsed as an envelope."""
        kind, channel, payload = self.read(3)
        assert (kind, channel) == ("message", self.channel)
        return json.loads(payload)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def prefix(broker_env: dict[str, str]) -> str:
    return broker_env["REDIS_PREFIX"]


@pytest.fixture
def cli(broker_env: dict[str, str]) -> Cli:
    return Cli(broker_env["REDIS_URL"])


@pytest.fixture
def subscribe(cli: Cli) -> Iterator[Callable[[str], Subscriber]]:
    """Start a SUBSCRIBE process and return once redis-cli shows the server confirmed it."""
    started: list[Subscriber] = []

    def start(channel: str) -> Subscriber:
        subscriber = Subscriber(cli, channel)
        started.append(subscriber)
        assert subscriber.read(3) == ["subscribe", channel, "1"]
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()


def write_envelope(body: object, *, kind: str = "request", channel: str = "math.add", **extra: object) -> str:
    """A hand-written envelope with a fresh id and a deadline TIMEOUT_MS from now."""
    fields = {"v": 1, "kind": kind, "id": f"cli-{secrets.token_hex(8)}", "channel": channel, "body": body}
    return json.dumps({**fields, "deadline": now_ms() + TIMEOUT_MS, **extra})


def id_of(envelope: str) -> str:
    return json.loads(envelope)["id"]  # type: ignore[no-any-return]


def assert_reply(reply: dict[str, Any], request_id: str, backend: Popen[str], total: int) -> None:
    assert reply["v"] == 1
    assert reply["kind"] == "reply"
    assert reply["id"] == request_id
    assert reply["channel"] == "math.add"
    assert reply["body"] == {"sum": total, "pid": backend.pid}
    assert reply["sender"]["pid"] == backend.pid
    assert reply["sender"]["role"] == "worker"
    assert "reply_to" not in reply
    assert "deadline" not in reply


def assert_invalid(reply: dict[str, Any], request_id: str, backend: Popen[str]) -> None:
    assert (reply["v"], reply["kind"], reply["id"]) == (1, "error", request_id)
    assert reply["sender"]["pid"] == backend.pid
    assert set(reply["body"]) == {"type", "message"}
    assert reply["body"]["type"] == "InvalidMessage"
    assert "AddIn" in reply["body"]["message"]


def assert_only_bounded_keys_left(
    cli: Cli, prefix: str, *, claims: dict[str, str], replies: dict[str, list[dict[str, Any]]]
) -> None:
    """Left: the given claims (id -> claiming process) and reply lists (id -> the answers they keep), each
    expiring by its deadline plus GRACE_MS, and the registry's own entries, which expire unless renewed."""
    keys = cli.keys(f"{prefix}:*")
    claim_keys = {f"{prefix}:fmr:claim:{request_id}": owner for request_id, owner in claims.items()}
    reply_keys = {f"{prefix}:fmr:reply:{request_id}": kept for request_id, kept in replies.items()}
    assert {key for key in keys if ":fmr:claim:" in key} == set(claim_keys)
    assert {key for key in keys if ":fmr:reply:" in key} == set(reply_keys)
    for key in keys:
        ttl = int(cli("PTTL", key)[0])
        if key in claim_keys:
            assert 0 < ttl <= MAX_KEPT_TTL_MS, (key, ttl)
            assert cli("GET", key) == [claim_keys[key]]
        elif key in reply_keys:
            assert 0 < ttl <= MAX_KEPT_TTL_MS, (key, ttl)
            kept = [json.loads(line) for line in cli("LRANGE", key, "0", "-1")]
            assert sorted(kept, key=json.dumps) == sorted(reply_keys[key], key=json.dumps)
        else:
            assert key.startswith((f"{prefix}:fmr:process:", f"{prefix}:fmr:serves:")), key
            assert 0 < ttl <= REGISTRY_TTL_MS, (key, ttl)


def test_a_request_and_its_reply_from_the_reply_list(spawn_backend: Spawn, cli: Cli, prefix: str) -> None:
    backend = spawn_backend()
    replies = []
    for body in ({"a": 2, "b": 3}, {"a": "two", "b": 3}):
        envelope = write_envelope(body)  # no reply_to: the answer is only in the reply list
        assert cli("PUBLISH", f"{prefix}:fmr:req:math.add", envelope) == ["1"]
        reply_key = f"{prefix}:fmr:reply:{id_of(envelope)}"
        key, reply = cli("BLPOP", reply_key, str(TIMEOUT_MS / 1000))
        assert key == reply_key
        replies.append((id_of(envelope), json.loads(reply)))
    (good_id, good), (bad_id, bad) = replies
    assert_reply(good, good_id, backend, 5)
    assert_invalid(bad, bad_id, backend)
    owner = good["sender"]["id"]
    # BLPOP took the only answer, which deleted each list; the claims stay until they expire
    assert_only_bounded_keys_left(cli, prefix, claims={good_id: owner, bad_id: owner}, replies={})


def test_a_request_and_its_reply_on_the_callers_channel(
    spawn_backend: Spawn, cli: Cli, prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    backend = spawn_backend()
    inbox = subscribe(f"{prefix}:fmr:inbox:cli-{secrets.token_hex(4)}")
    good = write_envelope({"a": 20, "b": 22}, reply_to=inbox.channel)
    assert cli("PUBLISH", f"{prefix}:fmr:req:math.add", good) == ["1"]
    reply = inbox.message()
    assert_reply(reply, id_of(good), backend, 42)
    bad = write_envelope({"b": 1}, reply_to=inbox.channel)
    assert cli("PUBLISH", f"{prefix}:fmr:req:math.add", bad) == ["1"]
    error = inbox.message()
    assert_invalid(error, id_of(bad), backend)
    owner = reply["sender"]["id"]
    # the answers are also kept in the reply lists, which this client leaves to expire
    assert_only_bounded_keys_left(
        cli,
        prefix,
        claims={id_of(good): owner, id_of(bad): owner},
        replies={id_of(good): [reply], id_of(bad): [error]},
    )
    assert cli("UNLINK", f"{prefix}:fmr:reply:{id_of(good)}", f"{prefix}:fmr:reply:{id_of(bad)}") == ["2"]


def test_a_gathered_command_is_answered_once_per_process(
    spawn_backend: Spawn, cli: Cli, prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    pids = {spawn_backend().pid for _ in range(2)}
    inbox = subscribe(f"{prefix}:fmr:inbox:cli-{secrets.token_hex(4)}")
    envelope = write_envelope(None, kind="command", channel="test.stats", reply_to=inbox.channel)
    assert cli("PUBLISH", f"{prefix}:test.stats", envelope) == ["2"]  # two processes received it
    replies = [inbox.message(), inbox.message()]
    assert {(reply["kind"], reply["id"], reply["channel"]) for reply in replies} == {
        ("reply", id_of(envelope), "test.stats")
    }
    assert {reply["sender"]["pid"] for reply in replies} == pids
    assert all(reply["body"]["pid"] == reply["sender"]["pid"] for reply in replies)
    # a command takes no claim; both answers are kept in one list
    assert_only_bounded_keys_left(cli, prefix, claims={}, replies={id_of(envelope): replies})


def test_publish_reaching_nobody_means_nobody_serves(cli: Cli, prefix: str) -> None:
    envelope = write_envelope({"a": 1, "b": 1})
    assert cli("PUBLISH", f"{prefix}:fmr:req:math.add", envelope) == ["0"]
    assert cli.keys(f"{prefix}:*") == []


def test_requests_and_commands_have_channels_of_their_own(spawn_backend: Spawn, cli: Cli, prefix: str) -> None:
    spawn_backend()  # math.add has a handler and no command; test.stats a command and no handler
    assert cli("PUBLISH", f"{prefix}:math.add", write_envelope({"a": 1, "b": 1}, kind="command")) == ["0"]
    assert cli("PUBLISH", f"{prefix}:fmr:req:test.stats", write_envelope(None, channel="test.stats")) == ["0"]


@pytest.mark.parametrize("deadline", [now_ms() + 10 * 365 * 86_400_000, (1 << 53) - 1], ids=["10-years", "2^53-1"])
def test_a_far_deadline_keeps_nothing_past_max_timeout(
    spawn_backend: Spawn, cli: Cli, prefix: str, deadline: int
) -> None:
    """Whatever deadline a sender writes, the claim and the kept answer live at most max_timeout (300 s) and a
    second more."""
    spawn_backend()
    envelope = write_envelope({"a": 1, "b": 2}, deadline=deadline)
    assert cli("PUBLISH", f"{prefix}:fmr:req:math.add", envelope) == ["1"]
    reply_key = f"{prefix}:fmr:reply:{id_of(envelope)}"
    assert cli("BLMOVE", reply_key, reply_key, "RIGHT", "RIGHT", "5")  # the answer is kept (and stays there)
    for key in (reply_key, f"{prefix}:fmr:claim:{id_of(envelope)}"):
        assert 290_000 < int(cli("PTTL", key)[0]) <= 301_000, key
