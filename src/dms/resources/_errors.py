"""Errors of resource accounting."""

from __future__ import annotations

from dms.errors import DMSError


class ResourceError(DMSError):
    """Resource arithmetic went wrong: a subtraction would go negative, a GPU is unknown..."""
