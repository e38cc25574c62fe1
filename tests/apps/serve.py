"""A backend process for the tests: serves ``svc.backend`` (and the web routes) until SIGTERM.

Prints ``ready <pid>`` once subscribed and registered. Replaced by the Worker of the next issue.
"""

from __future__ import annotations

import os
import signal
import threading

from tests.apps import svc


def main() -> None:
    svc.redis.broker.role = "worker"
    svc.redis.broker.include_router(svc.backend)
    app = svc.create_app()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with app.app_context():
        svc.redis.broker.start(timeout=10)
        print("ready", os.getpid(), flush=True)
        stop.wait()
        svc.redis.broker.stop()


if __name__ == "__main__":
    main()
