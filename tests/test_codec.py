"""The wire codec: round trips for every supported type, and errors that name the type but never quote the payload."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from flask_multi_redis import CodecError, DecodeError, EncodeError, FlaskRedisError, decode, encode

from .strategies import JSON

SECRET = "SECRET-PAYLOAD-123"


class Item(BaseModel):
    id: int
    name: str
    tags: list[str] = []


class Catalogue(BaseModel):
    title: str
    items: list[Item]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = 0
    scores: dict[str, int] = {}


def big_catalogue() -> Catalogue:
    items = [Item(id=i, name=f"item number {i}", tags=["red", "green", f"tag-{i}"]) for i in range(200)]
    return Catalogue(title="a catalogue of about ten kilobytes", items=items)


@pytest.mark.parametrize(
    ("value", "return_type"),
    [
        ("hello", str),
        ("", str),
        ("ünïcödé ✓ 日本", str),
        (b"\x00\x01\xfe\xff raw", bytes),
        (b"", bytes),
        (0, int),
        (42, int),
        (-7, int),
        (10**40, int),
        (0.1, float),
        (-2.5, float),
        (1e300, float),
        (float("inf"), float),
        (True, bool),
        (False, bool),
        ({}, dict),
        ({"a": 1, "b": [1, 2, {"c": None}], "d": "é"}, dict),
        ([], list),
        ([1, "two", 3.0, None, True, {"k": "v"}], list),
    ],
    ids=repr,
)
def test_round_trip(value: Any, return_type: type[Any]) -> None:
    data = encode(value)
    assert isinstance(data, bytes)
    decoded = decode(data, return_type)
    assert type(decoded) is return_type
    assert decoded == value


def test_round_trip_nan() -> None:
    assert math.isnan(decode(encode(float("nan")), float))


def test_round_trip_small_model() -> None:
    item = Item(id=1, name="one", tags=["a"])
    decoded = decode(encode(item), Item)
    assert isinstance(decoded, Item)
    assert decoded == item


def test_round_trip_ten_kilobyte_model() -> None:
    catalogue = big_catalogue()
    data = encode(catalogue)
    assert len(data) >= 10_000
    decoded = decode(data, Catalogue)
    assert decoded == catalogue
    assert len(decoded.items) == 200


def test_tuple_is_sent_as_a_json_list() -> None:
    assert decode(encode((1, "a")), list) == [1, "a"]


def test_wire_forms_are_readable() -> None:
    assert encode("é") == "é".encode()
    assert encode(b"\xff") == b"\xff"
    assert encode(42) == b"42"
    assert encode(-1.5) == b"-1.5"
    assert encode(True) == b"true"
    assert encode({"a": [1, None]}) == b'{"a":[1,null]}'
    assert encode(Item(id=1, name="x")) == b'{"id":1,"name":"x","tags":[]}'


def test_encode_str_in_another_encoding() -> None:
    assert encode("café", "latin-1") == b"caf\xe9"
    assert decode(b"caf\xe9", str, "latin-1") == "café"


def test_decode_accepts_text_data() -> None:
    assert decode("12", int) == 12
    assert decode('{"a": 1}', dict) == {"a": 1}
    assert decode("é", bytes) == "é".encode()
    assert decode('{"id": 3, "name": "n"}', Item) == Item(id=3, name="n")


def test_bool_is_not_confused_with_int() -> None:
    assert encode(1) != encode(True)
    with pytest.raises(DecodeError):
        decode(b"1", bool)
    with pytest.raises(DecodeError):
        decode(b"true", int)


def test_decode_error_is_a_value_error_and_a_flask_redis_error() -> None:
    assert issubclass(DecodeError, ValueError)
    assert issubclass(DecodeError, CodecError)
    assert issubclass(DecodeError, FlaskRedisError)
    with pytest.raises(ValueError, match="int"):
        decode(b"abc", int)


@pytest.mark.parametrize(
    ("data", "return_type"),
    [
        (b"abc", int),
        (b"1.5", int),
        (b"", int),
        (b"abc", float),
        (b"[1, 2]", dict),
        (b'"text"', dict),
        (b"{not json", dict),
        (b'{"a": 1}', list),
        (b"[1, 2", list),
        (b"yes", bool),
        (b"\xff\xfe", str),
        (b"\xff", int),
        (b"{not json", Item),
        (b'{"id": "x", "name": "n"}', Item),
        (b'{"name": "n"}', Item),
    ],
    ids=repr,
)
def test_decode_error_for_wrong_type(data: bytes, return_type: type[Any]) -> None:
    with pytest.raises(DecodeError, match=return_type.__name__):
        decode(data, return_type)


@pytest.mark.parametrize(
    ("data", "return_type"),
    [
        (SECRET.encode(), int),
        (f"'{SECRET}'".encode(), int),
        (f'"{SECRET}"'.encode(), int),
        (SECRET.encode(), float),
        (f"it's {SECRET}".encode(), float),
        (SECRET.encode(), dict),
        (f'["{SECRET}"]'.encode(), dict),
        (f'"{SECRET}"'.encode(), list),
        (f"[{SECRET}".encode(), list),
        (f'"{SECRET}"'.encode(), bool),
        (b"\xff" + SECRET.encode(), str),
        (SECRET.encode(), Item),
        (f'{{"id": "{SECRET}", "name": "n"}}'.encode(), Item),
        (f'{{"id": 1, "name": "n", "tags": "{SECRET}"}}'.encode(), Item),
        (f'{{"count": "{SECRET}"}}'.encode(), Strict),
    ],
    ids=repr,
)
def test_decode_error_does_not_quote_the_payload(data: bytes, return_type: type[Any]) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data, return_type)
    message = str(caught.value)
    assert SECRET not in message
    assert return_type.__name__ in message
    assert f"{len(data)}-byte" in message


@pytest.mark.parametrize(
    "data",
    [f'{{"{SECRET}": 1}}'.encode(), f'{{"scores": {{"{SECRET}": "x"}}}}'.encode()],
    ids=["extra-key", "dict-key"],
)
def test_decode_error_does_not_quote_payload_keys(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data, Strict)
    assert SECRET not in str(caught.value)


def test_decode_error_keeps_the_cause() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b"[1]", dict)
    assert isinstance(caught.value.__cause__, TypeError)


def test_decode_error_for_unsupported_return_type() -> None:
    with pytest.raises(DecodeError, match="cannot decode as"):
        decode(b"[1]", set)
    with pytest.raises(DecodeError, match="cannot decode as"):
        decode(b"[1]", tuple)


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, frozenset(), None, 1j, {"a": {1, 2}}, [object()], {1: "non-str key"}],
    ids=repr,
)
def test_encode_error_for_unsupported_value(value: object) -> None:
    with pytest.raises(EncodeError):
        encode(value)


def test_encode_error_is_a_type_error_and_a_flask_redis_error() -> None:
    assert issubclass(EncodeError, TypeError)
    assert issubclass(EncodeError, ValueError)
    assert issubclass(EncodeError, FlaskRedisError)
    with pytest.raises(TypeError, match="set"):
        encode({1, 2})


class Colour(enum.IntEnum):
    RED = 1


def test_int_enum_is_sent_as_its_number() -> None:
    assert encode(Colour.RED) == b"1"


TYPES = [str, bytes, int, float, bool, dict, list, Item, Catalogue, Strict]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode), st.sampled_from(TYPES))
def test_any_bytes_decode_or_raise_decode_error(data: bytes, return_type: type[Any]) -> None:
    """Whatever arrives, decoding gives a value of the type asked for, or DecodeError: nothing else escapes."""
    try:
        value = decode(data, return_type)
    except DecodeError:
        return
    assert isinstance(value, return_type)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=5) | st.lists(JSON, max_size=5))
def test_containers_round_trip(value: Any) -> None:
    assert decode(encode(value), type(value)) == value
