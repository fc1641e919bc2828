"""NVIDIA GPUs through NVML, behind a thin adapter so tests replay recorded values.

Why an adapter: NVML is a C library reached through ``pynvml`` (package ``nvidia-ml-py``) and
needs the NVIDIA driver; CI has neither. :class:`NVML` is the handful of calls we make,
:class:`PyNVML` implements it with ``pynvml`` (imported lazily, so the module loads everywhere)
and :class:`RecordedNVML` replays values recorded from real ``nvidia-smi``/NVML output.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dms.resources._tools import GPUReading, ProbeUnavailable, normalize_pci
from dms.resources._types import GPUVendor


@dataclass(frozen=True)
class NVMLDevice:
    """The NVML values we read for one device (bytes for memory, percent for utilisation)."""

    name: str
    uuid: str
    pci_bus_id: str
    memory_total: int
    memory_used: int
    utilization_gpu: float | None = None


class NVML(Protocol):
    """The NVML calls the probe needs."""

    def init(self) -> None:
        """``nvmlInit``; raises when the driver or library is missing."""

    def shutdown(self) -> None:
        """``nvmlShutdown``."""

    def device_count(self) -> int:
        """``nvmlDeviceGetCount``."""

    def device(self, index: int) -> NVMLDevice:
        """Name, UUID, PCI bus id, memory info and utilisation of device ``index``."""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class PyNVML:
    """:class:`NVML` over ``pynvml`` (nvidia-ml-py)."""

    def __init__(self) -> None:
        try:
            self._nv: Any = importlib.import_module("pynvml")
        except ImportError as exc:
            raise ProbeUnavailable("pynvml (nvidia-ml-py) is not installed") from exc

    def init(self) -> None:
        self._nv.nvmlInit()

    def shutdown(self) -> None:
        self._nv.nvmlShutdown()

    def device_count(self) -> int:
        return int(self._nv.nvmlDeviceGetCount())

    def device(self, index: int) -> NVMLDevice:
        nv = self._nv
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        memory = nv.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization: float | None = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nv.NVMLError:  # not supported on some boards / vGPUs
            utilization = None
        return NVMLDevice(
            name=_text(nv.nvmlDeviceGetName(handle)),
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            pci_bus_id=_text(nv.nvmlDeviceGetPciInfo(handle).busId),
            memory_total=int(memory.total),
            memory_used=int(memory.used),
            utilization_gpu=utilization,
        )


class RecordedNVML:
    """:class:`NVML` replaying recorded values; ``init_error`` simulates a missing driver."""

    def __init__(self, devices: Sequence[Mapping[str, Any]] = (), init_error: str = "") -> None:
        self._devices = [NVMLDevice(**dict(d)) for d in devices]
        self._init_error = init_error
        self.shut_down = False

    def init(self) -> None:
        if self._init_error:
            raise RuntimeError(self._init_error)

    def shutdown(self) -> None:
        self.shut_down = True

    def device_count(self) -> int:
        return len(self._devices)

    def device(self, index: int) -> NVMLDevice:
        return self._devices[index]


def probe_nvidia(nvml: NVML | None = None) -> list[GPUReading]:
    """Every NVIDIA GPU NVML reports; raises :class:`ProbeUnavailable` if NVML cannot start."""
    lib = nvml if nvml is not None else PyNVML()
    try:
        lib.init()
    except Exception as exc:  # pynvml raises NVMLError_* (LibraryNotFound, DriverNotLoaded...)
        raise ProbeUnavailable(f"NVML unavailable: {exc}") from exc
    try:
        readings = []
        for i in range(lib.device_count()):
            dev = lib.device(i)
            readings.append(
                GPUReading(
                    vendor=GPUVendor.NVIDIA,
                    model=dev.name,
                    pci_address=normalize_pci(dev.pci_bus_id),
                    uuid=dev.uuid,
                    vram_total=dev.memory_total,
                    vram_used=dev.memory_used,
                    utilization=dev.utilization_gpu,
                    device_id=i,
                )
            )
        return readings
    except Exception as exc:
        raise ProbeUnavailable(f"NVML query failed: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):  # a failed shutdown changes nothing we report
            lib.shutdown()
