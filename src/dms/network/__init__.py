"""The peer-to-peer network under the actor system: one interface, several back-ends."""

from dms.network._base import (
    DEFAULT_TIMEOUT,
    MAX_MESSAGE_SIZE,
    InboxHandler,
    Network,
    PeerInfo,
    TopicHandler,
    TopicValidator,
    Validation,
)
from dms.network._memory import MemoryFabric, MemoryNetwork

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_MESSAGE_SIZE",
    "InboxHandler",
    "MemoryFabric",
    "MemoryNetwork",
    "Network",
    "PeerInfo",
    "TopicHandler",
    "TopicValidator",
    "Validation",
]
