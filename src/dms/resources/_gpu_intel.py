"""Intel discrete GPUs through ``xpu-smi`` (Intel XPU Manager's CLI).

Why the CLI: it is what Intel's driver docs install, it needs no daemon, and its JSON is easy to
parse. ``xpu-smi discovery -j`` lists devices (``{"device_list": [...]}``); older releases leave
the memory size out of the list, so a device without it is asked again with
``xpu-smi discovery -d N -j`` (one flat object). ``xpu-smi stats -d N -j`` gives live usage
(``device_level`` metrics, memory in MiB). Values are often JSON strings, so numbers are parsed
leniently. Virtual functions (SR-IOV) and non-GPU devices are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
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


def parse_xpu_device(item: Mapping[str, Any], position: int = 0) -> GPUReading | None:
    """One device object of ``xpu-smi discovery`` JSON; None for VFs and non-GPU devices."""
    dev = lower_keys(item)
    if str(dev.get("device_type", "GPU")).upper() != "GPU":
        return None
    if str(dev.get("device_function_type", "physical")).lower() == "virtual":
        return None
    device_id = to_int(dev.get("device_id"))
    total = to_int(dev.get("memory_physical_size_byte"))
    if total is None:  # some releases print MiB as "memory_physical_size"
        mib = to_float(dev.get("memory_physical_size"))
        total = int(mib * 1024**2) if mib is not None else 0
    return GPUReading(
        vendor=GPUVendor.INTEL,
        model=str(dev.get("device_name") or ""),
        pci_address=normalize_pci(str(dev.get("pci_bdf_address") or "")),
        uuid=str(dev.get("uuid") or ""),
        vram_total=total,
        device_id=device_id if device_id is not None else position,
    )


def parse_xpu_discovery(text: str) -> list[GPUReading]:
    """GPUs from ``xpu-smi discovery -j`` (a ``device_list``) or ``discovery -d N -j`` (one)."""
    data = load_json(text, "xpu-smi")
    if isinstance(data, Mapping):
        obj = lower_keys(data)
        items = obj.get("device_list", [data])
    else:
        items = data
    if not isinstance(items, list):
        raise ProbeUnavailable("xpu-smi: unexpected JSON shape")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            reading = parse_xpu_device(item, i)
            if reading is not None:
                out.append(reading)
    return out


def parse_xpu_stats(text: str) -> tuple[int | None, float | None]:
    """(memory used in bytes, GPU utilisation %) from ``xpu-smi stats -d N -j``."""
    data = load_json(text, "xpu-smi stats")
    if not isinstance(data, Mapping):
        return None, None
    used: int | None = None
    util: float | None = None
    for metric in lower_keys(data).get("device_level") or []:
        if not isinstance(metric, Mapping):
            continue
        m = lower_keys(metric)
        kind = str(m.get("metrics_type", "")).upper()
        value = to_float(m.get("value"))
        if value is None:
            continue
        if kind.endswith("_MEMORY_USED"):
            used = int(value * 1024**2)  # xpu-smi reports MiB
        elif kind.endswith("_GPU_UTILIZATION"):
            util = value
    return used, util


def probe_intel(
    run: Callable[[list[str], float], str] = run_tool,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[GPUReading]:
    """Intel GPUs with memory and, where xpu-smi reports them, usage figures."""
    readings = parse_xpu_discovery(run(["xpu-smi", "discovery", "-j"], timeout))
    out = []
    for r in readings:
        reading = r
        if not reading.vram_total:
            try:
                detail = parse_xpu_discovery(
                    run(["xpu-smi", "discovery", "-d", str(r.device_id), "-j"], timeout)
                )
                if detail:
                    reading = replace(detail[0], device_id=r.device_id)
            except ProbeUnavailable as exc:
                log.info("xpu-smi discovery -d %s: %s", r.device_id, exc)
        try:
            used, util = parse_xpu_stats(
                run(["xpu-smi", "stats", "-d", str(r.device_id), "-j"], timeout)
            )
            reading = replace(reading, vram_used=used, utilization=util)
        except ProbeUnavailable as exc:
            log.info("xpu-smi stats -d %s: %s", r.device_id, exc)
        out.append(reading)
    return out
