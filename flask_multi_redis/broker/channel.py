"""Channel declarations: a name plus the request and reply types, validated with pydantic on both ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError
from typing_extensions import TypeVar

from flask_multi_redis.codec import explain
from flask_multi_redis.errors import InvalidMessage

from .envelope import MAX_CHANNEL, is_name
from .names import RESERVED

__all__ = ["Channel"]

Req = TypeVar("Req", default=Any)  # a type left out is any JSON value
Rep = TypeVar("Rep", default=Any)


class _Payload:
    """Validation and JSON serialization of one payload type (a pydantic model, or any JSON value).

    It calls pydantic-core's validator and serializer directly: ``TypeAdapter``'s own methods take a dozen
    keyword arguments each, and on the broker's hot path that is a good part of the cost of a small message.
    They are looked up on first use, so that a type whose model defers building its schema is built then."""

    __slots__ = ("_to_json", "_validate", "adapter", "type", "type_name")

    def __init__(self, payload_type: type[Any] | None) -> None:
        self.type: Any = Any if payload_type is None else payload_type
        self.type_name = getattr(payload_type, "__name__", "JSON")
        self.adapter: TypeAdapter[Any] = TypeAdapter(self.type)
        self._validate: Callable[[Any], Any] | None = None
        self._to_json: Callable[[Any], bytes] | None = None

    def dump(self, value: object, what: str) -> bytes:
        """``value`` validated and serialized to JSON; :class:`InvalidMessage` when it does not fit."""
        try:
            validate, to_json = self._validate or self._bind(), self._to_json or self._bind_json()
            return to_json(validate(value))
        except (ValidationError, PydanticSerializationError, TypeError, ValueError) as exc:
            raise InvalidMessage(f"{what} is not a valid {self.type_name}: {explain(exc, self.type)}") from exc

    def load(self, body: object, what: str) -> Any:
        """A received JSON ``body`` validated as the declared type."""
        try:
            return (self._validate or self._bind())(body)
        except (ValidationError, TypeError, ValueError) as exc:
            raise InvalidMessage(f"{what} is not a valid {self.type_name}: {explain(exc, self.type)}") from exc

    def _bind(self) -> Callable[[Any], Any]:
        self._validate = validate = self.adapter.validator.validate_python
        return validate

    def _bind_json(self) -> Callable[[Any], bytes]:
        self._to_json = to_json = self.adapter.serializer.to_json
        return to_json


class Channel(Generic[Req, Rep]):
    """A typed channel: its ``name`` (the environment prefix is added by the broker), its request type and
    its reply type. Either type may be left out to allow any JSON value. A declaration opens no connection.

    :param name: the channel name, for example ``"math.add"``: 1 to 256 printable characters without spaces, as
        every envelope's ``channel`` field must be; ``fmr:`` is reserved for the broker itself.
    :param request: the pydantic model (or other type pydantic validates) of what is sent on the channel.
    :param reply: the type of what handlers answer.
    """

    __slots__ = ("_reply", "_request", "name")

    def __init__(self, name: str, request: type[Req] | None = None, reply: type[Rep] | None = None) -> None:
        if not is_name(name, MAX_CHANNEL) or name.startswith(RESERVED) or any(c.isspace() for c in name):
            raise ValueError(
                f"channel name {str(name)[:MAX_CHANNEL]!r}: use 1 to {MAX_CHANNEL} printable characters, no spaces, "
                f"not starting with {RESERVED}"
            )
        self.name = name
        self._request = _Payload(request)
        self._reply = _Payload(reply)

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, request={self._request.type_name}, reply={self._reply.type_name})"

    @property
    def request_type(self) -> Any:
        return self._request.type

    @property
    def reply_type(self) -> Any:
        return self._reply.type

    def type_names(self) -> tuple[str, str]:
        """The names of the request and reply types (``JSON``: any JSON value)."""
        return self._request.type_name, self._reply.type_name

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of the request and of the reply (``{}``: any JSON value), as pydantic writes them."""
        return {"request": self._request.adapter.json_schema(), "reply": self._reply.adapter.json_schema()}

    def dump_request(self, message: Req | Any) -> bytes:
        return self._request.dump(message, f"a request on {self.name!r}")

    def load_request(self, body: object) -> Req:
        return self._request.load(body, f"a request on {self.name!r}")  # type: ignore[no-any-return]

    def dump_reply(self, value: Rep | Any) -> bytes:
        return self._reply.dump(value, f"a reply on {self.name!r}")

    def load_reply(self, body: object) -> Rep:
        return self._reply.load(body, f"a reply on {self.name!r}")  # type: ignore[no-any-return]
