"""Locks over Redis: :class:`Redlock`, held on a majority of independent servers (or on one), with a fencing
token."""

from flask_multi_redis.errors import LockError, LockTimeout

from .redlock import CLOCK_DRIFT, Redlock

__all__ = ["CLOCK_DRIFT", "LockError", "LockTimeout", "Redlock"]
