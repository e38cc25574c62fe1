"""The fault suite's tools: a steady load of calls, and the table every fault scenario adds a row to.

``make faults`` runs the scenarios (pytest marker ``faults``) and writes the table to docs/faults.md
(``FAULT_TABLE``); every other run prints it at the end.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask_multi_redis.broker import Broker

from .apps.svc import AddIn, add, whoami

#: A call's outcome counts as late when it ends more than this many seconds after its deadline.
LATE_AFTER = 1.0


class Load:
    """Callers calling in a loop until stopped: how each call ended, when, and those that ended late.

    :param call: ``call(i)`` makes one call as caller ``i`` and returns its timeout.
    :param pause: seconds a caller waits after a failed call before the next (0: none), as a client that is
        told "unavailable" does; without it, calls that fail at once make a storm of their own.
    """

    def __init__(self, call: Callable[[int], float], callers: int, pause: float = 0.0) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.ended: list[tuple[float, float, str]] = []  # (started, ended, outcome), monotonic, in order
        self.late = 0
        self.examples: dict[str, str] = {}  # the first message of each kind of error, for a failing assertion
        self._call = call
        self._pause = pause
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(callers)]
        for thread in self._threads:
            thread.start()

    def _loop(self, i: int) -> None:
        timeout = 0.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                timeout = self._call(i)
                outcome = "ok"
            except Exception as exc:
                outcome = type(exc).__name__
                self.examples.setdefault(outcome, str(exc))
                timeout = timeout or 30.0
            ended = time.monotonic()
            with self._lock:
                self.outcomes[outcome] += 1
                self.ended.append((started, ended, outcome))
                if ended - started > timeout + LATE_AFTER:
                    self.late += 1
            if outcome != "ok" and self._pause:
                self._stop.wait(self._pause)

    def ok_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for _, ended, outcome in self.ended if ended >= moment and outcome == "ok")

    def recovered_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the end of the first successful call begun after it."""
        with self._lock:
            found = (ended for started, ended, outcome in self.ended if started >= moment and outcome == "ok")
            return next((ended - moment for ended in found), None)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)
        return dict(self.outcomes)


@dataclass
class Row:
    """One scenario's line in the fault table."""

    scenario: str
    outcomes: dict[str, int]
    late: int
    lost: int | None  # calls that timed out where a clean stop must lose none; None where a loss is the fault's
    recovery: float | None
    examples: dict[str, str] = field(default_factory=dict, repr=True)

    @property
    def calls(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class FaultTable:
    rows: list[Row] = field(default_factory=list)

    def add(self, scenario: str, load: Load, fault_ended: float | None, *, clean: bool = False) -> Row:
        """Stop ``load`` and add its row; ``fault_ended``: None when nothing serves afterwards; ``clean``: a clean
        stop, where a timed-out call is a lost one."""
        outcomes = load.stop()
        lost = outcomes.get("RequestTimeout", 0) if clean else None
        recovery = None if fault_ended is None else load.recovered_after(fault_ended)
        row = Row(scenario, outcomes, load.late, lost, recovery, dict(load.examples))
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        lines = [
            "| scenario | calls | replies | typed errors | late | lost | recovery |",
            "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for row in self.rows:
            errors = ", ".join(f"{kind} {n}" for kind, n in sorted(row.outcomes.items()) if kind != "ok") or "none"
            lost = "-" if row.lost is None else str(row.lost)
            recovery = "-" if row.recovery is None else f"{row.recovery:.1f} s"
            lines.append(
                f"| {row.scenario} | {row.calls} | {row.outcomes.get('ok', 0)} | {errors} | {row.late} | {lost} "
                f"| {recovery} |"
            )
        return "\n".join(lines)

    def write(self) -> None:
        """Into the file named by FAULT_TABLE, when it is set (``make faults``)."""
        path = os.environ.get("FAULT_TABLE")
        if path and self.rows:
            Path(path).write_text(_HEAD + self.markdown() + "\n" + _TAIL)


_HEAD = """# Faults: what calls do when things go wrong

Written by `make faults` (the tests with the pytest marker `faults`, against real redis-server, worker and
gunicorn processes started by the tests). Each scenario runs a steady load of calls (requests, and gathered
broadcasts where the scenario says so) through a fault. *Typed errors* are what calls raised instead of a
reply; *late* counts calls that ended more than 1 s after their deadline (it must be 0 everywhere); *lost*
counts calls that timed out where the process stopped cleanly (it must be 0; "-" where a loss is the fault
itself, such as a process killed with its requests in flight); *recovery* is the time from the end of the
fault (or the kill) to the first successful call after it. Figures vary from run to run; the zeros do not.

"""
_TAIL = """
Every run of the test suite runs these scenarios and asserts the zeros; this table is the last `make faults`
run, committed as written.
"""


class EmptyGather(Exception):
    """A gather that reached no process, while one serves the channel."""


#: The one table of a test session.
TABLE = FaultTable()


def calls_of(broker: Broker, timeout: float, gather_every: int = 0) -> Callable[[int], float]:
    """What a :class:`Load`'s callers do: requests of svc's ``math.add`` with ``timeout``, and with
    ``gather_every`` every so many callers a gathered ``test.whoami`` broadcast instead (a gather that reports a
    missing answer counts as a RequestTimeout, one that reached nobody as an EmptyGather)."""

    def call(i: int) -> float:
        if gather_every and i % gather_every == 0:
            replies = broker.broadcast(whoami, None, gather=True, timeout=timeout)
            if not replies:
                raise EmptyGather("the gather reached nobody")
            for reply in replies:
                if reply.error is not None:
                    raise reply.error
        else:
            broker.request(add, AddIn(a=i, b=1), timeout=timeout)
        return timeout

    return call
