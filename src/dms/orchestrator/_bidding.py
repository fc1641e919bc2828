"""Bidding: ask providers for bids and stop as soon as the ensemble can be placed.

Go broadcasts one request and waits a fixed 5 s window (spec §8). Here an orchestrator asks,
in parallel,

* the peers pinned by the ensemble and a bounded set of providers it already knows (connected
  DMS peers), directly: our providers answer every node request with a bid or a reasoned decline;
* everyone else through the ``/nunet/deployment`` broadcast that Go providers listen to;

and re-runs the matcher on every answer. Collection ends

* when a placement exists (after a short grace for better bids), or
* when every directly asked peer has answered every node and the broadcast has had its quiet
  period: no answer can change the outcome, so the deployment fails now, with the explanation,
  instead of waiting for its deadline;
* at the latest when the round's window passes without a new answer.

A bid counts only if its signature verifies with the key of the peer that sent it, it is for
this ensemble and a node of it, and it is the first from that peer for that node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from dms.actor import Actor, Envelope, Handle
from dms.errors import DMSError
from dms.jobs import (
    BID_REQUEST_TOPIC,
    DEPLOYMENT_BID,
    DEPLOYMENT_REQUEST,
    Bid,
    BidDecline,
    EnsembleBidRequest,
    parse_bid_reply,
)
from dms.orchestrator._explain import DeclineReason
from dms.orchestrator._matcher import (
    Decline,
    Edge,
    Match,
    NodeDemand,
    Offer,
    match,
)

log = logging.getLogger(__name__)

EdgeMeasure = Callable[[str, str, Edge], Awaitable[bool]]


@dataclass(frozen=True)
class BiddingSettings:
    """Timing of a bid round (seconds)."""

    #: After a placement becomes possible, wait this long for better bids.
    grace: float = 0.25
    #: With every directly asked peer answered, how long broadcast-only peers get.
    quiet: float = 1.5
    #: A round ends when nothing new arrived for this long (Go's whole window: 5 s).
    window: float = 5.0
    #: Lifetime of one request message.
    request_timeout: float = 10.0
    #: Known providers asked directly per ensemble node, and at most in all (pinned peers
    #: always are); the broadcast reaches everyone else. Every direct request costs a
    #: signature here and a verification and answer there, so it scales with the ensemble,
    #: not with the network.
    direct_per_node: int = 4
    max_direct: int = 64
    #: Once every node has this many offers, better bids are not worth the grace period.
    enough_offers: int = 3
    #: With at least ``direct_per_node`` known providers per node asked directly, the
    #: broadcast waits this long for their answers to place the ensemble first.
    broadcast_delay: float = 0.5


@dataclass
class BidBook:
    """Every answer of one deployment: valid bids (offers), declines, and who answered what."""

    ensemble_id: str
    demands: dict[str, NodeDemand]
    bids: dict[tuple[str, str], Bid] = field(default_factory=dict)
    offers: dict[tuple[str, str], Offer] = field(default_factory=dict)
    declines: dict[tuple[str, str], Decline] = field(default_factory=dict)
    refused: int = 0
    changed: trio.Event = field(default_factory=trio.Event)
    last_change: float = 0.0
    #: Counts changes: a match computed in a worker thread is stale if this moved meanwhile.
    version: int = 0

    def answered(self, peer: str) -> set[str]:
        """The nodes ``peer`` answered (bid or decline)."""
        nodes = {n for (p, n) in self.bids if p == peer}
        return nodes | {n for (p, n) in self.declines if p == peer}

    def _touch(self) -> None:
        self.version += 1
        self.last_change = trio.current_time()
        self.changed.set()

    def receive(self, env: Envelope) -> None:
        """Take one ``/dms/deployment/bid`` message (a Bid or our BidDecline)."""
        sender = env.from_.address.host
        try:
            reply = parse_bid_reply(env.decode_payload())
        except (DMSError, ValueError) as exc:
            self.refused += 1
            log.info("bid from %s refused: %s", sender, exc)
            return
        if reply.ensemble_id != self.ensemble_id:
            self.refused += 1
            log.info("bid from %s is for another ensemble (%s)", sender, reply.ensemble_id)
            return
        if reply.node_id not in self.demands:
            self.refused += 1
            log.info("bid from %s names an unknown node %r", sender, reply.node_id)
            return
        if reply.peer != sender:
            self.refused += 1
            log.warning("bid for peer %s was sent by %s: refused", reply.peer, sender)
            return
        key = (reply.peer, reply.node_id)
        if key in self.bids or key in self.declines:
            return  # one answer per peer and node (a direct request and the broadcast)
        if isinstance(reply, BidDecline) and reply.reason == DeclineReason.BUSY.value:
            # "Already answered this nonce": the answer is the one to the other copy of the
            # request (direct and broadcast arrive together, in any order). Counting it would
            # shadow that answer's bid when it arrives second.
            return
        if isinstance(reply, BidDecline):
            self.declines[key] = Decline(
                peer=reply.peer,
                node=reply.node_id,
                reason=_reason(reply.reason),
                detail=reply.detail,
                free=reply.free,
            )
            self._touch()
            return
        if not reply.verify():
            self.refused += 1
            log.warning("bid from %s has an invalid signature: refused", sender)
            return
        self.bids[key] = reply
        self.offers[key] = Offer(
            peer=reply.peer, node=reply.node_id, location=reply.location, free=reply.free
        )
        self._touch()

    def forget_peers(self, peers: set[str]) -> None:
        """Drop every answer of ``peers`` (they failed to commit or allocate)."""
        for table in (self.bids, self.offers, self.declines):
            for key in [k for k in table if k[0] in peers]:
                del table[key]
        self.version += 1

    async def wait_change(self, until: float) -> None:
        """Sleep until a new answer arrives or trio time ``until``."""
        with trio.move_on_at(until):
            await self.changed.wait()
        self.changed = trio.Event()


def _reason(text: str) -> DeclineReason:
    try:
        return DeclineReason(text)
    except ValueError:
        return DeclineReason.OTHER


@dataclass
class EdgeBook:
    """Measured edges, cached per peer pair and constraint (a pair is measured once)."""

    results: dict[tuple[str, str, int, int], bool] = field(default_factory=dict)

    @staticmethod
    def _key(a: str, b: str, edge: Edge) -> tuple[str, str, int, int]:
        first, second = sorted((a, b))
        return (first, second, edge.rtt_ms, edge.bw_bps)

    def status(self, a: str, b: str, edge: Edge) -> bool | None:
        return self.results.get(self._key(a, b, edge))

    def record(self, a: str, b: str, edge: Edge, ok: bool) -> None:
        self.results[self._key(a, b, edge)] = ok


@dataclass
class Round:
    """One bid round: the request, whom it went to directly, and when."""

    request: EnsembleBidRequest
    direct: list[str]
    timeout: float
    failed_sends: set[str] = field(default_factory=set)
    #: Trio time the broadcast goes out if the direct answers have not placed the ensemble.
    broadcast_due: float = 0.0
    broadcast_started: bool = False
    broadcast_at: float = 0.0


async def _send_direct(
    actor: Actor, handle: Handle, request: EnsembleBidRequest, round_: Round, book: BidBook
) -> None:
    try:
        env = actor.message(
            handle,
            DEPLOYMENT_REQUEST,
            request,
            timeout=round_.timeout,
            reply_to=DEPLOYMENT_BID,
        )
        await actor.send(env)
    except DMSError as exc:
        log.info("bid request to %s failed: %s", handle.address.host, exc)
        round_.failed_sends.add(handle.address.host)
        book.changed.set()


async def _broadcast(
    actor: Actor, request: EnsembleBidRequest, settings: BiddingSettings, round_: Round
) -> None:
    try:
        await actor.publish(
            BID_REQUEST_TOPIC,
            DEPLOYMENT_REQUEST,
            request,
            timeout=settings.request_timeout,
            reply_to=DEPLOYMENT_BID,
        )
    except DMSError as exc:
        log.info("bid request broadcast failed: %s", exc)
    round_.broadcast_at = trio.current_time()


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _enough(book: BidBook, nodes: Sequence[str], wanted: int) -> bool:
    """Every node has at least ``wanted`` offers: the best of them is good enough."""
    counts = dict.fromkeys(nodes, 0)
    for _, node in book.offers:
        if node in counts:
            counts[node] += 1
    return all(n >= wanted for n in counts.values())


def _direct_answered(book: BidBook, round_: Round, nodes: Sequence[str]) -> bool:
    """Every directly asked peer answered every node (or could not be reached)."""
    wanted = set(nodes)
    return all(
        peer in round_.failed_sends or wanted <= book.answered(peer) for peer in round_.direct
    )


def _settled(book: BidBook, round_: Round, nodes: Sequence[str], now: float, quiet: float) -> bool:
    """Every direct peer answered every node (or could not be reached), and the broadcast
    had its quiet period: no answer we can still expect would change the outcome."""
    if not _direct_answered(book, round_, nodes):
        return False
    return bool(round_.broadcast_at) and now >= round_.broadcast_at + quiet


async def run_round(
    actor: Actor,
    book: BidBook,
    edges: Sequence[Edge],
    edge_book: EdgeBook,
    measure: EdgeMeasure,
    *,
    request: EnsembleBidRequest,
    direct: list[str],
    handle_of: Callable[[str], Handle],
    excluded: frozenset[str],
    settings: BiddingSettings,
    deadline: float,
    progress: Callable[[str], None],
    broadcast_delay: float = 0.0,
) -> Match:
    """Ask for bids and return the best match (placement or explanation) of this round.

    ``deadline`` is trio time; ``progress`` receives one-line progress reports. The broadcast
    goes out after ``broadcast_delay`` seconds, or as soon as the direct answers are all in
    without a placement, and not at all when they place the ensemble first: asking a large
    network costs every provider a verification and the orchestrator one per answer, so it
    is only done when the providers we know are not enough.
    """
    round_ = Round(request=request, direct=direct, timeout=settings.request_timeout)
    nodes = [r.node_id for r in request.requests]
    demands = list(book.demands.values())
    started = trio.current_time()
    book.last_change = started
    reported = 0
    async with trio.open_nursery() as nursery:
        for peer in direct:
            nursery.start_soon(_send_direct, actor, handle_of(peer), request, round_, book)
        round_.broadcast_due = started + broadcast_delay
        ready_at: float | None = None
        while True:
            now = trio.current_time()
            seen = book.version
            result = await _match(demands, book, edges, excluded, edge_book)
            if result.placement is None and book.version != seen:
                # Answers arrived while the matcher ran in its thread (the first call with
                # edges loads city data: seconds on a busy machine): judging "settled" on
                # this stale result would fail a deployment its answers can place.
                continue
            if not round_.broadcast_started and (
                now >= round_.broadcast_due
                or (result.placement is None and _direct_answered(book, round_, nodes))
            ):
                round_.broadcast_started = True
                progress("asking the whole network (broadcast)")
                nursery.start_soon(_broadcast, actor, request, settings, round_)
            answers = len(book.bids) + len(book.declines)
            if answers != reported:
                reported = answers
                peers = {p for p, _ in book.bids} | {p for p, _ in book.declines}
                progress(
                    f"{_count(len(peers), 'provider')} answered: {_count(len(book.bids), 'bid')}, "
                    f"{_count(len(book.declines), 'decline')}"
                )
            if result.placement is not None and result.unmeasured:
                await _measure(result, measure, edge_book, deadline)
                continue
            if result.placement is not None:
                if ready_at is None:
                    ready_at = now + settings.grace
                all_in = _direct_answered(book, round_, nodes) and (
                    not round_.broadcast_started or bool(round_.broadcast_at)
                )
                if now >= ready_at or all_in or _enough(book, nodes, settings.enough_offers):
                    nursery.cancel_scope.cancel()
                    return result
                wake = ready_at
                if not round_.broadcast_started:
                    wake = min(wake, round_.broadcast_due)
            else:
                if _settled(book, round_, nodes, now, settings.quiet):
                    nursery.cancel_scope.cancel()
                    return result
                silent_until = book.last_change + settings.window
                if now >= silent_until or now >= deadline:
                    nursery.cancel_scope.cancel()
                    return result
                wake = min(silent_until, deadline)
                quiet_ends = round_.broadcast_at + settings.quiet
                if round_.broadcast_at and quiet_ends > now:
                    # Once the quiet period is over only a new answer can settle the round.
                    wake = min(wake, quiet_ends + 0.01)
                if not round_.broadcast_started:
                    wake = min(wake, round_.broadcast_due)
            await book.wait_change(min(wake, deadline))
            if trio.current_time() >= deadline:
                nursery.cancel_scope.cancel()
                return await _match(demands, book, edges, excluded, edge_book)
    raise AssertionError("unreachable")  # pragma: no cover


#: Above this many offers the matcher runs in a worker thread (tens of ms at 1,000 offers).
THREAD_MATCH_OFFERS = 64
#: A complete search is exponential in the worst case: cap it (a capped search says so).
MAX_SEARCH_STEPS = 200_000


async def _match(
    demands: Sequence[NodeDemand],
    book: BidBook,
    edges: Sequence[Edge],
    excluded: frozenset[str],
    edge_book: EdgeBook,
) -> Match:
    """Run the matcher on a snapshot of the book (in a thread when it is large)."""
    offers = list(book.offers.values())
    declines = list(book.declines.values())
    measured = dict(edge_book.results)

    def status(a: str, b: str, edge: Edge) -> bool | None:
        return measured.get(EdgeBook._key(a, b, edge))

    def run() -> Match:
        return match(
            demands,
            offers,
            edges,
            declines=declines,
            excluded_peers=excluded,
            edge_status=status,
            max_steps=MAX_SEARCH_STEPS,
        )

    if len(offers) > THREAD_MATCH_OFFERS or edges:  # edges: the first call loads city data
        return await trio.to_thread.run_sync(run)
    return run()


async def _measure(
    result: Match, measure: EdgeMeasure, edge_book: EdgeBook, deadline: float
) -> None:
    """Measure the unmeasured edges of a candidate placement, in parallel, caching results."""

    async def one(a: str, b: str, edge: Edge) -> None:
        ok = False
        with trio.move_on_at(deadline):
            try:
                ok = await measure(a, b, edge)
            except DMSError as exc:
                log.info("edge %s-%s could not be measured: %s", a, b, exc)
        edge_book.record(a, b, edge, ok)

    async with trio.open_nursery() as nursery:
        for a, b, edge in result.unmeasured:
            nursery.start_soon(one, a, b, edge)


def now_ns() -> int:
    """Wall-clock now in Unix ns (bid and event stamps)."""
    return time.time_ns()
