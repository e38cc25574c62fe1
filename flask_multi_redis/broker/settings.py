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
    max_timeout: float = 300.0
    error_messages: bool = True

    def __post_init__(self) -> None:
        if self.connections < 3:
            raise ValueError("connections must be at least 3: the pipelined one, the reply wait and one pooled")
        if self.concurrency < 1 or self.max_pending < 1:
            raise ValueError("concurrency and max_pending must be at least 1")
        if not 0 < self.heartbeat_interval <= 60:
            raise ValueError("heartbeat_interval must be above 0 and at most 60 s (registry entries live 3 intervals)")
        if not 0 < self.max_timeout <= 86400:
            raise ValueError("max_timeout must be above 0 and at most a day (86400 s)")

    @property
    def max_ttl_ms(self) -> int:
        """The longest a claim or a reply list may live: the longest timeout, and a second more."""
        return int(self.max_timeout * 1000) + 1000

    @property
    def heartbeat_ttl_ms(self) -> int:
        """How long a registry entry lives without a heartbeat: three intervals."""
        return int(self.heartbeat_interval * 3000)
