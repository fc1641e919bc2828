"""Detection on this machine: sane values, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from dms import resources
from dms.resources import (
    GPUVendor,
    Resources,
    detect_cpu,
    detect_machine,
    goarch,
    machine_usage,
    scan_gpus,
)
from dms.resources._cpu import parse_cache_size, parse_cpuinfo, sysfs_cache_size


def test_cpu_on_this_machine_is_sane() -> None:
    cpu = detect_cpu()
    assert 1 <= cpu.cores <= cpu.threads == (os.cpu_count() or cpu.threads)
    assert 1e8 < cpu.clock_speed < 1e10  # between 100 MHz and 10 GHz
    assert cpu.architecture == goarch() and cpu.architecture in {
        "amd64",
        "arm64",
        "386",
        "arm",
        "ppc64le",
        "s390x",
        "riscv64",
    }
    if Path("/proc/cpuinfo").exists():
        assert cpu.model


def test_machine_on_this_host(tmp_path: Path) -> None:
    machine = detect_machine(tmp_path / "not" / "created" / "yet", gpus=False)
    assert machine.ram.size == psutil.virtual_memory().total
    assert machine.disk.size == psutil.disk_usage(str(tmp_path)).total
    assert Resources.from_json(__import__("json").loads(machine.to_json())) == machine


def test_gpu_scan_here_never_raises() -> None:
    scan = scan_gpus()
    assert len(scan.gpus) == len(scan.readings)
    for vendor in (GPUVendor.NVIDIA, GPUVendor.AMD, GPUVendor.INTEL):
        vendor_found = any(g.vendor is vendor for g in scan.gpus)
        assert vendor_found or vendor in scan.unavailable


def test_usage_here_is_sane(tmp_path: Path) -> None:
    usage = machine_usage(tmp_path, gpus=False, cpu_interval=0.05)
    machine = detect_machine(tmp_path, gpus=False)
    assert 0 <= usage.cpu_percent <= 100
    assert 0 < usage.ram_used <= machine.ram.size
    assert 0 < usage.disk_used <= machine.disk.size
    as_res = usage.as_resources(machine)
    assert as_res.cpu.cores <= machine.cpu.cores and as_res.ram.size == usage.ram_used


def test_cpuinfo_parsing_on_this_machine_and_units() -> None:
    info = parse_cpuinfo(
        Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    )
    assert isinstance(info, dict)
    assert parse_cache_size("1024 KB") == 1024 * 1024
    assert parse_cache_size("32768K") == 32 * 1024 * 1024
    assert parse_cache_size("n/a") == 0


def test_sysfs_cache_picks_the_last_level(tmp_path: Path) -> None:
    for index, (level, size) in enumerate(
        [("1", "32K"), ("1", "32K"), ("2", "1024K"), ("3", "32768K")]
    ):
        d = tmp_path / "cache" / f"index{index}"
        d.mkdir(parents=True)
        (d / "level").write_text(level)
        (d / "size").write_text(size)
    assert sysfs_cache_size(tmp_path) == 32 * 1024 * 1024


def test_public_api_is_curated() -> None:
    assert all(not name.startswith("_") for name in resources.__all__)
    assert {
        "Resources",
        "CPU",
        "GPU",
        "RAM",
        "Disk",
        "GPUVendor",
        "Comparison",
        "add",
        "subtract",
        "compare",
        "detect_machine",
        "machine_usage",
        "parse_size",
        "format_size",
        "parse_clock",
        "format_clock",
    } <= set(resources.__all__)
