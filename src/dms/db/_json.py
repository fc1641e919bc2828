"""Checks for the JSON text columns.

Shapes such as ``Resources`` or a manifest belong to higher layers, so the store keeps them as JSON
text and never imports those models. It still refuses text that is not JSON at write time: a bad
value found at write time names its caller, one found after a restart names nobody.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from dms.errors import InvalidInput

Clock = Callable[[], int]
"""Returns the current time in Unix nanoseconds (``time.time_ns``), like the rest of the DMS."""


def check_json(text: str, what: str) -> str:
    """Return ``text`` if it is one JSON document, else raise :class:`InvalidInput`."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be JSON text, got {type(text).__name__}")
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    return text
