"""Disk total and usage of the filesystem that holds the DMS work directory.

Why the work dir's filesystem: that is where volumes, images and deployment files go, so it is
the disk a provider can actually offer; the directory may not exist yet on first start, so the
nearest existing ancestor is measured.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from dms.resources._types import Disk


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing ancestor."""
    path = path.expanduser().absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


def detect_disk(work_dir: Path) -> Disk:
    """Size in bytes of the filesystem holding ``work_dir``."""
    return Disk(size=int(psutil.disk_usage(str(existing_ancestor(work_dir))).total))


def disk_used(work_dir: Path) -> int:
    """Bytes used on the filesystem holding ``work_dir``."""
    return int(psutil.disk_usage(str(existing_ancestor(work_dir))).used)
