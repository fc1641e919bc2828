"""File helpers shared by every layer (standard library only, so anything may import this)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    tmp_name: str | None = None,
    keep_mode: bool = False,
) -> None:
    """Replace ``path`` with ``data`` atomically: temp file in the same directory, fsync, rename.

    The temp file is ``tmp_name`` in ``path``'s directory if given, else a fresh
    ``.<name>.<random>.tmp``; it gets ``mode`` before any data is written (with ``keep_mode``, an
    existing ``path`` keeps its own mode instead). After the rename the directory is fsynced too,
    where the platform allows it. On any failure the temp file is removed and the error
    (``OSError`` for I/O problems) propagates; ``path`` is then untouched.
    """
    if keep_mode:
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode & 0o777
    if tmp_name is None:
        fd, tmp_text = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_text)
    else:
        tmp = path.with_name(tmp_name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
