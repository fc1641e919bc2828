"""Request parsing and response shapes of the node behaviours, as the Go DMS marshals them.

Most of these Go structs carry no json tags, so their keys are the Go field names (``"Host"``,
``"RTT"``, ``"Peers"``); a few are tagged (``PeerAddrInfoResponse``: ``id``/``listen_addr``).
Responses are :class:`dms.gojson.Struct` values so the keys come out in Go's field order, and a
Go CLI or orchestrator decoding them finds every field where it expects it.

Requests are parsed the way Go's ``json.Unmarshal`` fills a struct (:mod:`dms.gojson`'s rules:
keys match field names as Go folds them, the last repeated key wins, unknown keys are ignored),
and a value of the wrong JSON type is an error. Go replies with ``types.ErrUnmarshal`` ("failed
to unmarshal") in that case, so callers turn :class:`RequestError` into that text in the
response's error field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dms import gojson
from dms.actor import Envelope
from dms.did import DID
from dms.errors import DMSError
from dms.executor import ExecutorAvailability

#: Go's ``types.ErrUnmarshal`` text, which the peers behaviours report for a bad request.
ERR_UNMARSHAL = "failed to unmarshal"
#: What Go's ``time.Time{}`` marshals to: the zero time, for DHT fields we cannot know.
ZERO_TIME = "0001-01-01T00:00:00Z"


class RequestError(DMSError):
    """A request payload Go's ``json.Unmarshal`` would refuse (not JSON, wrong types)."""


def request_object(env: Envelope) -> Mapping[str, Any]:
    """The request payload as a JSON object; ``null`` is an empty object, as for Go.

    An empty ``msg`` is an error: ``json.Unmarshal`` of no bytes fails in Go.
    """
    if not env.message:
        raise RequestError("empty request payload")
    try:
        value = env.decode_payload()
    except DMSError as exc:
        raise RequestError(str(exc)) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"request payload is a JSON {type(value).__name__}, not an object")
    return value


def string_field(obj: Mapping[str, Any], name: str) -> str:
    """The string field ``name`` (Go's field matching, :mod:`dms.gojson`; missing or null → "")."""
    return gojson.str_value(gojson.field(obj, name), f"field {name}", error=RequestError)


# -- /public ---------------------------------------------------------------------------------


def hello_response(did: DID) -> gojson.Struct:
    """``HelloResponse{DID did.DID}``: ``{"DID":{"uri":"did:key:..."}}`` (empty DID → ``{}``)."""
    inner = gojson.Struct()
    if did.uri:
        inner["uri"] = did.uri
    return gojson.Struct(DID=inner)


def executors_payload(found: Sequence[ExecutorAvailability]) -> list[gojson.Struct]:
    """Our ``Executors`` list: ``[{"name","available","reason"}]`` (reason empty when available)."""
    return [
        gojson.Struct([("name", f.name), ("available", f.available), ("reason", f.reason)])
        for f in found
    ]


def public_status_response(
    status: str,
    resources: Any,
    location: Any = None,
    executors: Any = None,
    subnets: tuple[bool, str] | None = None,
) -> gojson.Struct:
    """``PublicStatusResponse{Status string; Resources types.Resources}`` plus ``Location``.

    ``Location`` (a ``jobtypes.Location``, ``{}`` when unset) is our addition: Go's struct has no
    such field, and Go decoders ignore unknown keys, so Go peers read the rest as before.
    """
    out = gojson.Struct(Status=status, Resources=resources)
    if location is not None:
        out["Location"] = location
    if executors is not None:
        out["Executors"] = executors
    if subnets is not None:  # ours too: can this node run subnets, and why not
        out["Subnets"] = gojson.Struct(available=subnets[0], reason=subnets[1])
    return out


# -- /dms/node/peers -------------------------------------------------------------------------


def ping_response(error: str = "", rtt_ms: int = 0) -> gojson.Struct:
    """``PingResponse{Error string; RTT int64}`` (RTT in whole milliseconds)."""
    return gojson.Struct(Error=error, RTT=int(rtt_ms))


def peers_list_response(peers: Iterable[str]) -> gojson.Struct:
    """``PeersListResponse{Peers []peer.ID}``; peer IDs marshal as their base58 strings."""
    return gojson.Struct(Peers=list(peers))


def peer_addr_info_response(peer_id: str, listen_addr: str) -> gojson.Struct:
    """``PeerAddrInfoResponse``: tagged ``{"id":..., "listen_addr":"a1, a2"}``."""
    return gojson.Struct(id=peer_id, listen_addr=listen_addr)


def connect_response(status: str = "", error: str = "") -> gojson.Struct:
    """``PeerConnectResponse{Status string; Error string}`` (Status ``"CONNECTED"``)."""
    return gojson.Struct(Status=status, Error=error)


@dataclass(frozen=True)
class DHTPeer:
    """One routing-table entry (go-libp2p-kbucket's ``PeerInfo``, exported fields only)."""

    peer_id: str
    mode: int = 0
    last_useful_at: str = ZERO_TIME
    last_successful_outbound_query_at: str = ZERO_TIME
    added_at: str = ZERO_TIME

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            Id=self.peer_id,
            Mode=self.mode,
            LastUsefulAt=self.last_useful_at,
            LastSuccessfulOutboundQueryAt=self.last_successful_outbound_query_at,
            AddedAt=self.added_at,
        )


def dht_response(peers: Sequence[DHTPeer]) -> gojson.Struct:
    """``PeerDHTResponse{Peers []kbucket.PeerInfo}``."""
    return gojson.Struct(Peers=list(peers))


@dataclass(frozen=True)
class PeerScore:
    """go-libp2p-pubsub's ``PeerScoreSnapshot`` (what ``/dms/node/peers/score`` maps to).

    ``topics`` maps a topic to its ``TopicScoreSnapshot`` fields; we have no gossipsub scoring
    yet, so it is empty and only the application-specific part is filled in.
    """

    score: float = 0.0
    topics: Mapping[str, Mapping[str, float | int]] = field(default_factory=dict)
    app_specific_score: float = 0.0
    ip_colocation_factor: float = 0.0
    behaviour_penalty: float = 0.0

    def __gojson__(self) -> gojson.Struct:
        topics = {
            name: gojson.Struct(
                TimeInMesh=int(snap.get("TimeInMesh", 0)),
                FirstMessageDeliveries=float(snap.get("FirstMessageDeliveries", 0.0)),
                MeshMessageDeliveries=float(snap.get("MeshMessageDeliveries", 0.0)),
                InvalidMessageDeliveries=float(snap.get("InvalidMessageDeliveries", 0.0)),
            )
            for name, snap in self.topics.items()
        }
        return gojson.Struct(
            Score=float(self.score),
            Topics=topics,
            AppSpecificScore=float(self.app_specific_score),
            IPColocationFactor=float(self.ip_colocation_factor),
            BehaviourPenalty=float(self.behaviour_penalty),
        )


def score_response(scores: Mapping[str, PeerScore]) -> gojson.Struct:
    """``PeerScoreResponse{Score map[string]*PeerScoreSnapshot}`` (map keys sorted, as Go)."""
    return gojson.Struct(Score=dict(scores))
