"""``flask redis asyncapi``: an AsyncAPI 3.0 document of the app's channels, valid against the official AsyncAPI
JSON Schema (from the ``@asyncapi/specs`` npm package), whose message schemas describe the envelopes the broker
really sends, caught on the wire."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from flask import Flask
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, Router

from .apps.svc import AddOut, add
from .topologies import Cluster

MakeApp = Callable[..., Flask]

SPECS = "@asyncapi/specs@6.11.1"  # the package AsyncAPI's own parser validates documents with


@pytest.fixture(scope="session")
def asyncapi_schema() -> dict[str, Any]:
    """The official JSON Schema of AsyncAPI 3.0.0, fetched once with npm into the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flask-multi-redis" / SPECS[1:]
    schema = cache / "package" / "schemas" / "3.0.0-without-$id.json"
    if not schema.exists():
        npm = shutil.which("npm")
        assert npm, "the AsyncAPI test needs npm, to fetch the AsyncAPI schema (.ci/run installs it)"
        cache.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [npm, "pack", SPECS, "--silent"], cwd=cache, check=True, capture_output=True, text=True, timeout=120
        )
        with tarfile.open(cache / packed.stdout.strip().splitlines()[-1]) as archive:
            archive.extractall(cache, filter="data")
    loaded: dict[str, Any] = json.loads(schema.read_text())
    return loaded


class Line(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    lines: list[Line]
    parent: Order | None = None  # a recursive model: its $defs must land in components.schemas


place = Channel("orders/place", Order, AddOut)
reload = Channel("config.reload", None, None)


@pytest.fixture
def document(make_app: MakeApp, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    app = make_app(REDIS={"URL": redis_url, "PREFIX": "api"})
    ext = FlaskRedisSingle(app)
    orders = Router()
    orders.handler(place)(lambda order: AddOut(sum=len(order.lines), pid=os.getpid()))
    ext.broker.include_router(orders)
    ext.broker.handler(add)(lambda message: AddOut(sum=message.a + message.b, pid=os.getpid()))
    ext.broker.command(add)(lambda message: None)  # one channel with both kinds
    ext.broker.command(reload)(lambda message: None)
    written = tmp_path / "asyncapi.json"
    result = app.test_cli_runner().invoke(args=["redis", "asyncapi", "--title", "Shop", "-o", str(written)])
    assert result.exit_code == 0, result.output
    yield json.loads(written.read_text())
    with app.app_context():
        ext.broker.stop()


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    found: Any = document
    for part in ref[2:].split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any], asyncapi_schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(asyncapi_schema).validate(document)
    for ref in refs(document):  # the schema cannot check that a reference points at something
        resolve(document, ref)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Shop"
    assert document["servers"]["redis"]["protocol"] == "redis"
    broken = {**document, "operations": {"x": {"action": "publish"}}}  # the validator does refuse a bad one
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(asyncapi_schema).validate(broken)


def test_one_operation_per_route_with_its_channel_and_reply(document: dict[str, Any]) -> None:
    operations = document["operations"]
    assert sorted(operations) == [
        "command.config.reload",
        "command.math.add",
        "handler.math.add",
        "handler.orders_place",
    ]
    channels = document["channels"]
    assert channels["handler.orders_place"]["address"] == "api:fmr:req:orders/place"
    assert channels["handler.math.add"]["address"] == "api:fmr:req:math.add"
    assert channels["command.math.add"]["address"] == "api:math.add"
    assert channels["replies"]["address"] is None
    served = operations["handler.orders_place"]
    assert served["action"] == "receive"
    assert served["reply"]["address"]["location"] == "$message.payload#/reply_to"
    replies = [resolve(document, ref["$ref"])["$ref"] for ref in served["reply"]["messages"]]
    assert replies == [
        "#/components/messages/handler.orders_place.reply",
        "#/components/messages/handler.orders_place.error",
    ]
    assert {"Order", "Line", "AddOut", "AddIn"} <= document["components"]["schemas"].keys()


def payload_validator(document: dict[str, Any], message: str) -> jsonschema.protocols.Validator:
    """A validator of one message's payload, its references resolved inside the document."""
    return jsonschema.Draft202012Validator({**document, "$ref": f"#/components/messages/{message}/payload"})


def test_the_message_schemas_describe_what_goes_over_the_wire(
    document: dict[str, Any], make_app: MakeApp, redis_url: str
) -> None:
    """The broker's own request, caught on the wire; and the reply and the error reply it gives a foreign
    client that names a reply_to (a sequential Python caller takes its reply from the reply list)."""
    app = make_app(REDIS={"URL": redis_url, "PREFIX": "api"})
    ext = FlaskRedisSingle(app)
    seen: dict[str, dict[str, Any]] = {}
    with redis.Redis.from_url(redis_url) as spy, spy.pubsub() as wire:
        wire.psubscribe("api:*")
        while wire.get_message(timeout=5) is None:
            pass
        with app.app_context():
            ext.broker.request(place, Order(lines=[Line(sku="a", quantity=2)], parent=None), timeout=5)
            ext.broker.stop()
        asked = {"v": 1, "kind": "request", "channel": "orders/place", "reply_to": "api:spy"}
        good, bad = {"lines": [{"sku": "b", "quantity": 1}]}, {"lines": "none"}
        spy.publish("api:fmr:req:orders/place", json.dumps({**asked, "id": "spy-good", "body": good}))
        spy.publish("api:fmr:req:orders/place", json.dumps({**asked, "id": "spy-bad", "body": bad}))
        deadline = time.monotonic() + 10
        while len(seen) < 4 and time.monotonic() < deadline:
            message = wire.get_message(timeout=1)
            if message is not None and message["type"] == "pmessage":
                envelope = json.loads(message["data"])
                seen.setdefault(envelope["kind"], envelope)
    assert seen.keys() == {"request", "reply", "error"}
    request = payload_validator(document, "handler.orders_place.request")
    request.validate(seen["request"])
    payload_validator(document, "handler.orders_place.reply").validate(seen["reply"])
    payload_validator(document, "handler.orders_place.error").validate(seen["error"])
    assert seen["error"]["body"]["type"] == "InvalidMessage"
    with pytest.raises(jsonschema.ValidationError):
        request.validate({**seen["request"], "body": bad})
    with pytest.raises(jsonschema.ValidationError):  # a request is not a reply
        payload_validator(document, "handler.orders_place.reply").validate(seen["request"])


def test_a_cluster_hash_tag_is_a_declared_parameter(
    redis_cluster: Cluster, make_app: MakeApp, asyncapi_schema: dict[str, Any], tmp_path: Path
) -> None:
    app = make_app(REDIS={"URL": redis_cluster.url, "PREFIX": "shop"})
    ext = FlaskRedisSingle(app)
    ext.broker.handler(add)(lambda message: AddOut(sum=0, pid=0))
    result = app.test_cli_runner().invoke(args=["redis", "asyncapi"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    jsonschema.Draft7Validator(asyncapi_schema).validate(document)
    channel = document["channels"]["handler.math.add"]
    assert channel["address"] == "{shop}:fmr:req:math.add"
    assert channel["parameters"] == {
        "shop": {"enum": ["{shop}"], "description": channel["parameters"]["shop"]["description"]}
    }
    assert document["servers"]["redis"]["protocol"] == "redis+cluster"
    with app.app_context():
        ext.broker.stop()
        ext.getCluster().close()
