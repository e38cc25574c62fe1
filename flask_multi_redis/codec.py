"""Type-directed encoding of values for the wire, and decoding back, on orjson and pydantic.

The forms are chosen so that ``redis-cli`` shows something readable: text as UTF-8, numbers as their decimal
text, containers and models as JSON. There is no pickle, so no received message can run code.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any, TypeVar, overload

import orjson
from pydantic import BaseModel, ValidationError

from .errors import DecodeError, EncodeError

__all__ = ["Decodable", "as_bytes", "decode", "encode", "explain"]

M = TypeVar("M", bound=BaseModel)
Decodable = type[str] | type[bytes] | type[int] | type[float] | type[dict] | type[list] | type[BaseModel]  # type: ignore[type-arg]


def as_bytes(value: str | bytes) -> bytes:
    """``value`` as bytes: channel names and payloads arrive as either, depending on ``decode_responses``."""
    return value if isinstance(value, bytes) else value.encode()


def encode(value: object, encoding: str = "utf-8", *, sort_keys: bool = False) -> bytes:
    """Encode ``value`` (str, bytes, int, float, bool, dict, list, a pydantic model) to bytes; ``sort_keys``:
    dicts (not a model's own fields) with their keys sorted, so that equal dicts encode the same."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode(encoding)
    if isinstance(value, BaseModel):
        data = value.__pydantic_serializer__.to_json(value)
        return _checked(data, value.model_dump() if b"null" in data else None, type(value).__name__)
    if isinstance(value, (bool, dict, list, tuple)):
        try:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
        except TypeError as exc:
            raise EncodeError(f"cannot encode {type(value).__name__} as JSON: {exc}") from exc
        return _checked(data, value if b"null" in data else None, type(value).__name__)
    if isinstance(value, int):
        try:
            return repr(int(value)).encode("ascii")  # int() so that an IntEnum sends its number, not its repr
        except ValueError:  # past sys.get_int_max_str_digits()
            raise EncodeError("cannot encode an int of more digits than Python turns into text") from None
    if isinstance(value, float):
        return repr(float(value)).encode("ascii")
    raise EncodeError(
        f"cannot encode a {type(value).__name__}; send str, bytes, int, float, bool, dict, list or a pydantic model"
    )


def _checked(data: bytes, written: object, name: str) -> bytes:
    """``data``, unless ``written`` (what became it, looked at only when the JSON has a null) holds a NaN or an
    infinity: JSON has neither, and orjson and pydantic write them as null, which would come back as None."""
    if written is not None and not _finite(written):
        raise EncodeError(f"cannot encode {name} as JSON: it holds NaN or an infinity, which JSON cannot carry")
    return data


def _finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        return all(_finite(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # orjson writes dataclasses itself
        return all(_finite(getattr(value, field.name)) for field in dataclasses.fields(value))
    return True


@overload
def decode(data: bytes | str, return_type: type[M], encoding: str = ...) -> M: ...
@overload
def decode(data: bytes | str, return_type: type[str], encoding: str = ...) -> str: ...
@overload
def decode(data: bytes | str, return_type: type[bytes], encoding: str = ...) -> bytes: ...
@overload
def decode(data: bytes | str, return_type: type[int], encoding: str = ...) -> int: ...
@overload
def decode(data: bytes | str, return_type: type[float], encoding: str = ...) -> float: ...
@overload
def decode(data: bytes | str, return_type: type[Any], encoding: str = ...) -> Any: ...
def decode(data: bytes | str, return_type: type[Any], encoding: str = "utf-8") -> Any:
    """Decode ``data`` as ``return_type``; raise :class:`DecodeError` naming the type when it does not fit.

    The payload itself is not quoted in the error: it may be large, or private.
    """
    raw = data if isinstance(data, bytes) else b""
    try:
        if isinstance(data, str):  # from a text session: text the encoding may not carry
            raw = data.encode(encoding)
        if return_type is bytes:
            return raw
        if return_type is str:
            return raw.decode(encoding)
        if isinstance(return_type, type) and issubclass(return_type, BaseModel):
            return return_type.model_validate_json(raw)
        if return_type is bool:
            value = orjson.loads(raw)
            if not isinstance(value, bool):
                raise TypeError("not a JSON boolean")
            return value
        if return_type is int or return_type is float:
            return return_type(raw.decode("ascii"))
        if return_type is dict or return_type is list:
            value = orjson.loads(raw)
            if not isinstance(value, return_type):
                raise TypeError(f"JSON {type(value).__name__}, not {return_type.__name__}")
            return value
    except (ValueError, TypeError, UnicodeError, ValidationError) as exc:
        name = getattr(return_type, "__name__", repr(return_type))
        reason = explain(exc, return_type)
        size = f"{len(raw)}-byte" if raw or isinstance(data, bytes) else f"{len(data)}-character"
        raise DecodeError(f"a {size} message does not decode as {name}: {reason}") from exc
    raise DecodeError(
        f"cannot decode as {return_type!r}; use str, bytes, int, float, bool, dict, list or a pydantic model"
    )


def explain(exc: Exception, return_type: type[Any]) -> str:
    """A short reason that echoes nothing of the input (pydantic's own text and locations can quote it)."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        head = first["loc"][0] if first["loc"] else None
        fields = getattr(return_type, "model_fields", {})
        where = f"{head}: " if isinstance(head, str) and head in fields else ""
        return f"{where}{first['type']} ({exc.error_count()} error(s))"
    if isinstance(exc, UnicodeError):
        return "not valid text in the given encoding"
    if isinstance(exc, orjson.JSONDecodeError):
        return "not valid JSON"
    if return_type is int or return_type is float:
        return "not a decimal number"
    return str(exc)
