"""The ``flask-redis-worker`` console script: patches for gevent first when asked, then runs the CLI.

Nothing but the standard library is imported before the patch: ``--pool gevent`` (or ``-P gevent``) must
patch sockets, threads and ssl before Flask, redis-py or the app import them.
"""

from __future__ import annotations

import sys

#: What to do when the gevent pool is asked for and gevent is not installed (an optional dependency).
GEVENT_MISSING = (
    "gevent is not installed: pip install gevent (or pip install '.[gevent]' in a clone of flask-multi-redis)"
)


def wants_gevent(argv: list[str]) -> bool:
    """Whether the command line asks for the gevent pool (``--pool gevent``, ``--pool=gevent``, ``-P gevent``,
    ``-Pgevent``); as for click, the last one given counts."""
    pool = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("--pool", "-P") and index + 1 < len(argv):
            pool = argv[index + 1]
        elif arg.startswith("--pool="):
            pool = arg.partition("=")[2]
        elif arg.startswith("-P") and len(arg) > 2:
            pool = arg[2:]
    return pool == "gevent"


def main() -> None:
    if wants_gevent(sys.argv[1:]):
        try:
            from gevent import monkey
        except ImportError:
            print(f"Error: Invalid value for '--pool': {GEVENT_MISSING}", file=sys.stderr)
            sys.exit(2)
        monkey.patch_all()
    from .cli import worker_main

    worker_main()


if __name__ == "__main__":
    main()
