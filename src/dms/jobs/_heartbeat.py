"""Liveness heartbeats from an allocation to its orchestrator (``ALLOCATION_LIVENESS``).

A plain message (no reply) every interval, and one at once when something the orchestrator must
learn happens (a start, a restart, a re-adoption after a provider restart: the envelope's
``from`` is how it learns a re-adopted allocation's new handle). A heartbeat that cannot be
delivered is logged at debug level and forgotten: the next one carries the same news.

Sequence numbers increase by one per heartbeat and start from the wall clock in milliseconds,
so they also keep increasing across a provider restart (a new actor for the same allocation),
and an orchestrator that drops heartbeats older than the last one it saw never drops the
first heartbeat of a re-adopted allocation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from dms.actor import Actor, Handle
from dms.jobs._wire_supervision import ALLOCATION_LIVENESS, AllocationLiveness

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: The shortest interval honoured (seconds): an orchestrator cannot make us flood it.
MIN_LIVENESS_INTERVAL = 0.05
#: The longest a heartbeat may take to be sent (seconds).
MAX_SEND_TIMEOUT = 5.0


def liveness_interval(interval_ns: int, default: float) -> float:
    """The heartbeat interval in seconds: the orchestrator's (ns, 0 = none) or ``default``."""
    seconds = interval_ns / 1e9 if interval_ns > 0 else default
    return max(MIN_LIVENESS_INTERVAL, seconds)


class LivenessSender:
    """Sends heartbeats built by ``payload(sequence)`` to ``target()`` from ``actor``."""

    def __init__(
        self,
        actor: Actor,
        target: Callable[[], Handle],
        payload: Callable[[int], AllocationLiveness],
        interval: float,
    ) -> None:
        self.actor = actor
        self.target = target
        self.payload = payload
        self.interval = max(MIN_LIVENESS_INTERVAL, interval)
        #: The sequence number of the last heartbeat sent (or tried).
        self.sequence = time.time_ns() // 1_000_000
        self._wake = trio.Event()

    def beat_now(self) -> None:
        """Send a heartbeat as soon as the sender gets to run (coalesced with other pokes)."""
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send heartbeats until cancelled."""
        task_status.started()
        while True:
            with trio.move_on_after(self.interval):
                await self._wake.wait()
            self._wake = trio.Event()
            await self.send()

    async def send(self) -> None:
        """Send one heartbeat now, bounded in time; never raises (but Cancelled)."""
        self.sequence += 1
        timeout = min(MAX_SEND_TIMEOUT, max(1.0, self.interval))
        try:
            beat = self.payload(self.sequence)
            target = self.target()
            if target.id.empty():
                return
            with trio.fail_after(timeout):
                await self.actor.send(
                    self.actor.message(target, ALLOCATION_LIVENESS, beat, timeout=timeout)
                )
        except Exception as exc:  # a heartbeat must never end the allocation
            log.debug("heartbeat %d of %s not sent: %s", self.sequence, self.actor.inbox, exc)
