"""When a behaviour's reply is a refusal: the CLI exits 1 and says why on stderr.

Why: the DMS answers a refused or failed request with a normal reply whose payload reports
the failure (``{"success": false, "error": "..."}`` from onboarding, ``{"Status": "ERROR",
"Error": "..."}`` from a new deployment, ``{"OK": false}`` from a shutdown,
``{"Error": "..."}`` from a ping). Printed and exited 0, a script cannot tell. The reply is
still printed in full on stdout (``--json`` scripts keep every field); then
:func:`check_reply` raises :class:`ReplyRefused`, which ``nunet`` prints as one
``error: ...`` line on stderr before exiting 1.

The rules, on a JSON object's fields (names matched case-insensitively, as Go's
``encoding/json`` matches them): a non-empty ``error``; ``success`` false; ``ok`` false; a
``status`` of ``ERROR``, ``FAILED``, ``FAILURE``, ``REFUSED`` or ``REJECTED`` (any case).
Anything else, including a payload that is not an object, is a success.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dms.errors import DMSError

#: ``status`` values that report a failure (compared in lower case).
FAILED_STATUSES = frozenset({"error", "failed", "failure", "refused", "rejected"})


class ReplyRefused(DMSError):
    """The DMS answered, and its answer reports a failure: exit status 1."""


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return " ".join(text.split())


def reply_failure(payload: Any) -> str | None:
    """Why ``payload`` reports a failure, in one line; None when it does not."""
    if not isinstance(payload, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in payload.items():
        fields.setdefault(str(key).lower(), value)
    error = fields.get("error")
    status = fields.get("status")
    failed_status = isinstance(status, str) and status.lower() in FAILED_STATUSES
    if error not in (None, "", [], {}):
        return _text(error)
    if failed_status:
        reason = fields.get("reason")
        return f"status {status}" + (f": {_text(reason)}" if reason else "")
    if fields.get("success") is False:
        return "the request was refused (success: false)"
    if fields.get("ok") is False:
        return "the request failed (OK: false)"
    return None


def check_reply(payload: Any) -> None:
    """Raise :class:`ReplyRefused` if ``payload`` reports a failure."""
    why = reply_failure(payload)
    if why is not None:
        raise ReplyRefused(why)


def check_replies(replies: Iterable[tuple[str, Any]]) -> None:
    """For a broadcast's ``(sender, payload)`` replies: raise on the first failure, naming its
    sender and how many others failed too."""
    failures = [(sender, why) for sender, payload in replies if (why := reply_failure(payload))]
    if not failures:
        return
    sender, why = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    raise ReplyRefused(f"{sender}: {why}{more}")
