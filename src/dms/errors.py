"""One exception hierarchy for everything a user can see.

Every expected failure raises a subclass of :class:`DMSError` whose ``str()`` is a single line
the CLI prints as is (``error: <message>``) before exiting non-zero. Anything else reaching the
CLI is a bug and gets a traceback.
"""

from __future__ import annotations


class DMSError(Exception):
    """Base of all user-facing errors; the message is one line, printable as is."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()) if "\n" in message else message)


class InvalidInput(DMSError):
    """Input from a user or a peer that cannot be parsed or is out of range."""

    exit_code = 2


class CryptoError(DMSError):
    """A key, signature or encoding problem."""


class KeystoreError(DMSError):
    """The keystore cannot load or store a key (wrong passphrase, corrupt file, ...)."""


class TokenError(DMSError):
    """A capability token is malformed, forged, expired, revoked or not authorised."""


class CapabilityError(DMSError):
    """A capability context operation cannot be done (no authority, bad anchor, ...)."""


class ConfigError(DMSError):
    """The configuration is invalid or cannot be read or written."""


class NotFound(DMSError):
    """A named thing (key, context, config key, ...) does not exist."""


class NetworkError(DMSError):
    """A peer cannot be reached, a stream failed, or a message could not be delivered."""


class NetworkTimeout(NetworkError):
    """A network operation did not finish before its deadline (a slow or frozen peer)."""
