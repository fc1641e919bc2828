"""The peer-to-peer network under the actor system: one interface, several back-ends.

``Libp2pNetwork`` is imported lazily: loading py-libp2p costs ~0.5 s and ~80 MiB, which CLI
commands and in-memory simulations should not pay.
"""

from typing import TYPE_CHECKING, Any

from dms.network._base import (
    DEFAULT_TIMEOUT,
    InboxHandler,
    Network,
    PeerInfo,
    RawStream,
    StreamHandler,
    TopicHandler,
    TopicValidator,
    Validation,
)
from dms.network._frame import (
    FRAME_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    check_frame_size,
    check_message_size,
    decode_frame,
    encode_frame,
    frame_length,
)
from dms.network._memory import MemoryFabric, MemoryNetwork

__all__ = [
    "DEFAULT_TIMEOUT",
    "FRAME_HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "InboxHandler",
    "Libp2pNetwork",
    "MemoryFabric",
    "MemoryNetwork",
    "Network",
    "PeerInfo",
    "RawStream",
    "StreamHandler",
    "TopicHandler",
    "TopicValidator",
    "Validation",
    "check_frame_size",
    "check_message_size",
    "decode_frame",
    "encode_frame",
    "frame_length",
]


if TYPE_CHECKING:
    from dms.network._libp2p import Libp2pNetwork


def __getattr__(name: str) -> Any:
    if name == "Libp2pNetwork":
        from dms.network._libp2p import Libp2pNetwork

        return Libp2pNetwork
    raise AttributeError(f"module 'dms.network' has no attribute {name!r}")
