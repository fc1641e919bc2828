"""AMD GPUs through ``amd-smi`` (ROCm >= 6) or, failing that, ``rocm-smi`` (deprecated).

Why the command-line tools rather than the C library: they ship with every ROCm install, their
JSON is stable enough to parse, and a hung or missing tool is easy to bound with a timeout.
Parsers take the tool's text so tests run them on real recorded output.

* ``amd-smi static --asic --bus --vram --json``: a list of per-GPU objects, or (newer releases)
  ``{"gpu_data": [...]}``; VRAM is ``{"value": N, "unit": "MB"}`` where MB means MiB.
* ``rocm-smi --showproductname --showmeminfo vram --showuse --showbus --json``:
  ``{"card0": {"Card Series": ..., "VRAM Total Memory (B)": ..., ...}, "system": {...}}``;
  the key spelling changed across versions ("Card series"/"Card Series"), so keys are matched
  case-insensitively. ``--csv`` output is parsed too.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

from dms.resources._tools import (
    DEFAULT_TIMEOUT,
    GPUReading,
    ProbeUnavailable,
    load_json,
    lower_keys,
    normalize_pci,
    run_tool,
    to_float,
    to_int,
)
from dms.resources._types import GPUVendor

log = logging.getLogger(__name__)

AMD_SMI_STATIC = ["amd-smi", "static", "--asic", "--bus", "--vram", "--json"]
ROCM_SMI = [
    "rocm-smi",
    "--showproductname",
    "--showmeminfo",
    "vram",
    "--showuse",
    "--showbus",
    "--json",
]

_UNIT_BYTES = {
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def _with_unit(value: Any) -> int | None:
    """Bytes from amd-smi's ``{"value": 65520, "unit": "MB"}`` (amd-smi's MB are MiB)."""
    if isinstance(value, Mapping):
        obj = lower_keys(value)
        number = to_float(obj.get("value"))
        unit = str(obj.get("unit", "B")).strip().lower()
        if number is None or unit not in _UNIT_BYTES:
            return None
        return int(number * _UNIT_BYTES[unit])
    return to_int(value)


def parse_amd_smi_static(text: str) -> list[GPUReading]:
    """GPUs from ``amd-smi static --json`` output (list or ``{"gpu_data": [...]}``)."""
    data = load_json(text, "amd-smi")
    if isinstance(data, Mapping):
        data = lower_keys(data).get("gpu_data", [])
    if not isinstance(data, list):
        raise ProbeUnavailable("amd-smi: unexpected JSON shape")
    readings = []
    for position, item in enumerate(data):
        if not isinstance(item, Mapping):
            continue
        gpu = lower_keys(item)
        asic = lower_keys(gpu.get("asic") or {})
        bus = lower_keys(gpu.get("bus") or {})
        vram = lower_keys(gpu.get("vram") or {})
        device_id = to_int(gpu.get("gpu"))
        readings.append(
            GPUReading(
                vendor=GPUVendor.AMD,
                model=str(asic.get("market_name") or ""),
                pci_address=normalize_pci(str(bus.get("bdf") or "")),
                uuid=str(gpu.get("uuid") or asic.get("asic_serial") or ""),
                vram_total=_with_unit(vram.get("size")) or 0,
                device_id=device_id if device_id is not None else position,
            )
        )
    return readings


def _card_number(name: str, position: int) -> int:
    digits = name.lower().removeprefix("card")
    return int(digits) if digits.isdigit() else position


def _rocm_reading(name: str, fields: Mapping[str, Any], position: int) -> GPUReading:
    obj = lower_keys(fields)
    model = str(obj.get("card series") or obj.get("device name") or obj.get("card model") or "")
    unique = str(obj.get("unique id") or "")
    return GPUReading(
        vendor=GPUVendor.AMD,
        model=model,
        pci_address=normalize_pci(str(obj.get("pci bus") or "")),
        uuid="" if unique.upper() == "N/A" else unique,
        vram_total=to_int(obj.get("vram total memory (b)")) or 0,
        vram_used=to_int(obj.get("vram total used memory (b)")),
        utilization=to_float(obj.get("gpu use (%)")),
        device_id=_card_number(name, position),
    )


def parse_rocm_smi_json(text: str) -> list[GPUReading]:
    """GPUs from ``rocm-smi ... --json``; non-card keys (``system``) are skipped."""
    data = load_json(text, "rocm-smi")
    if not isinstance(data, Mapping):
        raise ProbeUnavailable("rocm-smi: unexpected JSON shape")
    cards = [
        (k, v)
        for k, v in data.items()
        if str(k).lower().startswith("card") and isinstance(v, Mapping)
    ]
    return [_rocm_reading(name, fields, i) for i, (name, fields) in enumerate(cards)]


def parse_rocm_smi_csv(text: str) -> list[GPUReading]:
    """GPUs from ``rocm-smi ... --csv`` (header line starts with ``device``)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lower().startswith("device,")), None)
    if start is None:
        raise ProbeUnavailable("rocm-smi: no CSV header in output")
    rows = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    return [
        _rocm_reading(row.get("device", ""), row, i)
        for i, row in enumerate(rows)
        if str(row.get("device", "")).lower().startswith("card")
    ]


def probe_amd(
    run: Callable[[list[str], float], str] = run_tool,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[GPUReading]:
    """AMD GPUs from amd-smi, else rocm-smi; :class:`ProbeUnavailable` if neither works."""
    try:
        return parse_amd_smi_static(run(AMD_SMI_STATIC, timeout))
    except ProbeUnavailable as first:
        log.debug("amd-smi: %s; trying rocm-smi", first)
        try:
            return parse_rocm_smi_json(run(ROCM_SMI, timeout))
        except ProbeUnavailable as second:
            raise ProbeUnavailable(f"{first}, and {second}") from second
