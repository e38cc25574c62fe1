"""Run a module as ``__main__`` in a gevent-patched process.

Usage: ``python -m benchmarks.peer_apps.under_gevent MODULE ARGS``.

The monkey-patching comes first, before anything imports socket, ssl or threading.
"""

from gevent import monkey

monkey.patch_all()

import runpy  # noqa: E402 - imported after monkey-patching on purpose
import sys  # noqa: E402 - imported after monkey-patching on purpose

if __name__ == "__main__":
    runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
