"""The demo's backend handlers, served by
``flask-redis-worker 'examples.webapp:create_app()' --router examples.backend:router``."""

from __future__ import annotations

import os

from flask_multi_redis.broker import Router

from .channels import AddIn, AddOut, math_add

router = Router()


@router.handler(math_add)
def add(message: AddIn) -> AddOut:
    return AddOut(sum=message.a + message.b, served_by=os.getpid())
