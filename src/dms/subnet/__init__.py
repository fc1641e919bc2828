"""Subnets: a private IPv4 network between an ensemble's allocations, carried over libp2p.

The data path: :class:`SubnetRouter` (one per subnet on a node) moves packets between the TUN
devices of the subnet's local allocations and its peers through a :class:`PacketTransport`;
:class:`UdpTransport` (``udp``: sealed UDP datagrams keyed over the libp2p stream
``/nunet/subnet/udp-keys/1.0.0``) carries a DMS's subnets, with :class:`Libp2pStreamTransport`
(``libp2p-stream``, protocol ``/nunet/subnet/packets/1.0.0``) as its fallback for peers whose
UDP endpoints do not answer and for 64 KiB offload packets; a Go-compatible MASQUE transport
would sit beside them.
The control plane: the orchestrator's :class:`SubnetPlan`, Go's payloads (``_wire``), and the
node's :class:`SubnetManager` (router, ``.internal`` resolver and port mapper per subnet).
"""

from dms.subnet._capability import SubnetCapability, subnet_capability
from dms.subnet._dns import SubnetDNS, SubnetDNSError
from dms.subnet._manager import SubnetManager, SubnetRefused, interface_name
from dms.subnet._packets import ipv4_packet
from dms.subnet._plan import (
    DNS_DOMAIN,
    ORCHESTRATOR_NAME,
    SubnetExhausted,
    SubnetPlan,
    host_networks,
    random_cidr,
)
from dms.subnet._portmap import PortMapError, PortMapper, PortMapping
from dms.subnet._router import GatewayDNS, SubnetError, SubnetRouter, SubnetStats
from dms.subnet._stream_transport import (
    PROTOCOL,
    Libp2pStreamTransport,
    StreamTransportStats,
)
from dms.subnet._tap import TapPlan
from dms.subnet._tap import create as create_tap
from dms.subnet._tap import parse_plan as parse_tap_plan
from dms.subnet._tap import remove as remove_tap
from dms.subnet._transport import PacketReceiver, PacketTransport
from dms.subnet._tun import DEVICE_PREFIX, TunError, device_name, remove_stale_devices
from dms.subnet._udp_transport import KEYS_PROTOCOL, UdpTransport, UdpTransportStats
from dms.subnet._wire import (
    ALLOCATION_SUBNET_BEHAVIORS,
    SUBNET_ACCEPT_PEERS,
    SUBNET_ADD_PEER,
    SUBNET_CREATE,
    SUBNET_DESTROY,
    SUBNET_DNS_ADD,
    SUBNET_DNS_REMOVE,
    SUBNET_JOIN,
    SUBNET_MAP_PORT,
    SUBNET_REMOVE_PEERS,
    SUBNET_UNMAP_PORT,
    SubnetAddPeer,
    SubnetCreate,
    SubnetDestroy,
    SubnetDNSAdd,
    SubnetDNSRemove,
    SubnetJoin,
    SubnetPeers,
    SubnetPortMap,
    ensemble_behavior,
    ensemble_namespace,
)

__all__ = [
    "ALLOCATION_SUBNET_BEHAVIORS",
    "DEVICE_PREFIX",
    "DNS_DOMAIN",
    "KEYS_PROTOCOL",
    "ORCHESTRATOR_NAME",
    "PROTOCOL",
    "SUBNET_ACCEPT_PEERS",
    "SUBNET_ADD_PEER",
    "SUBNET_CREATE",
    "SUBNET_DESTROY",
    "SUBNET_DNS_ADD",
    "SUBNET_DNS_REMOVE",
    "SUBNET_JOIN",
    "SUBNET_MAP_PORT",
    "SUBNET_REMOVE_PEERS",
    "SUBNET_UNMAP_PORT",
    "GatewayDNS",
    "Libp2pStreamTransport",
    "PacketReceiver",
    "PacketTransport",
    "PortMapError",
    "PortMapper",
    "PortMapping",
    "StreamTransportStats",
    "SubnetAddPeer",
    "SubnetCapability",
    "SubnetCreate",
    "SubnetDNS",
    "SubnetDNSAdd",
    "SubnetDNSError",
    "SubnetDNSRemove",
    "SubnetDestroy",
    "SubnetError",
    "SubnetExhausted",
    "SubnetJoin",
    "SubnetManager",
    "SubnetPeers",
    "SubnetPlan",
    "SubnetPortMap",
    "SubnetRefused",
    "SubnetRouter",
    "SubnetStats",
    "TapPlan",
    "TunError",
    "UdpTransport",
    "UdpTransportStats",
    "create_tap",
    "device_name",
    "ensemble_behavior",
    "ensemble_namespace",
    "host_networks",
    "interface_name",
    "ipv4_packet",
    "parse_tap_plan",
    "random_cidr",
    "remove_stale_devices",
    "remove_tap",
    "subnet_capability",
]
