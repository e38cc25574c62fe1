"""The envelope's reading rules (PROTOCOL.md, "What a reader accepts"), on the functions every message goes through."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_multi_redis.broker.envelope import Sender, pack, unpack
from flask_multi_redis.errors import InvalidMessage, MessageTooLarge

from .strategies import JSON

WEB = Sender(id="web1-4242-9f3a01bc", host="web1", pid=4242, role="web")
WORKER = Sender(id="worker1-77-0c1d2e3f", host="worker1", pid=77, role="worker")


def message(**fields: object) -> bytes:
    return orjson.dumps({"v": 1, "kind": "request", "id": "abc", "channel": "math.add", **fields})


def test_a_packed_envelope_reads_back() -> None:
    data = pack(
        "request", "abc", "math.add", b'{"a":2}', reply_to="p:fmr:inbox:x", deadline=17, sender=WEB, max_size=4096
    )
    envelope = unpack(data, 4096)
    assert (envelope.kind, envelope.id, envelope.channel, envelope.body) == ("request", "abc", "math.add", {"a": 2})
    assert (envelope.reply_to, envelope.deadline, envelope.sender, envelope.headers) == ("p:fmr:inbox:x", 17, WEB, {})


def test_each_sender_is_written_as_its_own() -> None:
    """The sender's JSON is kept between messages: a process with two senders (two apps) must not mix them up."""
    for sender in (WEB, WORKER, WORKER, WEB):
        assert unpack(pack("reply", "abc", "c", b"1", sender=sender, max_size=4096), 4096).sender == sender


@pytest.mark.parametrize(
    "sender",
    [
        None,
        "web1",
        [],
        {"id": "x"},
        {"id": "x", "host": "h", "pid": "77", "role": "web"},
        {"id": "x", "host": "h", "pid": True, "role": "web"},
        {"id": "x", "host": "h", "pid": 1 << 40, "role": "web"},
        {"id": ["x"], "host": "h", "pid": 1, "role": "web"},
        {"id": "x\nforged", "host": "h", "pid": 1, "role": "web"},
        {"id": "x", "host": "h" * 256, "pid": 1, "role": "web"},
    ],
)
def test_a_sender_not_in_the_expected_form_is_ignored(sender: object) -> None:
    assert unpack(message(sender=sender), 4096).sender is None


@pytest.mark.parametrize("headers", [None, [], "", 0, False, {}])
def test_empty_headers_of_any_type_count_as_none(headers: object) -> None:
    assert unpack(message(headers=headers), 4096).headers == {}


def test_header_values_that_are_not_strings_are_converted() -> None:
    assert unpack(message(headers={"trace": 7, "on": True}), 4096).headers == {"trace": "7", "on": "True"}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"v": 2}, "version"),
        ({"kind": "shout"}, "kind"),
        ({"kind": ["request"]}, "kind"),
        ({"kind": {"request": 1}}, "kind"),
        ({"id": ""}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"id": "a\nb"}, "id"),
        ({"id": 7}, "id"),
        ({"channel": None}, "channel"),
        ({"channel": ""}, "channel"),
        ({"channel": "x" * 257}, "channel"),
        ({"channel": "math.add\n2026 ERROR forged"}, "channel"),
        ({"channel": "\x1b[2J"}, "channel"),
        ({"reply_to": 5}, "reply_to"),
        ({"reply_to": ["p:fmr:inbox:x"]}, "reply_to"),
        ({"reply_to": "p:fmr:inbox:x\r"}, "reply_to"),
        ({"deadline": 1.5}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"deadline": -1}, "deadline"),
        ({"deadline": 1 << 63}, "deadline"),
        ({"deadline": "1718000005000"}, "deadline"),
        ({"headers": ["a"]}, "headers"),
    ],
)
def test_a_malformed_envelope_is_refused_saying_why(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(InvalidMessage, match=complaint):
        unpack(message(**fields), 4096)


def test_not_json_and_too_large_are_refused() -> None:
    with pytest.raises(InvalidMessage, match="not JSON"):
        unpack(b"{nope", 4096)
    with pytest.raises(InvalidMessage, match="not a JSON object"):
        unpack(b"[1]", 4096)
    with pytest.raises(MessageTooLarge):
        unpack(message(body="x" * 5000), 4096)
    with pytest.raises(MessageTooLarge):
        pack("reply", "abc", "c", b'"' + b"x" * 5000 + b'"', sender=WEB, max_size=4096)


def test_fields_are_written_in_the_documented_order() -> None:
    data = pack("request", "abc", "c", b"1", reply_to="r", deadline=5, sender=WEB, headers={"h": "1"}, max_size=4096)
    assert list(orjson.loads(data)) == [
        "v",
        "kind",
        "id",
        "channel",
        "reply_to",
        "deadline",
        "sender",
        "headers",
        "body",
    ]


FIELDS = ("v", "kind", "id", "channel", "reply_to", "deadline", "sender", "headers", "body")


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=9), st.dictionaries(st.text(max_size=8), JSON))
def test_any_json_in_any_field_reads_or_is_refused_as_invalid(
    fields: dict[str, object], extra: dict[str, object]
) -> None:
    """Whatever a sender writes, a reader gets an envelope whose every field is usable, or InvalidMessage."""
    good = {"v": 1, "kind": "request", "id": "abc", "channel": "math.add"}
    for base in ({}, good):
        try:
            envelope = unpack(orjson.dumps({**extra, **base, **fields}), 1 << 20)
        except InvalidMessage:
            continue
        assert envelope.kind in ("request", "reply", "error", "command")
        assert envelope.id.isprintable()
        assert envelope.channel.isprintable()
        assert envelope.reply_to is None or envelope.reply_to.isprintable()
        assert envelope.deadline is None or 0 <= envelope.deadline < 1 << 53
        sender = envelope.sender
        assert sender is None or (sender.id.isprintable() and isinstance(sender.pid, int))
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in envelope.headers.items())
        envelope.expired()


def test_a_deadline_beyond_64_bits_is_refused() -> None:
    """orjson reads such a number as a float: not an integer."""
    with pytest.raises(InvalidMessage, match="deadline"):
        unpack(b'{"v":1,"kind":"request","id":"abc","channel":"c","deadline":123456789012345678901234567890}', 4096)
