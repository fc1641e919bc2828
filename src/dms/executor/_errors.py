"""Errors an executor raises; each is one printable line (see :mod:`dms.errors`)."""

from __future__ import annotations

from dms.errors import DMSError, InvalidInput, NotFound


class ExecutorError(DMSError):
    """An execution could not be started, observed or stopped."""


class InvalidSpec(ExecutorError, InvalidInput):
    """An execution spec (``SpecConfig``) is malformed or asks for something not allowed."""


class ExecutionNotFound(ExecutorError, NotFound):
    """No execution with that ID is known to this executor."""


class ExecutionExists(ExecutorError):
    """An execution with that ID was already started by this executor."""


class ExecutorUnavailable(ExecutorError):
    """The executor cannot run on this machine (no engine, no runtime); the message says why."""


class ImageUnavailable(ExecutorError):
    """The image or module an execution needs is absent and cannot be fetched."""


class Unsupported(ExecutorError):
    """The executor has no such operation (e.g. ``exec`` into a WASM module)."""
