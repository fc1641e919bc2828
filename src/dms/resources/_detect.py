"""Whole-machine detection: total resources and live usage.

Why one entry point: ``/public/status``, onboarding validation and the resource manager all
need "what does this machine have" and "how much is in use", built the same way. Everything
here blocks (files, psutil, vendor tools), so async callers use ``trio.to_thread.run_sync``.
GPU probes never raise: a vendor whose driver or tool is missing contributes no GPUs, and the
reason is logged and kept in :attr:`GPUScan.unavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from dms.resources._cpu import cpu_percent, detect_cpu
from dms.resources._disk import detect_disk, disk_used
from dms.resources._gpu_amd import probe_amd
from dms.resources._gpu_intel import probe_intel
from dms.resources._gpu_nvidia import probe_nvidia
from dms.resources._memory import detect_ram, ram_used
from dms.resources._tools import GPUReading, ProbeUnavailable
from dms.resources._types import CPU, GPU, RAM, Disk, GPUVendor, Resources, round_cores

log = logging.getLogger(__name__)

Probe = Callable[[], list[GPUReading]]

#: vendor probes in Go's order (NVIDIA, AMD, Intel): DMS GPU indices follow this order
DEFAULT_PROBES: Mapping[GPUVendor, Probe] = MappingProxyType(
    {
        GPUVendor.NVIDIA: probe_nvidia,
        GPUVendor.AMD: probe_amd,
        GPUVendor.INTEL: probe_intel,
    }
)


_SHORT_NAMES = {GPUVendor.NVIDIA: "nvidia", GPUVendor.AMD: "amd", GPUVendor.INTEL: "intel"}


@dataclass(frozen=True)
class GPUScan:
    """The GPUs found (DMS-indexed, with their readings) and why some vendors gave none."""

    gpus: tuple[GPU, ...] = ()
    readings: tuple[GPUReading, ...] = ()
    unavailable: Mapping[GPUVendor, str] = field(default_factory=dict)

    def reasons(self) -> list[str]:
        """Why each vendor gave no GPUs, one ``"<vendor>: <reason>"`` per vendor, probe order.

        Returned rather than only logged so the CLI can tell a user why ``gpu list`` is empty.
        """
        return [f"{_SHORT_NAMES.get(v, v.value)}: {why}" for v, why in self.unavailable.items()]


def scan_gpus(probes: Mapping[GPUVendor, Probe] | None = None) -> GPUScan:
    """Run every vendor probe; index GPUs 0..n-1 across vendors, as Go does."""
    readings: list[GPUReading] = []
    unavailable: dict[GPUVendor, str] = {}
    for vendor, probe in (probes if probes is not None else DEFAULT_PROBES).items():
        try:
            found = probe()
        except ProbeUnavailable as exc:
            log.info("no %s GPUs: %s", vendor.value, exc)
            unavailable[vendor] = str(exc)
            continue
        except Exception as exc:  # a probe bug must not take the daemon down
            log.warning("no %s GPUs: probe failed: %r", vendor.value, exc)
            unavailable[vendor] = f"probe failed: {exc!r}"
            continue
        readings.extend(found)
    gpus = tuple(
        GPU(
            index=i,
            vendor=r.vendor,
            pci_address=r.pci_address,
            model=r.model,
            vram=r.vram_total,
            uuid=r.uuid,
        )
        for i, r in enumerate(readings)
    )
    return GPUScan(gpus=gpus, readings=tuple(readings), unavailable=unavailable)


def detect_gpus(probes: Mapping[GPUVendor, Probe] | None = None) -> tuple[GPU, ...]:
    """The machine's GPUs (empty when no vendor tool or driver is present)."""
    return scan_gpus(probes).gpus


def detect_machine(
    work_dir: Path,
    *,
    gpus: bool = True,
    probes: Mapping[GPUVendor, Probe] | None = None,
) -> Resources:
    """Total CPU, RAM, disk (of ``work_dir``'s filesystem) and GPUs of this machine."""
    return Resources(
        cpu=detect_cpu(),
        gpus=detect_gpus(probes) if gpus else (),
        ram=detect_ram(),
        disk=detect_disk(work_dir),
    )


@dataclass(frozen=True)
class GPUUsage:
    """Live figures of one GPU; None where the vendor tool does not report them."""

    index: int
    vram_used: int | None = None
    utilization: float | None = None


@dataclass(frozen=True)
class Usage:
    """What is in use right now on the machine."""

    cpu_percent: float = 0.0
    ram_used: int = 0
    disk_used: int = 0
    gpus: tuple[GPUUsage, ...] = ()

    def as_resources(self, machine: Resources) -> Resources:
        """Usage in Go's ``GetUsage`` shape: cores busy, bytes used, VRAM used per GPU."""
        busy = round_cores(machine.cpu.cores * self.cpu_percent / 100.0)
        used_vram = {g.index: g.vram_used or 0 for g in self.gpus}
        return Resources(
            cpu=CPU(
                clock_speed=machine.cpu.clock_speed,
                cores=busy,
                architecture=machine.cpu.architecture,
            ),
            gpus=tuple(
                GPU(
                    index=g.index,
                    vendor=g.vendor,
                    pci_address=g.pci_address,
                    model=g.model,
                    vram=used_vram.get(g.index, 0),
                    uuid=g.uuid,
                )
                for g in machine.gpus
            ),
            ram=RAM(size=self.ram_used),
            disk=Disk(size=self.disk_used),
        )


def gpu_usage(scan: GPUScan) -> tuple[GPUUsage, ...]:
    """Per-GPU usage from a scan's readings."""
    return tuple(
        GPUUsage(index=g.index, vram_used=r.vram_used, utilization=r.utilization)
        for g, r in zip(scan.gpus, scan.readings, strict=True)
    )


def machine_usage(
    work_dir: Path,
    *,
    gpus: bool = True,
    probes: Mapping[GPUVendor, Probe] | None = None,
    cpu_interval: float = 0.2,
) -> Usage:
    """CPU %, RAM and disk used, and GPU usage where the vendor tools report it (blocking)."""
    gpu_figures: Sequence[GPUUsage] = gpu_usage(scan_gpus(probes)) if gpus else ()
    return Usage(
        cpu_percent=cpu_percent(cpu_interval),
        ram_used=ram_used(),
        disk_used=disk_used(work_dir),
        gpus=tuple(gpu_figures),
    )
