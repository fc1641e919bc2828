"""CPU detection on Linux: ``/proc/cpuinfo``, sysfs and psutil.

Why these sources: ``/proc/cpuinfo`` names the model and vendor, sysfs gives the maximum clock
and the cache sizes without root, and psutil counts physical cores and logical threads on every
kernel. The architecture is reported in Go's ``GOARCH`` names (amd64, arm64...) because Go
providers send those and the matcher requires equal architectures.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from dms.resources._types import CPU

#: ``platform.machine()`` → Go's ``runtime.GOARCH``
GOARCH = {
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
    "loongarch64": "loong64",
}

_VENDORS = {"genuineintel": "Intel", "authenticamd": "AMD", "hygongenuine": "Hygon"}
_ARM_IMPLEMENTERS = {
    "0x41": "ARM",
    "0x61": "Apple",
    "0x51": "Qualcomm",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0xc0": "Ampere",
}
_SIZE_RE = re.compile(r"\s*(\d+)\s*([kKmMgG]?)[iI]?[bB]?\s*")
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def goarch(machine: str | None = None) -> str:
    """Go's name for this (or the given ``platform.machine()``) architecture."""
    name = (machine if machine is not None else platform.machine()).lower()
    return GOARCH.get(name, name)


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of ``/proc/cpuinfo`` plus the global lines (ARM puts
    ``Hardware``/``Model`` at the end), keys lower-cased."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip().lower(), value.strip())
    return info


def parse_cache_size(text: str) -> int:
    """Bytes from ``"1024 KB"`` (cpuinfo) or ``"32768K"`` (sysfs); 0 if unparsable."""
    match = _SIZE_RE.fullmatch(text)
    if not match:
        return 0
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def sysfs_cache_size(cpu_dir: Path) -> int:
    """Size of the highest-level cache of one CPU (the last-level cache, e.g. L3)."""
    best_level, best_size = -1, 0
    for index in sorted(cpu_dir.glob("cache/index*")):
        level = _read(index / "level")
        size = parse_cache_size(_read(index / "size"))
        if level.isdigit() and int(level) >= best_level and size:
            if int(level) > best_level:
                best_size = 0
            best_level = int(level)
            best_size = max(best_size, size)
    return best_size


def sysfs_max_clock_hz(cpu_dir: Path) -> float:
    """``cpufreq/cpuinfo_max_freq`` (kHz) in Hz, 0 when the kernel exposes no cpufreq."""
    text = _read(cpu_dir / "cpufreq" / "cpuinfo_max_freq")
    return float(text) * 1e3 if text.isdigit() else 0.0


def _vendor(info: dict[str, str]) -> str:
    vendor_id = info.get("vendor_id", "")
    if vendor_id:
        return _VENDORS.get(vendor_id.lower(), vendor_id)
    implementer = info.get("cpu implementer", "").lower()
    return _ARM_IMPLEMENTERS.get(implementer, "")


def detect_cpu(
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    sysfs_cpu: Path = Path("/sys/devices/system/cpu/cpu0"),
) -> CPU:
    """This machine's CPU: clock in Hz (max if known), physical cores, logical threads."""
    info = parse_cpuinfo(_read(cpuinfo_path))
    threads = int(psutil.cpu_count(logical=True) or os.cpu_count() or 0)
    cores = int(psutil.cpu_count(logical=False) or threads)
    clock = sysfs_max_clock_hz(sysfs_cpu)
    if not clock:
        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError, RuntimeError):
            freq = None
        if freq is not None:
            clock = float(freq.max or freq.current or 0.0) * 1e6
    if not clock:
        try:
            clock = float(info.get("cpu mhz", "0")) * 1e6
        except ValueError:
            clock = 0.0
    model = info.get("model name") or info.get("model") or info.get("hardware") or ""
    if model.isdigit():  # x86 "model : 2" is a number, not a name
        model = info.get("model name", "") or platform.processor()
    cache = sysfs_cache_size(sysfs_cpu) or parse_cache_size(info.get("cache size", ""))
    return CPU(
        clock_speed=clock,
        cores=float(cores),
        model=model,
        vendor=_vendor(info),
        threads=threads,
        architecture=goarch(),
        cache_size=cache,
    )


def cpu_percent(interval: float = 0.2) -> float:
    """System-wide CPU utilisation in percent over ``interval`` seconds (blocking)."""
    return float(psutil.cpu_percent(interval=interval))
