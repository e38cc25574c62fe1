"""An AsyncAPI 3.0 document of the channels an app serves (``flask redis asyncapi``), for a foreign service or a
reviewer that should not have to read Python: one operation per route (the app *receives* a request on a
handler's request channel, a command on a command's channel) with its reply, and every message as the envelope
of PROTOCOL.md whose ``body`` is the route's request or reply type, as pydantic writes its JSON Schema.

AsyncAPI names the reply's address from the request itself (``$message.payload#/reply_to``), as the broker does.
What AsyncAPI cannot say (the claim, the reply lists, deadlines, signing) PROTOCOL.md does; the document names it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from .broker import names
from .broker.envelope import MAX_CHANNEL, MAX_DEADLINE, MAX_ID, MAX_REPLY_TO

if TYPE_CHECKING:
    from .broker.router import Route
    from .extension import RedisExtension

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"

#: Schemas of the envelope's own parts, under names a pydantic model cannot take (they hold a dot).
ENVELOPE, SENDER, ERROR = "fmr.envelope", "fmr.sender", "fmr.error"


def asyncapi_document(extension: RedisExtension, title: str = "", version: str = "1") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the routes of ``extension``'s broker in the current app, with the server
    and environment prefix its messages travel through (password hidden). ``title`` defaults to the app's
    name; ``version`` is the version of *your* API."""
    from flask import current_app

    broker = extension.broker
    address, _ = broker.where()
    prefix = broker.wire_session(extension.context_app())[0].prefix  # on a cluster, the hash tag
    routes = sorted(broker.routes(), key=lambda route: (route.kind, route.channel.name))
    keyed = list(zip(_ids(routes), routes, strict=True))
    payloads, definitions = TypeAdapter.json_schemas(
        [((key, "request"), "validation", TypeAdapter(r.channel.request_type)) for key, r in keyed]
        + [((key, "reply"), "serialization", TypeAdapter(r.channel.reply_type)) for key, r in keyed],
        ref_template="#/components/schemas/{model}",
    )
    channels: dict[str, Any] = {"replies": _reply_channel([key for key, _ in keyed])}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for key, route in keyed:
        name = route.channel.name
        sent = "request" if route.kind == "handler" else "command"
        messages[f"{key}.{sent}"] = _message(sent, name, payloads[((key, "request"), "validation")])
        messages[f"{key}.reply"] = _message("reply", name, payloads[((key, "reply"), "serialization")])
        messages[f"{key}.error"] = _message("error", name, {"$ref": f"#/components/schemas/{ERROR}"})
        channels[key] = _channel(route, prefix, f"{key}.{sent}")
        operations[key] = _operation(route, key, sent)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title or current_app.name,
            "version": version,
            "description": (
                f"The channels served over Redis by the broker of flask-multi-redis, environment prefix {prefix!r}. "
                "The wire protocol (claims, reply lists, deadlines, signing) is flask-multi-redis's PROTOCOL.md, "
                "version 1."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"redis": _server(address)},
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {**_envelope_schemas(), **definitions.get("$defs", {})},
        },
    }


def _ids(routes: list[Route]) -> list[str]:
    """A key per route that AsyncAPI accepts (letters, digits, ``.``, ``-``, ``_``), unique in the document."""
    taken: set[str] = {"replies"}
    keys = []
    for route in routes:
        base = f"{route.kind}.{re.sub(r'[^A-Za-z0-9_.-]', '_', route.channel.name)}"
        key, n = base, 2
        while key in taken:
            key, n = f"{base}-{n}", n + 1
        taken.add(key)
        keys.append(key)
    return keys


def _server(address: str) -> dict[str, Any]:
    parts = urlsplit(address)
    host = parts.netloc.rpartition("@")[2] or "localhost"
    server: dict[str, Any] = {"host": host, "protocol": parts.scheme or "redis"}
    if parts.path not in ("", "/"):
        server["pathname"] = parts.path
    return server


