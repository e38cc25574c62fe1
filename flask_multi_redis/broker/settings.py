"""How a process's broker runs: the settings its runtime is built with (see :class:`~.broker.Broker`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_MESSAGE_SIZE", "BrokerSettings"]

#: Default largest message, far below the 32 MB at which Redis drops a pub/sub client by default.
MAX_MESSAGE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class BrokerSettings:
    """The settings of one runtime, taken from the broker's attributes when the runtime is made."""

    role: str = "web"
    concurrency: int = 8
    connections: int = 4
    max_pending: int = 1000
    max_message_size: int = MAX_MESSAGE_SIZE
    heartbeat_interval: float = 2.0
    registry_cache: float = 1.0
    inline_below: float = 0.0002

    def __post_init__(self) -> None:
        if self.connections < 3:
            raise ValueError("connections must be at least 3: the pipelined one, the reply wait and one pooled")
        if self.concurrency < 1 or self.max_pending < 1:
            raise ValueError("concurrency and max_pending must be at least 1")

    @property
    def heartbeat_ttl_ms(self) -> int:
        """How long a registry entry lives without a heartbeat: three intervals."""
        return int(self.heartbeat_interval * 3000)
