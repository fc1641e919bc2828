"""Why an ensemble was (or was not) placed: every dropped candidate with its reason, per node.

Why a module of its own: "why was my ensemble not placed?" must always have an answer in the
CLI and in the store (Nomad's and Bacalhau's schedulers record one per dropped candidate). The
matcher fills these records; this module only aggregates and words them:

    node1: 12 peers answered; 9 short of CPU (need 4 cores, best offer 2), 2 outside the
    accepted location, 1 excluded

and combination-level conflicts ("no combination meets edge node1–node2 rtt ≤ 10 ms (closest
pair 23 ms by distance)"). ``to_json`` keeps everything (every drop with its peer) for the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dms.resources import format_size


class DeclineReason(StrEnum):
    """Why a provider cannot host a node (its own word in a decline, or the matcher's filter)."""

    NOT_ONBOARDED = "not_onboarded"
    EXECUTOR = "executor"
    RESOURCES = "resources"
    LOCATION = "location"
    PRIVILEGED = "privileged"
    PORTS = "ports"
    EXCLUDED = "excluded"
    PINNED = "pinned"
    BUSY = "busy"
    OTHER = "other"


_PHRASES: dict[DeclineReason, str] = {
    DeclineReason.NOT_ONBOARDED: "not onboarded",
    DeclineReason.EXECUTOR: "without the executor",
    DeclineReason.RESOURCES: "short of resources",
    DeclineReason.LOCATION: "outside the accepted location",
    DeclineReason.PRIVILEGED: "refusing privileged containers",
    DeclineReason.PORTS: "with the static ports taken",
    DeclineReason.EXCLUDED: "excluded",
    DeclineReason.PINNED: "not the pinned peer",
    DeclineReason.BUSY: "busy",
    DeclineReason.OTHER: "declined",
}

# Reasons whose provider-given detail is worth quoting once ("without the executor (docker)").
_QUOTED = {DeclineReason.EXECUTOR, DeclineReason.OTHER, DeclineReason.RESOURCES}


def short_peer(peer: str) -> str:
    """A peer ID short enough for one line (``12D3Ko…x7YqPa``); full IDs stay in ``to_json``."""
    return peer if len(peer) <= 16 else f"{peer[:6]}…{peer[-6:]}"


def format_amount(dimension: str, value: float) -> str:
    """A resource amount in the unit of its dimension (cores, bytes)."""
    if dimension == "cpu":
        return f"{value:g} core" if value == 1 else f"{value:g} cores"
    return format_size(int(value))


def dimension_name(dimension: str) -> str:
    """``cpu`` → ``CPU``, ``gpu:0`` → ``GPU 0 VRAM``."""
    if dimension.startswith("gpu:"):
        return f"GPU {dimension[4:]} VRAM"
    return {"cpu": "CPU", "ram": "RAM", "disk": "disk"}.get(dimension, dimension)


@dataclass(frozen=True)
class Drop:
    """One candidate (peer) dropped for one node, and why.

    ``declined`` is True when the provider said so itself (a :class:`Decline`), False when the
    matcher's filters dropped its offer. For a resource shortage, ``dimension`` names the first
    short part (``cpu``, ``ram``, ``disk``, ``gpu:<index>``), ``need`` and ``have`` its amounts.
    """

    peer: str
    reason: DeclineReason
    detail: str = ""
    declined: bool = False
    dimension: str = ""
    need: float = 0.0
    have: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"peer": self.peer, "reason": self.reason.value}
        if self.detail:
            out["detail"] = self.detail
        if self.declined:
            out["declined"] = True
        if self.dimension:
            out["dimension"] = self.dimension
            out["need"] = self.need
            out["have"] = self.have
        return out


@dataclass(frozen=True)
class Shortage:
    """``count`` candidates short on ``dimension``: ``need`` asked, ``best`` the most offered."""

    dimension: str
    need: float
    best: float | None
    count: int

    def phrase(self) -> str:
        need = format_amount(self.dimension, self.need)
        if self.best is None:
            return f"{self.count} short of {dimension_name(self.dimension)} (need {need})"
        best = format_amount(self.dimension, self.best)
        if self.dimension == "cpu":
            best = f"{self.best:g}"
        return (
            f"{self.count} short of {dimension_name(self.dimension)} "
            f"(need {need}, best offer {best})"
        )