def _channel(route: Route, prefix: str, message: str) -> dict[str, Any]:
    if route.kind == "handler":
        address = names.request_channel(prefix, route.channel.name)
        description = (
            "Requests, each served by one process: every process with a handler subscribes, and the one that "
            "claims the request answers it. A request may also go to one process's inbox (PROTOCOL.md)."
        )
    else:
        address = names.command_channel(prefix, route.channel.name)
        description = "Commands, run by every process subscribed; answered by each only when they carry reply_to."
    channel: dict[str, Any] = {
        "address": address,
        "title": route.channel.name,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }
    parameters = _parameters(address)
    if parameters:
        channel["parameters"] = parameters
    return channel


def _parameters(address: str) -> dict[str, Any]:
    """On a Redis Cluster the prefix is a hash tag in braces, which AsyncAPI reads as a parameter: each one is
    declared, with its literal self as its only value."""
    return {
        tag: {"enum": [f"{{{tag}}}"], "description": "the Redis Cluster hash tag of the environment, as written"}
        for tag in re.findall(r"\{([^{}]*)\}", address)
    }


def _reply_channel(ids: list[str]) -> dict[str, Any]:
    return {
        "address": None,
        "title": "replies",
        "description": (
            "The channel each request or gathered command names in its reply_to; every answer is also pushed "
            "to the reply list of its id (PROTOCOL.md)."
        ),
        "messages": {
            f"{key}.{kind}": {"$ref": f"#/components/messages/{key}.{kind}"}
            for key in ids
            for kind in ("reply", "error")
        },
    }


def _operation(route: Route, key: str, sent: str) -> dict[str, Any]:
    summary = (
        f"Serve a request on {route.channel.name!r}: one process answers it."
        if route.kind == "handler"
        else f"Run the command {route.channel.name!r} in every process; each answers a gathered one."
    )
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{key}/messages/{key}.{sent}"}],
        "reply": {
            "address": {"location": "$message.payload#/reply_to", "description": "the channel the caller named"},
            "channel": {"$ref": "#/channels/replies"},
            "messages": [{"$ref": f"#/channels/replies/messages/{key}.{kind}"} for kind in ("reply", "error")],
        },
    }


def _message(kind: str, channel: str, body: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": {"const": kind}, "channel": {"const": channel}, "body": body}
    titles = {"request": "request", "command": "command", "reply": "reply", "error": "error reply"}
    return {
        "name": f"{channel} {kind}",
        "title": f"{channel}: {titles[kind]}",
        "contentType": "application/json",
        "correlationId": {"location": "$message.payload#/id"},
        "payload": {"allOf": [{"$ref": f"#/components/schemas/{ENVELOPE}"}, {"type": "object", "properties": fields}]},
    }


def _envelope_schemas() -> dict[str, Any]:
    printable = "printable characters (Python's str.isprintable)"
    return {
        ENVELOPE: {
            "type": "object",
            "description": "Every message of the broker (PROTOCOL.md, The envelope). Unknown fields are ignored.",
            "required": ["v", "kind", "id", "channel"],
            "properties": {
                "v": {"const": 1},
                "kind": {"enum": ["request", "reply", "error", "command"]},
                "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID, "description": printable},
                "channel": {"type": "string", "minLength": 1, "maxLength": MAX_CHANNEL, "description": printable},
                "reply_to": {"type": ["string", "null"], "maxLength": MAX_REPLY_TO},
                "deadline": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_DEADLINE - 1},
                "sender": {"$ref": f"#/components/schemas/{SENDER}"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "sig": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "with a signing key only"},
                "body": {},
            },
        },
        SENDER: {
            "type": "object",
            "required": ["id", "host", "pid", "role"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 128},
                "host": {"type": "string", "minLength": 1, "maxLength": 255},
                "pid": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                "role": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        },
        ERROR: {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "InvalidMessage, Overloaded, ... or the exception's class"},
                "message": {"type": "string", "maxLength": 2000},
            },
        },
    }
