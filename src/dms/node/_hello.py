"""The hello exchange: greet every newly connected DMS peer and remember who answered.

Why: the Go DMS scores gossipsub peers with an application score of 5 when hello was exchanged
both ways and 1 when the peer speaks the root actor protocol (spec §11), so peers that are
really DMS nodes (and accept our capabilities) are preferred in the mesh. The exchange is also
the first proof that two nodes trust each other's tokens.

Go reacts to libp2p connect/identify events; our :class:`~dms.network.Network` interface has no
events, so a task polls ``network.peers()`` every :data:`PEER_POLL_INTERVAL` seconds and treats
a peer that appears as "connected" and one that disappears as "disconnected". For each new peer
that advertises ``actor/root/messages/0.0.1`` (or whose protocols are not known, as on the
memory network), after a random delay in ``[min, max]`` (Go: 10–20 s, which spreads the load
when many peers connect at once) we invoke ``/public/hello`` on its root actor with a 3 s
timeout, up to 3 attempts, each after a fresh delay, as Go does.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from dms.actor import ALLOWED_KEY_TYPES, ROOT_INBOX, Actor, Address, Handle
from dms.crypto import ID, PeerID, extract_public_key
from dms.did import did_from_public_key
from dms.errors import DMSError
from dms.network import Network

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

PUBLIC_HELLO = "/public/hello"
#: The protocol a DMS root actor receives on; Go greets only peers that advertise it.
ROOT_PROTOCOL = "actor/root/messages/0.0.1"
#: Go's hello delay window, in seconds.
HELLO_DELAY = (10.0, 20.0)
#: Go's hello invocation timeout and attempt count.
HELLO_TIMEOUT = 3.0
HELLO_ATTEMPTS = 3
#: How often the peer list is compared with the last one, in seconds.
PEER_POLL_INTERVAL = 2.0

#: Application scores Go gives gossipsub peers.
SCORE_HELLO_BOTH_WAYS = 5.0
SCORE_HAS_ROOT = 1.0


@dataclass
class PeerState:
    """What we know of one connected peer (Go's ``peerState``)."""

    has_root: bool = False
    hello_in: bool = False
    hello_out: bool = False
    hello_pending: bool = False
    hello_attempts: int = 0


def root_handle(peer_id: str) -> Handle:
    """The handle of a peer's root actor, derived from the key inside its peer ID."""
    key = extract_public_key(PeerID.parse(peer_id))
    if key.key_type not in ALLOWED_KEY_TYPES:
        raise DMSError(f"peer {peer_id} has a {key.key_type.name} key, not an actor key")
    return Handle(ID.from_public_key(key), did_from_public_key(key), Address(peer_id, ROOT_INBOX))


class HelloExchange:
    """Tracks connected peers and says hello to new ones; see the module docstring."""

    def __init__(
        self,
        actor: Actor,
        network: Network,
        *,
        delay: tuple[float, float] = HELLO_DELAY,
        poll_interval: float = PEER_POLL_INTERVAL,
        timeout: float = HELLO_TIMEOUT,
        attempts: int = HELLO_ATTEMPTS,
        rng: random.Random | None = None,
    ) -> None:
        self.actor = actor
        self.network = network
        self.delay = delay
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.attempts = attempts
        self.peers: dict[str, PeerState] = {}
        self._rng = rng or random.Random()
        self._nursery: trio.Nursery | None = None

    # -- queries -------------------------------------------------------------------------

    def connected(self, peer_id: str) -> bool:
        """True if the network has ``peer_id`` connected now (a set lookup: this runs for
        every hello from a peer we do not track, and any ``/public`` holder can send one)."""
        return self.network.is_connected(peer_id)

    def exchanged(self, peer_id: str) -> bool:
        """True once hello went both ways with ``peer_id``."""
        st = self.peers.get(peer_id)
        return st is not None and st.hello_in and st.hello_out

    def app_score(self, peer_id: str) -> float:
        """Go's gossipsub application score: 5 after hello both ways, 1 for a root peer."""
        st = self.peers.get(peer_id)
        if st is None:
            return 0.0
        if st.hello_in and st.hello_out:
            return SCORE_HELLO_BOTH_WAYS
        if st.has_root:
            return SCORE_HAS_ROOT
        return 0.0

    # -- events --------------------------------------------------------------------------

    def hello_received(self, peer_id: str) -> None:
        """``peer_id`` said hello to us (``/public/hello`` was invoked by its root actor).

        A second hello from a peer that already greeted us means it lost its state for us (it
        saw us disconnect, or restarted) while our polling missed the gap, so we greet it again;
        otherwise its side of the exchange would stay incomplete. Go, which sees every
        disconnect event, needs no such rule; the rule cannot loop, since the peer's own state
        for us is fresh and our new hello is its first.
        """
        st = self.peers.get(peer_id)
        if st is None:
            if not self.connected(peer_id):
                return
            st = self.peers[peer_id] = PeerState()
        elif st.hello_in and not st.hello_pending:
            st.hello_out = False
            st.hello_attempts = 0
            self._start_hello(peer_id, st)
        st.hello_in = True

    # -- the task ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the peer list and greet new peers until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                while True:
                    self.poll()
                    await trio.sleep(self.poll_interval)
            finally:
                self._nursery = None

    def poll(self) -> None:
        """Compare ``network.peers()`` with what we know: forget gone peers, greet new ones."""
        current = {p.peer_id: p for p in self.network.peers() if p.peer_id != self.network.host_id}
        for gone in set(self.peers) - set(current):
            del self.peers[gone]
        for peer_id, info in current.items():
            has_root = ROOT_PROTOCOL in info.protocols
            st = self.peers.get(peer_id)
            if st is None:
                st = self.peers[peer_id] = PeerState(has_root=has_root)
                # unknown protocols (memory network, identify not done yet): try anyway
                if has_root or not info.protocols:
                    self._start_hello(peer_id, st)
            elif has_root and not st.has_root:
                # Go's "identified": the peer now advertises the root protocol
                st.has_root = True
                if not st.hello_out and not st.hello_pending:
                    self._start_hello(peer_id, st)

    def _start_hello(self, peer_id: str, st: PeerState) -> None:
        if self._nursery is None:
            return
        st.hello_pending = True
        st.hello_attempts += 1
        self._nursery.start_soon(self._say_hello, peer_id)

    async def _say_hello(self, peer_id: str) -> None:
        try:
            handle = root_handle(peer_id)
        except DMSError as exc:
            log.debug("not greeting %s: %s", peer_id, exc)
            st = self.peers.get(peer_id)
            if st is not None:
                st.hello_pending = False
            return
        while True:
            low, high = self.delay
            await trio.sleep(self._rng.uniform(low, high))
            st = self.peers.get(peer_id)
            if st is None:
                return
            if not self.connected(peer_id):
                st.hello_pending = False
                return
            try:
                await self.actor.invoke(handle, PUBLIC_HELLO, None, timeout=self.timeout)
            except DMSError as exc:
                log.debug("hello to %s failed: %s", peer_id, exc)
                st = self.peers.get(peer_id)
                if st is None:
                    return
                if st.hello_attempts < self.attempts:
                    st.hello_attempts += 1
                    continue
                st.hello_pending = False
                return
            st = self.peers.get(peer_id)
            if st is None:
                if not self.connected(peer_id):
                    return
                st = self.peers[peer_id] = PeerState()
            st.hello_out = True
            st.has_root = True  # it answered on its root inbox
            st.hello_pending = False
            log.info("got hello response from %s", peer_id)
            return
