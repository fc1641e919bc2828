"""Connection security between real py-libp2p hosts: Noise and TLS only, refusals logged.

The dialers that must be refused are real py-libp2p hosts built with nothing but
``/plaintext/2.0.0`` or secio, which is what py-libp2p 0.8.1 would have accepted by default.
"""

from __future__ import annotations

import logging
from typing import Any

import multiaddr
import pytest
import trio
from cryptography import x509
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.secio import transport as secio
from libp2p.security.tls.certificate import LIBP2P_EXTENSION_OID, verify_certificate_chain
from libp2p.security.tls.transport import PROTOCOL_ID as TLS_PROTOCOL
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL
from tests.network.test_network_libp2p_direct import LOOPBACK, new_net, running, wait_for

from dms.crypto import Ed25519PrivateKey
from dms.errors import InvalidInput, NetworkError
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_keys import libp2p_key_pair
from dms.network._libp2p_security import (
    Libp2pTLSTransport,
    alpn_muxer,
    security_options,
    security_protocols,
)

SECURITY_LOG = "dms.network._libp2p_security"


def _the_connection(net: Libp2pNetwork, peer_id: str) -> Any:
    conns = net._host.get_network().get_connections()
    [conn] = [c for c in conns if str(c.muxed_conn.peer_id) == peer_id]
    return conn


def _insecure_dialer(kind: str) -> Any:
    """A py-libp2p host that offers only plaintext or only secio (what we used to accept)."""
    pair = create_new_key_pair()
    sec: dict[TProtocol, Any]
    if kind == "plaintext":
        sec = {TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(pair)}
    else:
        sec = {TProtocol(secio.ID): secio.Transport(pair)}
    return new_host(key_pair=pair, sec_opt=sec, listen_addrs=[multiaddr.Multiaddr(LOOPBACK[0])])


@pytest.mark.parametrize(
    ("kind", "offered"), [("plaintext", PLAINTEXT_PROTOCOL_ID), ("secio", secio.ID)]
)
async def test_insecure_dialer_is_refused_and_logged(
    kind: str, offered: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=SECURITY_LOG)
    ours = new_net()
    dialer = _insecure_dialer(kind)
    async with running(ours), dialer.run(listen_addrs=[multiaddr.Multiaddr(LOOPBACK[0])]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(ours.listen_addresses()[0]))
        with pytest.raises(Exception), trio.fail_after(15):  # noqa: B017 (any library error)
            await dialer.connect(info)
        await wait_for(lambda: "refused inbound connection" in caplog.text)
        line = next(r for r in caplog.records if "refused inbound connection" in r.message)
        assert line.levelno == logging.WARNING
        assert offered in line.getMessage()
        assert "/noise" in line.getMessage() and "/tls/1.0.0" in line.getMessage()
        assert not ours.peers()
        assert not dialer.get_connected_peers()
        # The other way round: we refuse to dial it, and say why.
        their = f"{dialer.get_addrs()[0]}"
        with pytest.raises(NetworkError):
            await ours.connect(their, timeout=10)
        await wait_for(lambda: "accepts none of /noise, /tls/1.0.0" in caplog.text)
        assert not ours.peers()


@pytest.mark.parametrize("order", [("tls",), ("noise",), ("tls", "noise"), ("noise", "tls")])
async def test_noise_and_tls_carry_messages(order: tuple[str, ...]) -> None:
    a, b = new_net(security=order), new_net(security=("noise", "tls"))
    got: list[tuple[bytes, str]] = []

    async def handler(data: bytes, remote: str) -> None:
        got.append((data, remote))

    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        conn = _the_connection(a, b.host_id)
        secured = conn.muxed_conn.secured_conn
        assert secured.negotiated_security_protocol == (
            TLS_PROTOCOL if order[0] == "tls" else NOISE_PROTOCOL
        )
        # TLS picks the muxer through ALPN (no multistream round trip); Noise has no ALPN.
        assert alpn_muxer(secured) == (YAMUX_PROTOCOL if order[0] == "tls" else None)
        assert conn.muxed_conn.negotiated_muxer_protocol == YAMUX_PROTOCOL
        await a.send(b.host_id, "root", b"over " + order[0].encode(), timeout=5)
        await wait_for(lambda: len(got) == 1)
        assert got == [(b"over " + order[0].encode(), a.host_id)]
        assert await a.ping(b.host_id, timeout=5) > 0


async def test_no_common_protocol_between_two_of_ours_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=SECURITY_LOG)
    a, b = new_net(security=("tls",)), new_net(security=("noise",))
    async with running(a, b):
        with pytest.raises(NetworkError):
            await a.connect(b.listen_addresses()[0], timeout=10)
        await wait_for(lambda: "it offered /tls/1.0.0; we accept only /noise" in caplog.text)


def test_only_noise_and_tls_can_be_configured() -> None:
    assert security_protocols(["TLS", "noise"]) == [TLS_PROTOCOL, NOISE_PROTOCOL]
    for bad in (["plaintext"], ["secio", "noise"], [], ["noise", "noise"]):
        with pytest.raises(InvalidInput):
            security_protocols(bad)
    with pytest.raises(InvalidInput):
        new_net(security=("noise", "plaintext"))
    pair = libp2p_key_pair(Ed25519PrivateKey.generate())
    assert list(security_options(pair, ("tls", "noise"))) == [TLS_PROTOCOL, NOISE_PROTOCOL]


def test_tls_certificate_has_the_libp2p_extension_first() -> None:
    pair = libp2p_key_pair(Ed25519PrivateKey.generate())
    transport = Libp2pTLSTransport(pair)
    cert = x509.load_pem_x509_certificate(transport.get_certificate_pem().encode())
    # js-libp2p reads extensions[0]; go-libp2p's certificate has no other extension either.
    assert [ext.oid for ext in cert.extensions] == [LIBP2P_EXTENSION_OID]
    assert verify_certificate_chain([cert]).serialize() == pair.public_key.serialize()
    server = transport.create_ssl_context(server_side=True)
    assert transport.create_ssl_context(server_side=True) is server  # built once per side