@dataclass(frozen=True)
class NodeExplanation:
    """What happened to one ensemble node's candidates."""

    node: str
    answered: int
    candidates: tuple[str, ...] = ()
    drops: tuple[Drop, ...] = ()
    placed_on: str | None = None
    accept_location: bool = True  # the node has an accept list (else: a reject list)

    def counts(self) -> dict[DeclineReason, int]:
        """How many candidates were dropped for each reason."""
        return dict(Counter(d.reason for d in self.drops))

    def shortages(self) -> list[Shortage]:
        """Resource drops grouped by their short dimension, the best offer on each."""
        groups: dict[str, list[Drop]] = {}
        for d in self.drops:
            if d.reason is DeclineReason.RESOURCES and d.dimension:
                groups.setdefault(d.dimension, []).append(d)
        out = []
        for dim, drops in groups.items():
            haves = [d.have for d in drops if d.have is not None]
            out.append(Shortage(dim, drops[0].need, max(haves) if haves else None, len(drops)))
        return sorted(out, key=lambda s: (-s.count, s.dimension))

    def _phrases(self) -> list[str]:
        counts = Counter(d.reason for d in self.drops)
        parts: list[str] = []
        for reason, count in sorted(counts.items(), key=lambda rc: (-rc[1], rc[0].value)):
            if reason is DeclineReason.RESOURCES:
                shortages = self.shortages()
                parts.extend(s.phrase() for s in shortages)
                rest = count - sum(s.count for s in shortages)
                if rest <= 0:
                    continue
                count = rest  # noqa: PLW2901 - the resource drops not covered by a shortage
            phrase = _PHRASES[reason]
            if reason is DeclineReason.LOCATION and not self.accept_location:
                phrase = "in a rejected location"
            detail = next(
                (
                    d.detail
                    for d in self.drops
                    if d.reason is reason and d.detail and not d.dimension
                ),
                "",
            )
            if reason in _QUOTED and detail:
                phrase = f"{phrase} ({detail})"
            parts.append(f"{count} {phrase}")
        return parts

    def line(self) -> str:
        """One line: who answered, what was dropped and why, where the node went."""
        if self.answered == 0:
            head = f"{self.node}: no peer answered"
        else:
            peers = "peer" if self.answered == 1 else "peers"
            head = f"{self.node}: {self.answered} {peers} answered"
        parts = self._phrases()
        text = head + ("; " + ", ".join(parts) if parts else "")
        if self.placed_on is not None:
            text += f"; placed on {short_peer(self.placed_on)}"
        elif self.answered and not self.candidates:
            text += "; no candidate left"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "answered": self.answered,
            "candidates": list(self.candidates),
            "placed_on": self.placed_on,
            "counts": {r.value: n for r, n in self.counts().items()},
            "shortages": [
                {"dimension": s.dimension, "need": s.need, "best": s.best, "count": s.count}
                for s in self.shortages()
            ],
            "drops": [d.to_json() for d in self.drops],
            "line": self.line(),
        }


@dataclass(frozen=True)
class Explanation:
    """Per-node explanations plus the combination-level conflicts that blocked a placement."""

    per_node: dict[str, NodeExplanation]
    conflicts: tuple[str, ...] = ()
    unknown_offers: tuple[tuple[str, str], ...] = ()  # (peer, node) naming no ensemble node

    @property
    def summary(self) -> str:
        """One paragraph: the node lines, then the conflicts."""
        text = ". ".join(n.line() for n in self.per_node.values())
        extra = list(self.conflicts)
        if self.unknown_offers:
            n = len(self.unknown_offers)
            extra.append(f"{n} offer{'s' if n != 1 else ''} named no node of this ensemble")
        if extra:
            text = f"{text}; {'; '.join(extra)}" if text else "; ".join(extra)
        return text

    def lines(self) -> list[str]:
        """One line per node, then one per conflict (for the CLI)."""
        out = [n.line() for n in self.per_node.values()]
        out.extend(self.conflicts)
        if self.unknown_offers:
            out.append(f"{len(self.unknown_offers)} offer(s) named no node of this ensemble")
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, for the store and ``--json``."""
        return {
            "summary": self.summary,
            "nodes": [n.to_json() for n in self.per_node.values()],
            "conflicts": list(self.conflicts),
            "unknown_offers": [{"peer": p, "node": n} for p, n in self.unknown_offers],
        }
