"""svc, from a module that monkey-patches with gevent before anything else (a common wsgi.py)."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

from tests.apps.svc import create_app  # noqa: E402

__all__ = ["create_app"]
