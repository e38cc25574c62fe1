"""Typed values: each collection stores values of one type (``str``, ``bytes``, ``int``, ``float``, ``dict`` /
``list`` as JSON, or a pydantic model), checked before anything is written and when read back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from flask_multi_redis.codec import decode, encode
from flask_multi_redis.errors import CollectionValueError, DecodeError, EncodeError

__all__ = ["T", "Values"]

T = TypeVar("T")

_PLAIN = (str, bytes, int, float, dict, list)


class Values(Generic[T]):
    """Encodes and decodes the values of one collection (``where`` names it in errors: its Redis key)."""

    def __init__(self, value_type: type[T], where: str) -> None:
        if not (value_type in _PLAIN or (isinstance(value_type, type) and issubclass(value_type, BaseModel))):
            raise TypeError(
                f"a collection holds str, bytes, int, float, dict, list or a pydantic model, not {value_type!r}"
            )
        self.value_type = value_type
        self.where = where
        self._model = value_type not in _PLAIN

    def dump(self, value: object, at: object = None) -> bytes:
        """``value`` as stored.

        :raises CollectionValueError: it is not of the collection's type (nothing is written).
        """
        kind = self.value_type
        if type(value) is kind:  # the common case, first: text and bytes as they are
            if kind is bytes:
                return value  # type: ignore[return-value]
            if kind is str:
                try:
                    return value.encode()  # type: ignore[attr-defined,no-any-return]
                except UnicodeEncodeError:
                    raise self._error(at, "is not valid text: it holds a lone surrogate") from None
        if self._model and not isinstance(value, kind):
            try:
                value = cast("type[BaseModel]", kind).model_validate(value)
            except ValidationError as exc:
                raise self._error(at, f"does not validate as {kind.__name__}: {exc.error_count()} error(s)") from None
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise self._error(at, "is an int too large for a float") from None
        elif kind in _PLAIN and (not isinstance(value, kind) or isinstance(value, bool)):
            raise self._error(at, f"is a {type(value).__name__}, not a {kind.__name__}")
        try:
            return encode(value, sort_keys=True)  # equal dicts, one stored form: found by `in`, one member of a set
        except (EncodeError, OverflowError) as exc:
            raise self._error(at, str(exc)) from None
        except ValueError as exc:  # text with a lone surrogate, an int past Python's digit limit, pydantic's own
            raise self._error(at, f"cannot be encoded: {type(exc).__name__}") from None

    def dump_all(self, values: Iterable[object]) -> list[bytes]:
        """Every value of an iterable, each checked (its position in ``values`` in errors)."""
        return [self.dump(value, at) for at, value in enumerate(values)]

    def load(self, data: bytes, at: object = None) -> T:
        """A stored value back as the collection's type.

        :raises CollectionValueError: what is stored there does not decode as it (written by someone else).
        """
        try:
            return cast(T, decode(data, self.value_type))
        except DecodeError as exc:
            raise self._error(at, f"holds what is not a {self.value_type.__name__}: {exc}") from None

    def _error(self, at: object, problem: str) -> CollectionValueError:
        place = self.where if at is None else f"{self.where}[{at!r}]"
        return CollectionValueError(f"{place}: the value {problem}")
