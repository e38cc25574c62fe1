"""Which process this is, and whether it should listen: the gunicorn master and the Flask reloader's parent
must not, each gunicorn worker must, and after a fork the child needs a new identity.

:func:`when_to_start` looks at how the process was launched; :func:`after_fork` runs a callback in every
forked child at the first moment a listener may start there (at once for sync and gthread workers, after
gevent's monkey-patching for gevent workers: a thread started before that would be a real OS thread that
shares sockets with the hub).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable
from typing import Literal

from .envelope import Sender

__all__ = ["after_fork", "log_through_gunicorn", "new_sender", "start_explicitly", "when_to_start"]

log = logging.getLogger(__name__)

#: "now": this process serves; "after-fork" / "after-gevent-fork": a preloading gunicorn master, whose
#: workers will serve; "never": a process that does not serve (the Flask reloader's parent, a flask command).
Start = Literal["now", "after-fork", "after-gevent-fork", "never"]

_fork_callbacks: list[Callable[[], None]] = []
_gevent_callbacks: list[Callable[[], None]] = []
_master_pid: int | None = None  # the preloading gunicorn master whose children start the callbacks
_started_explicitly = False


def start_explicitly() -> None:
    """Declare that this process starts its broker itself (the worker does), so nothing starts on its own."""
    global _started_explicitly
    _started_explicitly = True


def log_through_gunicorn() -> None:
    """In a gunicorn worker where logging is not configured, send the package's log lines to gunicorn's error
    log (its format has the time, the pid and the level): Python's last-resort handler prints bare messages."""
    if "gunicorn.glogging" not in sys.modules or logging.getLogger().handlers:
        return
    ours, gunicorn = logging.getLogger("flask_multi_redis"), logging.getLogger("gunicorn.error")
    if not ours.handlers and gunicorn.handlers:
        ours.handlers = list(gunicorn.handlers)
        ours.setLevel(gunicorn.level)
        ours.propagate = False


def new_sender(role: str) -> Sender:
    """A fresh identity for this process: the random part makes it unique even when a pid is reused."""
    host = socket.gethostname()
    pid = os.getpid()
    return Sender(id=f"{host}-{pid}-{secrets.token_hex(4)}", host=host, pid=pid, role=role)


def when_to_start() -> Start:
    """Decide whether a listener registered now should start in this process, later in its children, or never."""
    if _started_explicitly:
        return "never"
    worker_class = _preloading_gunicorn_worker_class()
    if worker_class is not None:
        gevent_worker = worker_class.__module__ == "gunicorn.workers.ggevent"
        return "after-gevent-fork" if gevent_worker else "after-fork"
    return _flask_cli_decision()


def after_fork(callback: Callable[[], None], gevent: bool) -> None:
    """Run ``callback`` in each child this process forks, once a listener may start there (see the module
    docstring); not in grandchildren, such as a multiprocessing fork inside a worker."""
    global _master_pid
    _master_pid = os.getpid()
    (_gevent_callbacks if gevent else _fork_callbacks).append(callback)


def _preloading_gunicorn_worker_class() -> type | None:
    """The worker class when this code runs inside a gunicorn master's ``--preload`` (``Arbiter.setup``)."""
    arbiter_module = sys.modules.get("gunicorn.arbiter")
    if arbiter_module is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self") if frame.f_code.co_name == "setup" else None
        if owner is not None and isinstance(owner, arbiter_module.Arbiter):
            return owner.worker_class  # type: ignore[no-any-return]
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _flask_cli_decision() -> Start:
    """Inside a ``flask`` command: ``flask run`` serves (in the reloader's child when reloading); others do not."""
    try:
        import click
        from flask.cli import FlaskGroup
        from flask.helpers import get_debug_flag
        from werkzeug.serving import is_running_from_reloader
    except ImportError:  # pragma: no cover - flask and click are dependencies
        return "now"
    context = click.get_current_context(silent=True)
    if context is None or not isinstance(context.find_root().command, FlaskGroup):
        return "now"
    if context.info_name != "run":
        return "never"
    reload = context.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return "now" if not reload or is_running_from_reloader() else "never"


def _run(callbacks: list[Callable[[], None]]) -> None:
    for callback in list(callbacks):
        try:
            callback()
        except Exception:
            log.exception("starting the broker in process %d failed", os.getpid())


def _in_child() -> None:
    if _master_pid is None or os.getppid() != _master_pid:
        return
    _run(_fork_callbacks)
    if not _gevent_callbacks:
        return
    from gevent import events, monkey, spawn

    if monkey.is_module_patched("threading"):  # the app patched in the master: the worker's patch_all is a no-op
        spawn(_run, _gevent_callbacks)
    else:
        events.subscribers.append(_on_gevent_event)


def _on_gevent_event(event: object) -> None:
    from gevent import events, spawn

    if isinstance(event, events.GeventDidPatchAllEvent):
        events.subscribers.remove(_on_gevent_event)
        spawn(_run, _gevent_callbacks)  # runs once the worker's hub is up


os.register_at_fork(after_in_child=_in_child)
