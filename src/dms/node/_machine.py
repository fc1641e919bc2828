"""A small machine-resources detector for ``/public/status`` (spec §9 ``types.Resources``).

Why here and this small: ``/public/status`` must answer with the machine's total resources in
the Go JSON shape now, while the full hardware module (GPUs through NVML / amd-smi / xpu-smi,
usage, onboarding checks) comes later and will replace this. So: CPU, RAM and the disk that
holds the work directory from psutil, ``/proc/cpuinfo`` and :mod:`platform`; no GPUs yet.

The JSON follows Go's tags exactly: ``{"cpu":{"clock_speed","cores","model","vendor","threads",
"architecture","cache_size"},"gpus":[...],"ram":{"size"},"disk":{"size"}}`` where the CPU's
descriptive fields and ``gpus`` are ``omitempty`` (so an empty GPU list is left out, as Go
leaves it out). ``cores`` is a Go ``float32``; sizes are bytes; the clock is in Hz.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs in the dev deps

from dms import gojson

#: Python's ``platform.machine()`` → Go's ``runtime.GOARCH`` names, which Go nodes report, so
#: that the matcher's "same architecture" rule works between Python and Go nodes.
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "386",
    "i686": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

_CACHE_UNITS = {"": 1, "b": 1, "kb": 1024, "k": 1024, "mb": 1024**2, "m": 1024**2}


@dataclass(frozen=True)
class GPU:
    """One GPU (``types.GPU``); detection arrives with the hardware module."""

    index: int
    vendor: str
    pci_address: str = ""
    model: str = ""
    vram: int = 0
    uuid: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            index=self.index,
            vendor=self.vendor,
            pci_address=self.pci_address,
            model=self.model,
            vram=self.vram,
            uuid=self.uuid,
        )


@dataclass(frozen=True)
class CPU:
    """``types.CPU``: clock in Hz, physical cores, logical threads."""

    clock_speed: float = 0.0
    cores: float = 0.0
    model: str = ""
    vendor: str = ""
    threads: int = 0
    architecture: str = ""
    cache_size: int = 0

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(clock_speed=float(self.clock_speed), cores=gojson.Float32(self.cores))
        if self.model:
            out["model"] = self.model
        if self.vendor:
            out["vendor"] = self.vendor
        if self.threads:
            out["threads"] = self.threads
        if self.architecture:
            out["architecture"] = self.architecture
        if self.cache_size:
            out["cache_size"] = self.cache_size
        return out


@dataclass(frozen=True)
class Resources:
    """``types.Resources``: what the machine has in total."""

    cpu: CPU = CPU()
    ram: int = 0
    disk: int = 0
    gpus: tuple[GPU, ...] = ()

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(cpu=self.cpu)
        if self.gpus:
            out["gpus"] = list(self.gpus)
        out["ram"] = gojson.Struct(size=self.ram)
        out["disk"] = gojson.Struct(size=self.disk)
        return out


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info.get("processor") is not None and len(info) > 1:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip().lower(), value.strip())
    return info


def _cache_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?[bB]?)\s*", text)
    if not match:
        return 0
    return int(match.group(1)) * _CACHE_UNITS.get(match.group(2).lower(), 1)


def _clock_hz(info: dict[str, str]) -> float:
    """Max clock if the kernel reports one, else the current clock, else ``cpu MHz``."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        freq = None
    if freq is not None:
        mhz = freq.max or freq.current
        if mhz:
            return float(mhz) * 1e6
    try:
        return float(info.get("cpu mhz", "0")) * 1e6
    except ValueError:
        return 0.0


def detect_cpu() -> CPU:
    """The CPU as the Go DMS describes it (physical cores, Hz, GOARCH architecture)."""
    info = _cpuinfo()
    threads = psutil.cpu_count(logical=True) or os.cpu_count() or 0
    cores = psutil.cpu_count(logical=False) or threads
    machine = platform.machine().lower()
    return CPU(
        clock_speed=_clock_hz(info),
        cores=float(cores),
        model=info.get("model name") or platform.processor() or "",
        vendor=info.get("vendor_id", ""),
        threads=threads,
        architecture=_GOARCH.get(machine, machine),
        cache_size=_cache_bytes(info.get("cache size", "")),
    )


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (the work dir may not be created yet)."""
    path = path.expanduser().absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


def detect_resources(work_dir: Path) -> Resources:
    """Total CPU, RAM and the size of the filesystem holding ``work_dir`` (blocking)."""
    return Resources(
        cpu=detect_cpu(),
        ram=int(psutil.virtual_memory().total),
        disk=int(psutil.disk_usage(str(_existing(work_dir))).total),
    )
