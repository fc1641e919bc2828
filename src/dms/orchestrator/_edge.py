"""``/dms/deployment/constraint/edge``: may two providers host nodes joined by an edge?

Go's request ``{EnsembleID, S, T, RTT, BW}`` (S and T are peer IDs, RTT in ms, BW in bit/s)
and response ``{OK, Error}``; the Go provider side was still a TODO in the code read (spec §2.8).
Ours: the provider ``S`` pings ``T`` a few times and answers OK when the best round trip is within
``RTT``. Bandwidth is not measured (a probe transfer would cost the provider real traffic for
every candidate pair); a ``BW`` constraint is accepted and the answer says it was not measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dms import gojson
from dms.errors import InvalidInput

EDGE_PINGS = 3


def _fold(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput("edge constraint request: expected a JSON object")
    return gojson.folded(data, "edge constraint request")


def _uint(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key, 0) or 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput(f"edge constraint request: {key} must be a non-negative number")
    return int(value)


@dataclass(frozen=True)
class EdgeConstraintRequest:
    """Go's edge-constraint check request."""

    ensemble_id: str
    s: str
    t: str
    rtt: int = 0
    bw: int = 0

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            EnsembleID=self.ensemble_id, S=self.s, T=self.t, RTT=self.rtt, BW=self.bw
        )

    @classmethod
    def from_json(cls, data: Any) -> EdgeConstraintRequest:
        obj = _fold(data)
        texts = {k: obj.get(k) or "" for k in ("ensembleid", "s", "t")}
        if not all(isinstance(v, str) for v in texts.values()):
            raise InvalidInput("edge constraint request: EnsembleID, S and T must be strings")
        return cls(
            ensemble_id=texts["ensembleid"],
            s=texts["s"],
            t=texts["t"],
            rtt=_uint(obj, "rtt"),
            bw=_uint(obj, "bw"),
        )
