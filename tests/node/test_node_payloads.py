"""Go payload shapes and Go-like request parsing of the node behaviours (unit level)."""

from __future__ import annotations

import pytest

from dms import gojson
from dms.actor import Envelope
from dms.did import DID
from dms.node._payloads import (
    PeerScore,
    RequestError,
    connect_response,
    hello_response,
    ping_response,
    public_status_response,
    request_object,
    score_response,
    string_field,
)
from dms.resources import Resources


def env_with(message: bytes) -> Envelope:
    return Envelope(message=message)


def test_request_fields_match_case_insensitively_and_last_wins() -> None:
    obj = request_object(env_with(b'{"host":"a","HOST":"b","Other":1}'))
    assert string_field(obj, "Host") == "b"
    assert string_field(obj, "Missing") == ""
    assert string_field(request_object(env_with(b'{"Host":null}')), "Host") == ""
    assert request_object(env_with(b"null")) == {}


@pytest.mark.parametrize("message", [b"", b"[1]", b"not json", b'"x"'])
def test_bad_requests_are_refused(message: bytes) -> None:
    with pytest.raises(RequestError):
        request_object(env_with(message))


def test_wrong_field_type_is_refused() -> None:
    with pytest.raises(RequestError):
        string_field(request_object(env_with(b'{"Host":5}')), "Host")


def test_response_bytes() -> None:
    assert (
        gojson.marshal(hello_response(DID("did:key:z6Mk1"))) == b'{"DID":{"uri":"did:key:z6Mk1"}}'
    )
    assert gojson.marshal(hello_response(DID())) == b'{"DID":{}}'
    assert gojson.marshal(ping_response("boom")) == b'{"Error":"boom","RTT":0}'
    assert gojson.marshal(connect_response("CONNECTED")) == b'{"Status":"CONNECTED","Error":""}'
    assert gojson.marshal(score_response({"b": PeerScore(), "a": PeerScore(1.5, {"/t": {}})})) == (
        b'{"Score":{"a":{"Score":1.5,"Topics":{"/t":{"TimeInMesh":0,"FirstMessageDeliveries":0,'
        b'"MeshMessageDeliveries":0,"InvalidMessageDeliveries":0}},"AppSpecificScore":0,'
        b'"IPColocationFactor":0,"BehaviourPenalty":0},"b":{"Score":0,"Topics":{},'
        b'"AppSpecificScore":0,"IPColocationFactor":0,"BehaviourPenalty":0}}}'
    )


def test_status_response_wraps_go_resources() -> None:
    # the Resources JSON itself is tested byte for byte in tests/resources
    assert gojson.marshal(public_status_response("ERROR", Resources())) == (
        b'{"Status":"ERROR","Resources":{"cpu":{"clock_speed":0,"cores":0},'
        b'"ram":{"size":0},"disk":{"size":0}}}'
    )
