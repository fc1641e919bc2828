"""Shared plumbing for GPU probes: the reading type, running a vendor tool, small parsers.

Why: each vendor probe must degrade to "no GPUs of that vendor, because ..." rather than crash
or hang the daemon, so a missing binary, a non-zero exit, a hang (bounded by a timeout) and
unparsable output all become a :class:`ProbeUnavailable` carrying a one-line reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dms.resources._types import GPUVendor

#: seconds a vendor tool may take before we give up on it
DEFAULT_TIMEOUT = 10.0


class ProbeUnavailable(Exception):
    """A vendor probe cannot run here; ``str()`` is the reason, logged, never shown as a crash."""


@dataclass(frozen=True)
class GPUReading:
    """What one probe learnt about one GPU: identity, total VRAM and, when known, live usage."""

    vendor: GPUVendor
    model: str = ""
    pci_address: str = ""
    uuid: str = ""
    vram_total: int = 0
    vram_used: int | None = None
    utilization: float | None = None  #: percent, 0-100
    device_id: int = 0  #: the vendor tool's own device number


def run_tool(argv: list[str], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run ``argv`` and return its stdout, or raise :class:`ProbeUnavailable` saying why."""
    exe = shutil.which(argv[0])
    if exe is None:
        raise ProbeUnavailable(f"{argv[0]} not found on PATH")
    try:
        proc = subprocess.run(  # fixed argv, no shell
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeUnavailable(f"{' '.join(argv)} timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise ProbeUnavailable(f"{' '.join(argv)} cannot run: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        reason = detail[-1] if detail else ""
        raise ProbeUnavailable(f"{' '.join(argv)} exited with {proc.returncode}: {reason}")
    return proc.stdout


def load_json(text: str, tool: str) -> Any:
    """Parse JSON that may follow warning lines (ROCm tools print those on stdout)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        line = text.strip().splitlines()[0] if text.strip() else "no output"
        raise ProbeUnavailable(f"{tool}: no JSON in output ({line})")
    try:
        return json.loads(text[min(starts) :])
    except json.JSONDecodeError as exc:
        raise ProbeUnavailable(f"{tool}: invalid JSON output: {exc}") from exc


def lower_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lower-cased (vendor tools changed capitalisation across versions)."""
    return {str(k).strip().lower(): v for k, v in obj.items()}


def to_int(value: Any) -> int | None:
    """An int from ``17163091968``, ``"17163091968"``, ``"0x10"``; None for ``"N/A"``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(float(text))
    except ValueError:
        return None


def to_float(value: Any) -> float | None:
    """A float from a number or numeric string; None for ``"N/A"`` and the like."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


def normalize_pci(address: str) -> str:
    """``"00000000:01:00.0"`` → ``"0000:01:00.0"`` (Go's ``convertBusID``); others unchanged."""
    address = address.strip()
    if address.startswith("00000000:"):
        return "0000" + address[8:]
    return address
