"""Failpoints: named places where a DMS can be told to fail, for tests of crash recovery.

``DMS_FAILPOINTS=name[,name...]`` in a daemon's environment arms them (read once, at import).
Production code asks :func:`armed` at the few places where a real crash must be reproducible
to the millisecond (e.g. a provider dying between commit and allocate): no timing trick in a
test can hit such a window reliably. Unarmed, a failpoint costs one set lookup.
"""

from __future__ import annotations

import os

ENV = "DMS_FAILPOINTS"

_ARMED = frozenset(p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip())


def armed(name: str) -> bool:
    """Whether failpoint ``name`` was armed through :data:`ENV`."""
    return name in _ARMED
