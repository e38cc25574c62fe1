"""ClusterSession: a ``redis.RedisCluster`` that knows its name and channel prefix, with the same typed publish,
subscribe and reply waiting as :class:`~flask_multi_redis.RedisSession`, over sharded pub/sub by default."""

from __future__ import annotations

from typing import Any

import redis
from pydantic import BaseModel
from redis.cluster import ClusterPubSub

from .codec import encode
from .session import SUBSCRIBE_CONFIRM_TIMEOUT, RedisSession, confirm, next_reply, prefixed, publish_and_wait

__all__ = ["ClusterSession", "broker_tag", "companion_key"]


def broker_tag(prefix: str) -> str:
    """The hash tag that prefixes every key and channel of the broker on a cluster (PROTOCOL.md): ``{PREFIX}``,
    ``{fmr}`` when the prefix is empty."""
    return "{" + (prefix or "fmr") + "}"


def companion_key(key: str, suffix: str) -> str:
    """A key for data that goes with ``key`` (a counter, a fence), in the same Redis Cluster slot, so that one
    script may touch both: ``key``'s own hash tag decides both when it has one (``{a}b`` -> ``{a}b:suffix``);
    else the whole key becomes the tag (``a:b`` -> ``{a:b}:suffix``, in the slot of ``a:b``)."""
    start = key.find("{")
    end = key.find("}", start + 1) if start != -1 else -1
    if end > start + 1:  # Redis's rule: the first {, the first } after it, and something between them
        return f"{key}:{suffix}"
    if "{" in key or "}" in key:  # braces that make no tag: wrapping the key would not keep its slot
        raise ValueError(f"{key!r} has braces but no hash tag: no companion key can share its cluster slot")
    return f"{{{key}}}:{suffix}"


class ClusterSession(redis.RedisCluster):
    """A ``redis.RedisCluster`` client for one configured cluster: every Redis command works as usual.

    With ``sharded`` (``SHARDED_PUBSUB``, the default) ``publish`` is ``SPUBLISH`` and ``subscribe`` is
    ``SSUBSCRIBE``: a message travels only within the shard that owns its channel's slot, and the count
    ``publish`` returns is that of the channel's subscribers, exactly. Without it, messages go to every node of
    the cluster, and ``publish`` counts the subscribers of the node it was sent to only (a Redis fact).
    """

    database = 0  #: a cluster has only database 0

    def __init__(self, *args: Any, name: str = "default", prefix: str = "", sharded: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.name = name
        self.prefix = prefix
        self.sharded = sharded
        self.shard_session: RedisSession | None = None  # the broker's, on its hash tag's shard (connection.py)

    def __repr__(self) -> str:
        nodes = ",".join(node.name for node in self.get_primaries())  # type: ignore[no-untyped-call]
        return f"<{type(self).__name__} {self.name!r} prefix={self.prefix!r} primaries={nodes}>"

    def channel(self, name: str) -> str:
        """The wire name of channel ``name``, prefix applied."""
        return prefixed(self.prefix, name)

    def publish(self, channel: Any, data: Any, **kwargs: Any) -> int:  # type: ignore[override]
        """Publish ``data`` (str, bytes, int, float, dict, list or a pydantic model) on the prefixed channel.

        :returns: the number of clients that received it (see the class's note on counts).
        """
        name = self.channel(channel.decode() if isinstance(channel, bytes) else str(channel))
        return self._publish_counted(name, encode(data), **kwargs)

    def subscribe(self, *channels: str, timeout: float | None = None) -> ClusterPubSub:
        """A new ClusterPubSub subscribed to the prefixed ``channels`` (``SSUBSCRIBE`` when sharded, on the node
        of each channel's slot), returned once the server has confirmed them (within ``timeout`` seconds; by
        default the socket timeout, or 5 s).

        :raises redis.TimeoutError: the servers did not confirm in time.
        """
        pubsub = self.pubsub()
        if not channels:
            return pubsub
        names = {self.channel(name) for name in channels}
        if timeout is None:
            timeout = self.nodes_manager.connection_kwargs.get("socket_timeout") or SUBSCRIBE_CONFIRM_TIMEOUT
        if self.sharded:
            pubsub.ssubscribe(*names)
            confirm(pubsub, len(names), timeout, pubsub.get_sharded_message, "ssubscribe")
        else:
            pubsub.subscribe(*names)
            confirm(pubsub, len(names), timeout, pubsub.get_message, "subscribe")
        return pubsub

    def wait_for_reply(
        self,
        pubsub: ClusterPubSub,
        return_type: type[Any] = str,
        timeout: float = 30,
        encoding: str = "utf-8",
        allow_error: bool = False,
    ) -> Any:
        """As :meth:`RedisSession.wait_for_reply <flask_multi_redis.RedisSession.wait_for_reply>`, on a
        ClusterPubSub from :meth:`subscribe`."""
        read = pubsub.get_sharded_message if self.sharded else pubsub.get_message
        return next_reply(pubsub, read, return_type, timeout, encoding, allow_error)

    def publish_and_wait_reply(
        self,
        channel: str,
        data: dict[str, Any] | BaseModel,
        return_type: type[Any] = str,
        timeout: float = 30,
        encoding: str = "utf-8",
        reply_field: str = "reply_to",
    ) -> Any:
        """As :meth:`RedisSession.publish_and_wait_reply <flask_multi_redis.RedisSession.publish_and_wait_reply>`.
        Sharded, ``NoResponders`` is exact (``SPUBLISH`` counts the channel's own subscribers); not sharded, it
        is raised when nobody listens on the node the request was sent to."""
        return publish_and_wait(self, channel, data, return_type, timeout, encoding, reply_field)

    def _publish_counted(self, channel: str, data: bytes, **kwargs: Any) -> int:
        """Publish on the channel as named on the wire; the receivers (see the class's note on counts)."""
        if self.sharded:
            return int(self.spublish(channel, data))
        return int(super().publish(channel, data, **kwargs))
