"""Client side of a DMS: building user-signed envelopes and relaying them over REST."""

from dms.client._message import (
    DEFAULT_TIMEOUT_S,
    UserMessage,
    build_message,
    parse_destination,
    payload_from_text,
    read_at_file,
)
from dms.client._rest import DMSUnreachable, RestClient

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DMSUnreachable",
    "RestClient",
    "UserMessage",
    "build_message",
    "parse_destination",
    "payload_from_text",
    "read_at_file",
]
