"""The registry under attack and at scale: forged records are not shown, far-future members are ignored and
trimmed, and however many members a serves set holds, a request tries a few of them and goes on."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import orjson
import pytest
from flask import Flask

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker.envelope import now_ms
from flask_multi_redis.broker.registry import MAX_TTL_MS, ProcessInfo

from .apps.svc import AddIn, add
from .waiting import wait_until

Spawn = Callable[[], "subprocess.Popen[str]"]

GOOD = {
    "sender": {"id": "w1-7-abc", "host": "w1", "pid": 7, "role": "worker"},
    "inbox": "p:fmr:inbox:w1-7-abc",
    "handlers": ["math.add"],
    "commands": [],
    "started_at": 1718000000.5,
    "handled": 3,
    "failed": 0,
}


def record(**changes: object) -> bytes:
    return orjson.dumps({**GOOD, **changes})


def test_a_record_as_the_heartbeat_writes_it_reads_back() -> None:
    info = ProcessInfo.from_json(record())
    assert info is not None
    assert ProcessInfo.from_json(orjson.dumps(info.as_json())) == info


@pytest.mark.parametrize(
    "changes",
    [
        {"sender": {"id": "w1-7-abc", "host": "w1\nforged row", "pid": 7, "role": "worker"}},
        {"sender": {"id": "w1-7-abc", "host": "w1", "pid": "7", "role": "worker"}},
        {"inbox": ["p:fmr:inbox:x"]},
        {"handlers": ["math.add\x1b[2J"]},
        {"handlers": ["h"] * 1001},
        {"commands": "test.stats"},
        {"started_at": "yesterday"},
        {"started_at": True},
        {"handled": -1},
        {"failed": 1.5},
    ],
)
def test_a_record_not_in_the_documented_form_is_left_out(changes: dict[str, object]) -> None:
    assert ProcessInfo.from_json(record(**changes)) is None


def test_forged_records_are_not_listed_and_the_listing_has_a_limit(
    make_app: Callable[..., Flask], redis_url: str
) -> None:
    app = make_app(REDIS={"URL": redis_url, "PREFIX": "p"})
    FlaskRedisSingle(app)
    admin = FlaskRedisSingle({"URL": redis_url}).getRedis()
    for pid in range(3):
        sender = {"id": f"w1-{pid}-abc", "host": "w1", "pid": pid, "role": "worker"}
        admin.set(f"p:fmr:process:w1-{pid}-abc", record(sender=sender), px=10_000)
    forged = {"id": "evil", "host": "h\nworker  h  1  0s  0  0  math.add  -", "pid": 1, "role": "worker"}
    admin.set("p:fmr:process:evil", record(sender=forged), px=10_000)
    result = app.test_cli_runner().invoke(args=["redis", "workers"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "3 live process(es) with the prefix 'p'"
    assert "evil" not in result.output
    assert "\x1b" not in result.output
    limited = app.test_cli_runner().invoke(args=["redis", "workers", "--limit", "2"])
    assert limited.output.splitlines()[-1] == (
        "2 live process(es) with the prefix 'p', and more: raise --limit to list them"
    )


def test_far_future_and_fake_members_cannot_take_requests(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    """Members an attacker adds to a serves set: far-future ones are ignored (and trimmed at the next
    heartbeat), and however many plausible ones there are, each request tries a few and then the real one."""
    backend = spawn_backend()
    session = caller.getRedis()
    serves = f"{broker_env['REDIS_PREFIX']}:fmr:serves:math.add"
    far = now_ms() + 10 * MAX_TTL_MS
    session.zadd(serves, {f"fake-far-{i}": far for i in range(3)})
    soon = now_ms() + 60_000
    session.zadd(serves, {f"fake-{i}": soon for i in range(1000)})
    before = publishes(caller)
    served = [caller.broker.request(add, AddIn(a=i, b=1), timeout=5) for i in range(20)]
    assert [out.pid for out in served] == [backend.pid] * 20
    assert [out.sum for out in served] == [i + 1 for i in range(20)]
    assert publishes(caller) - before <= 20 * 4  # at most three fakes, then the real one, per request
    wait_until(lambda: not any(session.zscore(serves, f"fake-far-{i}") for i in range(3)), timeout=10)


def publishes(ext: FlaskRedisSingle) -> int:
    """PUBLISH commands the server has run so far."""
    stats = ext.getRedis().info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))
