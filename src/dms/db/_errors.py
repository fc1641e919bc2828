"""Errors of the local store, all one-line :class:`~dms.errors.DMSError` subclasses.

They live here rather than in ``dms/errors.py`` so that the storage layer owns its own failure
vocabulary; callers that only care that *something* went wrong catch ``DMSError``.
"""

from __future__ import annotations

from dms.errors import DMSError


class DatabaseError(DMSError):
    """The database cannot be opened, read or written (I/O error, locked too long, corrupt)."""


class SchemaVersionError(DatabaseError):
    """The file's schema is newer than this code, or the file was not made by nunet-dms.

    Refusing (instead of guessing) keeps a downgrade from silently corrupting data written by a
    newer release.
    """


class ConflictError(DatabaseError):
    """A write would break a repository invariant (e.g. an allocation committed twice)."""
