"""Errors the actor layer raises to its callers (node behaviours, REST, CLI).

They derive from the :mod:`dms.errors` hierarchy so the CLI prints them as one line; a timed-out
invocation is a :class:`~dms.errors.NetworkTimeout` because to the user it looks like a peer
that did not answer in time.
"""

from __future__ import annotations

from dms.errors import DMSError, NetworkError, NetworkTimeout


class ActorError(DMSError):
    """An actor operation cannot be done (not running, nothing to reply to, ...)."""


class ActorNotRunning(ActorError):
    """The actor's :meth:`~dms.actor.Actor.run` is not active, so it cannot receive replies."""


class InvokeTimeout(NetworkTimeout):
    """No reply arrived before the invocation's deadline (the message expiry)."""


class SendError(NetworkError):
    """An envelope could not be handed to the network."""
