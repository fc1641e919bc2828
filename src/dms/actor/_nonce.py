"""Message nonces: a per-security-context counter, as the Go DMS keeps one.

Go seeds the counter with ``time.Now().UnixNano()`` and atomically adds one per message, so
nonces from one context never repeat and keep growing across restarts (the clock moves on).
The first nonce handed out is ``seed + 1``; the CLI uses it to name its reply inbox and puts
the next one in the envelope (spec §2.4).
"""

from __future__ import annotations

import threading
import time

_UINT64_MASK = (1 << 64) - 1


class NonceSource:
    """A thread-safe uint64 counter seeded with the current time in nanoseconds."""

    def __init__(self, seed: int | None = None) -> None:
        self._value = (time.time_ns() if seed is None else seed) & _UINT64_MASK
        self._lock = threading.Lock()

    def next(self) -> int:
        """Advance the counter and return the new value (wrapping at 2**64, like Go)."""
        with self._lock:
            self._value = (self._value + 1) & _UINT64_MASK
            return self._value

    @property
    def current(self) -> int:
        """The last value handed out (the seed if none was)."""
        with self._lock:
            return self._value
