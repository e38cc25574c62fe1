"""Locks over Redis: :class:`Redlock`, held on a majority of independent servers (or on one), with a fencing
token."""

from flask_multi_redis.errors import LockError, LockTimeout

from .algorithm import CLOCK_DRIFT
from .redlock import Redlock

__all__ = ["CLOCK_DRIFT", "LockError", "LockTimeout", "Redlock"]
