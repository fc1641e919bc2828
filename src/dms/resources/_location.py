"""Where a node is: ``jobtypes.Location`` ``{continent, country, city, asn, isp}`` (spec §7).

Why here (layer 4) rather than in ``node``: the placement code (bids, location constraints of an
ensemble) needs the same type and its matching rule, and must not import the node package. A
node's own location comes from ``general.host_*`` in its config (see ``dms.node``).

On the wire every field is ``omitempty`` (Go's tags), so an unset location marshals as ``{}``;
bids are signed over these bytes, so the encoding must match Go's exactly. ``asn`` is a Go
``uint``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dms import gojson
from dms.errors import InvalidInput


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"location.{key}: expected a string, got {value!r}")
    return value


def _asn(obj: Mapping[str, Any]) -> int:
    value = obj.get("asn")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"location.asn: expected a number, got {value!r}")
    if value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"location.asn: expected a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Location:
    """A geographical and network location; empty strings and ``asn`` 0 mean "not set"."""

    continent: str = ""
    country: str = ""
    city: str = ""
    asn: int = 0
    isp: str = ""

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct()
        for key in ("continent", "country", "city"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.asn:
            out["asn"] = self.asn
        if self.isp:
            out["isp"] = self.isp
        return out

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` bytes (unset fields left out)."""
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> Location:
        """Lenient decode, as Go's: keys case-insensitive, unknown keys ignored."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput(f"location: expected a JSON object, got {type(data).__name__}")
        obj: dict[str, Any] = {}
        for key, value in data.items():
            obj.setdefault(str(key).lower(), value)
        return cls(
            continent=_text(obj, "continent"),
            country=_text(obj, "country"),
            city=_text(obj, "city"),
            asn=_asn(obj),
            isp=_text(obj, "isp"),
        )

    @property
    def is_empty(self) -> bool:
        """Whether nothing is set."""
        return self == Location()

    def matches(self, other: Location) -> bool:
        """Whether ``other`` (a node's location) is inside this one (a constraint).

        Go's ``Location.Equal``: the continents must be equal, and every other field set here
        must equal ``other``'s; fields left empty here match anything.
        """
        if self.continent != other.continent:
            return False
        if self.country and self.country != other.country:
            return False
        if self.city and self.city != other.city:
            return False
        if self.asn and self.asn != other.asn:
            return False
        return not (self.isp and self.isp != other.isp)

    def satisfies(self, accept: Iterable[Location] = (), reject: Iterable[Location] = ()) -> bool:
        """Whether this node location passes an ensemble's ``location: {accept, reject}``.

        Go's ``Location.Satisfies``: a non-empty accept list wins (one match is enough);
        otherwise any matching reject entry excludes the node.
        """
        accepted = list(accept)
        if accepted:
            return any(a.matches(self) for a in accepted)
        return not any(r.matches(self) for r in reject)
