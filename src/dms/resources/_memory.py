"""RAM total and usage (psutil)."""

from __future__ import annotations

import psutil  # type: ignore[import-untyped]

from dms.resources._types import RAM


def detect_ram() -> RAM:
    """Total physical memory in bytes."""
    return RAM(size=int(psutil.virtual_memory().total))


def ram_used() -> int:
    """Bytes in use: total minus what the kernel says is available (cache counts as free)."""
    vm = psutil.virtual_memory()
    return int(vm.total - vm.available)
