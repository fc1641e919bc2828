"""OpenAPI descriptions of the Go wire structs, for ``/docs``.

Routes read the raw body (a size cap and Go's strict decoder must see the bytes, which a
pydantic body model would not allow), so the request and response schemas are written out here
by hand from spec §2.1 instead of being derived from models.
"""

from __future__ import annotations

from typing import Any

_BASE64 = {"type": "string", "format": "byte", "description": "standard base64, padded"}

ADDRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "description": "libp2p peer ID of the actor's host"},
        "inbox": {"type": "string", "description": "actor inbox (the node actor's is root)"},
    },
}

HANDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Handle",
    "description": "Who an actor is (id, did) and where its inbox lives (addr).",
    "properties": {
        "id": {
            "type": "object",
            "properties": {
                "pub": {
                    "type": "string",
                    "description": "base32 (padded) of the protobuf-marshalled public key",
                }
            },
        },
        "did": {"type": "object", "properties": {"uri": {"type": "string"}}},
        "addr": ADDRESS_SCHEMA,
    },
    "required": ["id", "did", "addr"],
}

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Envelope",
    "description": (
        "A signed actor message in the Go DMS's JSON form. The server re-encodes it with Go's "
        "json.Marshal rules before relaying, so only Go-canonical envelopes keep a valid sig."
    ),
    "properties": {
        "to": HANDLE_SCHEMA,
        "be": {"type": "string", "description": "behavior name"},
        "from": HANDLE_SCHEMA,
        "nonce": {"type": "integer", "format": "uint64"},
        "opt": {
            "type": "object",
            "properties": {
                "exp": {"type": "integer", "format": "uint64", "description": "Unix ns"},
                "cont": {"type": "string", "description": "behavior the reply goes to"},
                "topic": {"type": "string", "description": "gossip topic (broadcasts)"},
            },
        },
        "msg": {**_BASE64, "description": "base64 of the payload JSON"},
        "cap": {**_BASE64, "description": "base64 of the capability token list JSON"},
        "sig": {**_BASE64, "description": "base64 of the signature"},
    },
    "required": ["to", "be", "from", "nonce", "opt", "msg"],
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "properties": {"error": {"type": "string", "description": "one-line message"}},
    "required": ["error"],
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``content`` map for a JSON body with ``schema``."""
    return {"application/json": {"schema": schema}}


def envelope_request_body() -> dict[str, Any]:
    """``openapi_extra`` documenting a required Envelope request body."""
    return {"requestBody": {"required": True, "content": json_content(ENVELOPE_SCHEMA)}}


def error(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for an ``{"error": ...}`` body."""
    return {"description": description, "content": json_content(ERROR_SCHEMA)}
