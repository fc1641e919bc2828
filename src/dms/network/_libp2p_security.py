"""Connection security: Noise and TLS only, a TLS certificate other stacks accept, refusals logged.

The Go DMS offers TLS and Noise and nothing else (spec §11). py-libp2p 0.8.1's ``new_host``
without ``sec_opt`` also offers secio and ``/plaintext/2.0.0``; plaintext proves nothing about
the remote key, so the anti-spoofing rule (an envelope's sender must be the stream's peer)
would rest on nothing. :func:`security_options` builds the only two transports we accept, in
the order given (the order is our preference when we dial), and :func:`harden_upgrader`
replaces the upgrader's negotiation so that:

* an inbound dialer that offers none of them is refused and logged (WARNING, with what it
  offered), and so is an outbound dial to a peer that accepts none of ours;
* a TLS handshake whose ALPN picked a muxer (``/yamux/1.0.0``) skips the multistream-select
  round trip for the muxer, as go-libp2p does ("early muxer negotiation").

The TLS certificate (:func:`certificate_template`) carries the libp2p public-key extension as
its first and only extension, as go-libp2p's does: js-libp2p reads only the first extension,
and py-libp2p's default template puts BasicConstraints and KeyUsage before it. The TLS
transport offers ``/yamux/1.0.0`` then ``libp2p`` in ALPN, like Go.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.protocol_muxer.exceptions import MultiselectClientError, MultiselectError
from libp2p.protocol_muxer.multiselect import MULTISELECT_PROTOCOL_ID
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.security.security_multistream import SecurityMultistream
from libp2p.security.tls.io import TLSReadWriter
from libp2p.security.tls.transport import PROTOCOL_ID as TLS_PROTOCOL
from libp2p.security.tls.transport import IdentityConfig, TLSTransport
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL
from libp2p.stream_muxer.yamux.yamux import Yamux

from dms.errors import InvalidInput

log = logging.getLogger(__name__)

SecurityName = Literal["noise", "tls"]

#: Our default preference when dialling: Noise first (py-libp2p's TLS costs more per
#: handshake), TLS second. ``("tls", "noise")`` is go-libp2p's order.
DEFAULT_SECURITY: tuple[SecurityName, ...] = ("noise", "tls")

_PROTOCOLS: dict[str, TProtocol] = {"noise": NOISE_PROTOCOL, "tls": TLS_PROTOCOL}

#: ALPN offered by our TLS transport, ahead of the ``libp2p`` fallback the library appends.
TLS_ALPN_MUXERS = (str(YAMUX_PROTOCOL),)

_NEGOTIATE_TIMEOUT = 10


def security_protocols(order: Sequence[str]) -> list[TProtocol]:
    """The protocol IDs for ``order``; refuse (InvalidInput) anything but Noise and TLS."""
    if not order:
        raise InvalidInput("security: at least one of 'noise' and 'tls' is required")
    protocols: list[TProtocol] = []
    for name in order:
        protocol = _PROTOCOLS.get(str(name).lower())
        if protocol is None:
            raise InvalidInput(f"security: {name!r} is not accepted (only 'noise' and 'tls')")
        if protocol in protocols:
            raise InvalidInput(f"security: {name!r} is listed twice")
        protocols.append(protocol)
    return protocols


def certificate_template() -> x509.CertificateBuilder:
    """A template with no extensions of its own, so the libp2p key extension comes first.

    go-libp2p's template: random serial number, the serial repeated in the subject, valid from
    an hour ago for a century, no other extension. py-libp2p appends its key extension to the
    template and signs with a fresh P-256 key.
    """
    serial = int.from_bytes(os.urandom(16), "big") >> 1 or 1
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .serial_number(serial)
        .subject_name(name)
        .issuer_name(name)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365 * 100))
    )


class Libp2pTLSTransport(TLSTransport):
    """py-libp2p's TLS transport with a Go-shaped certificate, muxer ALPN and cached contexts.

    The library rebuilds its ``SSLContext`` for every connection (writing the key and the
    certificate to temporary files each time); both contexts are immutable once built, so one
    per side is kept.
    """

    def __init__(self, key_pair: Any) -> None:
        super().__init__(
            key_pair,
            muxers=list(TLS_ALPN_MUXERS),
            identity_config=IdentityConfig(cert_template=certificate_template()),
        )
        self._contexts: dict[bool, Any] = {}

    def create_ssl_context(self, server_side: bool = False) -> Any:
        context = self._contexts.get(server_side)
        if context is None:
            context = super().create_ssl_context(server_side=server_side)
            self._contexts[server_side] = context
        return context


def security_options(
    key_pair: Any, order: Sequence[str] = DEFAULT_SECURITY
) -> dict[TProtocol, Any]:
    """``sec_opt`` for ``new_host``: Noise and/or TLS in ``order``, nothing else."""
    transports: dict[TProtocol, Any] = {}
    for protocol in security_protocols(order):
        if protocol == NOISE_PROTOCOL:
            transports[protocol] = NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        else:
            transports[protocol] = Libp2pTLSTransport(key_pair)
    return transports


class _Recorder(MultiselectCommunicator):
    """Keeps what the remote proposed during negotiation, for the refusal log line."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self.heard: list[str] = []

    async def read(self) -> str:
        message = str(await super().read())
        if len(self.heard) < 16:
            self.heard.append(message.strip()[:100])
        return message


