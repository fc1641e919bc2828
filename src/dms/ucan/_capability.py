"""Capabilities: slash-separated paths where a parent path grants everything below it.

Kept as plain ``str`` (a ``NewType``) because tokens carry them verbatim: the signature covers the
exact string, so a token from a Go peer must round-trip whatever it holds. Validation applies only
to capabilities *we* put into new tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NewType

from dms.errors import InvalidInput

Capability = NewType("Capability", str)

#: The root capability: implies every other one.
ROOT = Capability("/")


def implies(c: str, o: str) -> bool:
    """True if holding ``c`` grants ``o``: equal, ``c`` is the root, or ``o`` lies below ``c``."""
    return c in (o, "/") or o.startswith(c + "/")


def implied_by_any(held: Iterable[str], wanted: str) -> bool:
    """True if some capability in ``held`` implies ``wanted``."""
    return any(implies(c, wanted) for c in held)


def capability(text: str) -> Capability:
    """Validate ``text`` as a capability (or topic): it must start with ``/`` and hold no spaces."""
    if not text.startswith("/"):
        raise InvalidInput(f"invalid capability {text!r}: must start with '/'")
    if any(ch.isspace() for ch in text):
        raise InvalidInput(f"invalid capability {text!r}: must not contain whitespace")
    return Capability(text)


def capabilities(texts: Iterable[str]) -> tuple[Capability, ...]:
    """Validate each of ``texts`` (see :func:`capability`)."""
    return tuple(capability(t) for t in texts)
