"""A deployment's events: what happened to it and to its allocations, when and why.

Events are kept by the orchestrator, stored in the deployment record's snapshot, served by
``/dms/node/deployment/{status,events}`` and written to the DMS log (one JSON line each). Their
JSON is ``{time, message, kind, subject, status, reason}`` with the empty ones left out; records
written before events had kinds hold only ``{time, message}`` and still decode (their kind is
then read off the message, see :func:`_classify`).

Kinds:

* ``deployment``: the deployment's status changed (``status`` is its Go label);
* ``allocation``: an allocation's state changed (started, ended, restarted, unhealthy, ...);
  ``subject`` is the allocation's name;
* ``node``: a provider's liveness changed (lost, back); ``subject`` is the ensemble node;
* ``progress``: everything else (bids asked and received, placement, commit...).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from dms import gojson
from dms.orchestrator._status import DeploymentStatus

DEPLOYMENT: Final = "deployment"
ALLOCATION: Final = "allocation"
NODE: Final = "node"
PROGRESS: Final = "progress"
EVENT_KINDS: Final = (DEPLOYMENT, ALLOCATION, NODE, PROGRESS)

#: The logger every event is written to (one JSON object per line: see :func:`log_event`).
EVENTS_LOGGER: Final = "dms.events"

_log = logging.getLogger(EVENTS_LOGGER)
_LABELS = {s.label: s for s in DeploymentStatus}
#: The allocation messages the orchestrator wrote before events had kinds.
_ALLOC_STARTED = re.compile(r"allocation (\S+) started$")
_ALLOC_ENDED = re.compile(r"allocation (\S+) ended(?:: (.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Event:
    """One thing that happened to a deployment, for ``nunet deployment events|status`` and logs.

    ``kind`` left empty (events built the old way, ``Event(time_ns, message)``) is classified
    from the message, so old records and new ones read the same.
    """

    time_ns: int
    message: str
    kind: str = ""
    subject: str = ""
    status: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            kind, subject, status, reason = _classify(self.message)
            object.__setattr__(self, "kind", kind)
            object.__setattr__(self, "subject", self.subject or subject)
            object.__setattr__(self, "status", self.status or status)
            object.__setattr__(self, "reason", self.reason or reason)

    @classmethod
    def now(
        cls,
        message: str,
        *,
        kind: str = PROGRESS,
        subject: str = "",
        status: str = "",
        reason: str = "",
    ) -> Event:
        """An event that happens now (wall-clock ns, as Go's ``time.Now().UnixNano()``)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        return cls(time.time_ns(), message, kind, subject, status, reason)

    @classmethod
    def from_json(cls, obj: Any) -> Event:
        """Decode an event leniently: any key case, missing fields empty, unknown kinds kept
        (a newer DMS may add some); a non-object is an event with its text as the message."""
        if not isinstance(obj, Mapping):
            return cls(0, "" if obj is None else str(obj))
        folded = gojson.folded(obj, "event")
        return cls(
            _int(folded.get("time")),
            _text(folded.get("message")),
            _text(folded.get("kind")),
            _text(folded.get("subject")),
            _text(folded.get("status")),
            _text(folded.get("reason")),
        )

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (``time`` and ``message`` always; the rest when set)."""
        out: dict[str, Any] = {"time": self.time_ns, "message": self.message}
        for key in ("kind", "subject", "status", "reason"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(self.to_json())


def log_event(deployment_id: str, event: Event) -> None:
    """Write ``event`` to the ``dms.events`` logger as one line.

    The message is the event's JSON with the deployment ID first, so any handler (the daemon's
    stderr, which ``devnet`` and service managers keep as the DMS log) renders it whole; the
    same fields ride on the record (``deployment_id``, ``event``) for a structured handler.
    """
    if not _log.isEnabledFor(logging.INFO):
        return
    fields = {"deployment_id": deployment_id, **event.to_json()}
    line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    _log.info("%s", line, extra={"deployment_id": deployment_id, "event": event.to_json()})


def _classify(message: str) -> tuple[str, str, str, str]:
    """``(kind, subject, status, reason)`` of a message written before events had kinds."""
    label, sep, rest = message.partition(": ")
    if label in _LABELS and (sep or label == message):
        return DEPLOYMENT, "", label, rest
    found = _ALLOC_STARTED.match(message)
    if found:
        return ALLOCATION, found.group(1), "started", ""
    found = _ALLOC_ENDED.match(message)
    if found:
        return ALLOCATION, found.group(1), "ended", found.group(2) or ""
    return PROGRESS, "", "", ""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return 0
    return 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