def _remote(conn: Any) -> str:
    try:
        address = conn.get_remote_address()
    except Exception:
        address = None
    return f"{address[0]}:{address[1]}" if address else "an unknown address"


class GuardedSecurityMultistream(SecurityMultistream):
    """Security negotiation that logs every refusal (fail closed: refusals still raise)."""

    def __init__(self, transports: Mapping[TProtocol, Any]) -> None:
        super().__init__(transports)
        self._offered = ", ".join(str(p) for p in transports)

    async def secure_inbound(self, conn: Any) -> Any:
        recorder = _Recorder(conn)
        try:
            protocol, _ = await self.multiselect.negotiate(recorder, _NEGOTIATE_TIMEOUT)
            if protocol is None:
                raise MultiselectError("no protocol selected")
        except MultiselectError:
            proposed = [p for p in recorder.heard if p and p not in (MULTISELECT_PROTOCOL_ID, "ls")]
            log.warning(
                "refused inbound connection from %s: it offered %s; we accept only %s",
                _remote(conn),
                ", ".join(proposed) or "no security protocol",
                self._offered,
            )
            raise
        return await self._secure(conn, protocol, None)

    async def secure_outbound(self, conn: Any, peer_id: Any) -> Any:
        try:
            protocol, _ = await self.select_transport_and_protocol(conn, True)
        except (MultiselectError, MultiselectClientError):
            log.warning(
                "refused connection to %s at %s: it accepts none of %s",
                peer_id,
                _remote(conn),
                self._offered,
            )
            raise
        return await self._secure(conn, protocol, peer_id)

    async def _secure(self, conn: Any, protocol: TProtocol, peer_id: Any) -> Any:
        transport = self.transports[protocol]
        secure: Any
        try:
            if peer_id is None:
                secure = await transport.secure_inbound(conn)
            else:
                secure = await transport.secure_outbound(conn, peer_id)
        except Exception as exc:
            log.warning(
                "%s handshake with %s failed: %s: %s",
                protocol,
                peer_id or _remote(conn),
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            raise
        secure.negotiated_security_protocol = str(protocol)  # what the library sets too
        return secure


def alpn_muxer(conn: Any) -> str | None:
    """The muxer a TLS handshake selected through ALPN, or None (Noise, or ``libp2p``)."""
    inner = getattr(conn, "conn", None)
    if not isinstance(inner, TLSReadWriter):
        return None
    protocol = inner.stream_writer.get_negotiated_protocol()
    return str(protocol) if protocol else None


class EarlyMuxerMultistream(MuxerMultistream):
    """Muxer negotiation that trusts a muxer already chosen by TLS ALPN (one round trip less)."""

    async def new_conn(self, conn: Any, peer_id: Any) -> Any:
        chosen = alpn_muxer(conn)
        if chosen is None:
            return await super().new_conn(conn, peer_id)
        transport = self.transports.get(TProtocol(chosen))
        if transport is None:  # we only offer muxers we have: the peer broke the protocol
            raise MultiselectError(f"TLS ALPN selected unknown muxer {chosen!r}")
        if chosen == YAMUX_PROTOCOL:

            async def on_close() -> None:
                pass

            muxed: Any = Yamux(conn, peer_id, is_initiator=conn.is_initiator, on_close=on_close)
        else:
            muxed = transport(conn, peer_id)
        return self._annotate_connection(muxed, conn, TProtocol(chosen))


def harden_upgrader(host: Any, transports: Mapping[TProtocol, Any]) -> None:
    """Put our negotiation in ``host``'s upgrader (same transports; see the module doc)."""
    upgrader = host.get_network().upgrader
    upgrader.security_multistream = GuardedSecurityMultistream(transports)
    old = upgrader.muxer_multistream
    upgrader.muxer_multistream = EarlyMuxerMultistream(dict(old.transports), old.negotiate_timeout)


__all__ = [
    "DEFAULT_SECURITY",
    "EarlyMuxerMultistream",
    "GuardedSecurityMultistream",
    "Libp2pTLSTransport",
    "SecurityName",
    "alpn_muxer",
    "certificate_template",
    "harden_upgrader",
    "security_options",
    "security_protocols",
]
