"""The channels the demo's web app and worker share: a declaration each, no connection."""

from __future__ import annotations

from pydantic import BaseModel

from flask_multi_redis.broker import Channel


class Reload(BaseModel):
    """New values for some settings; every web worker applies them."""

    values: dict[str, str]


class ReloadAck(BaseModel):
    pid: int
    settings: dict[str, str]


class AddIn(BaseModel):
    a: int
    b: int


class AddOut(BaseModel):
    sum: int
    served_by: int


config_reload = Channel("config.reload", request=Reload, reply=ReloadAck)
math_add = Channel("math.add", request=AddIn, reply=AddOut)
