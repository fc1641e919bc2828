"""How a subnet's packets travel between peers: the interface the router talks to.

:class:`~dms.subnet.UdpTransport` (``udp``) carries packets in sealed UDP datagrams keyed
over libp2p, and falls back to :class:`~dms.subnet.Libp2pStreamTransport` (``libp2p-stream``:
batches of packets on a long-lived libp2p stream per (subnet, peer)). The Go DMS carries them
over MASQUE (CONNECT-IP in HTTP/3 datagrams on a raw QUIC connection); a Go-compatible
transport would be another class beside these, chosen per subnet. A router talks only to this
interface.

A packet here is what :mod:`._packets` describes (``virtio_net_hdr`` + IPv4, possibly a
64 KiB segmentation-offload packet); a transport that needs MTU-sized plain packets segments
them itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

PacketReceiver = Callable[[str, Sequence[bytes]], None]
"""Receives ``(remote peer id, packets)``; must not block (it runs on the transport's reader)."""


class PacketTransport(ABC):
    """Moves batches of packets of a subnet between this node and its peers.

    Contract: :meth:`send` delivers the batch to the peer's transport or raises
    :class:`dms.errors.NetworkError` (never blocks past the transport's own deadline); the
    receiving side hands each batch, with the *authenticated* sender's peer ID, to the receiver
    registered for the subnet, and refuses subnets that have none. Delivery is best effort and
    unordered between batches only if the transport says so; packet loss is the IP layer's
    business (TCP retransmits), exactly as on a wire.
    """

    #: The transport's name, as a subnet's configuration and the README refer to it.
    name: ClassVar[str]

    @abstractmethod
    async def send(self, subnet_id: str, peer_id: str, packets: Sequence[bytes]) -> None:
        """Send ``packets`` (one batch) of ``subnet_id`` to ``peer_id``."""

    @abstractmethod
    def register(self, subnet_id: str, receiver: PacketReceiver) -> None:
        """Accept packets of ``subnet_id`` from peers and hand them to ``receiver``."""

    @abstractmethod
    def unregister(self, subnet_id: str) -> None:
        """Refuse packets of ``subnet_id`` from now on (unknown subnets are ignored)."""

    async def forget_peer(self, subnet_id: str, peer_id: str) -> None:  # noqa: B027
        """Drop any state kept for ``peer_id`` in ``subnet_id`` (it left the subnet)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release what the transport holds (streams, handlers); it is not used afterwards."""


__all__ = ["PacketReceiver", "PacketTransport"]
