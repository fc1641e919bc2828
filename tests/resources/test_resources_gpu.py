"""GPU probes on real recorded tool output (see fixtures/*.source.txt for where each came from)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from dms.resources import (
    GPU,
    GPUReading,
    GPUVendor,
    ProbeUnavailable,
    RecordedNVML,
    parse_amd_smi_static,
    parse_rocm_smi_csv,
    parse_rocm_smi_json,
    parse_xpu_discovery,
    parse_xpu_stats,
    probe_amd,
    probe_intel,
    probe_nvidia,
    scan_gpus,
)
from dms.resources._tools import run_tool

FIXTURES = Path(__file__).parent / "fixtures"
MIB = 1024**2


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_every_fixture_names_its_source() -> None:
    for path in FIXTURES.iterdir():
        if not path.name.endswith(".source.txt"):
            assert (FIXTURES / (path.name + ".source.txt")).exists(), path.name


# -- NVIDIA (NVML replay) -------------------------------------------------------------------------


def test_nvml_two_gpus() -> None:
    nvml = RecordedNVML(json.loads(fixture("nvml_2gpu.json")))
    readings = probe_nvidia(nvml)
    assert [r.model for r in readings] == ["Quadro RTX 4000", "Quadro RTX 4000"]
    assert [r.pci_address for r in readings] == ["0000:06:00.0", "0000:07:00.0"]
    assert readings[0].uuid == "GPU-c7b57be0-94ff-d352-a59b-d0ee00aeed43"
    assert readings[0].vram_total == 8192 * MIB and readings[0].vram_used == MIB
    assert readings[0].utilization == 0 and readings[1].utilization is None
    assert nvml.shut_down


def test_nvml_one_gpu() -> None:
    [reading] = probe_nvidia(RecordedNVML(json.loads(fixture("nvml_1gpu.json"))))
    assert reading.pci_address == "0000:85:00.0"
    assert reading.vram_total == 4096 * MIB and reading.vram_used == 14 * MIB


def test_nvml_zero_gpus() -> None:
    assert probe_nvidia(RecordedNVML([])) == []


def test_nvml_driver_missing_is_a_reason_not_a_crash() -> None:
    with pytest.raises(ProbeUnavailable, match="Driver Not Loaded"):
        probe_nvidia(RecordedNVML(init_error="Driver Not Loaded"))


# -- AMD ------------------------------------------------------------------------------------------


def test_amd_smi_static_one_gpu() -> None:
    [reading] = parse_amd_smi_static(fixture("amd_smi_static_mi210.json"))
    assert reading.vendor is GPUVendor.AMD
    assert reading.model == "AMD Instinct MI210"
    assert reading.vram_total == 65520 * MIB  # amd-smi's "MB" are MiB
    assert reading.pci_address == ""  # this output carries no bus.bdf
    assert reading.device_id == 0


def test_rocm_smi_json_one_gpu() -> None:
    [reading] = parse_rocm_smi_json(fixture("rocm_smi_1gpu.json"))
    assert reading.model == "Radeon RX 7900 XT"
    assert reading.vram_total == 21458059264 and reading.vram_used == 27856896
    assert reading.utilization == 0


def test_rocm_smi_csv_one_and_two_gpus() -> None:
    [one] = parse_rocm_smi_csv(fixture("rocm_smi_1gpu.csv"))
    assert one == parse_rocm_smi_json(fixture("rocm_smi_1gpu.json"))[0]
    first, second = parse_rocm_smi_csv(fixture("rocm_smi_2gpu.csv"))
    assert first.model == "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]"
    assert first.vram_total == 17163091968 and first.uuid == "0x9246____________"
    assert second.model == "Raphael" and second.vram_total == 67108864
    assert second.uuid == "" and second.device_id == 1


def test_rocm_smi_without_json_means_no_gpus() -> None:
    with pytest.raises(ProbeUnavailable, match="No JSON data to report"):
        parse_rocm_smi_json(fixture("rocm_smi_no_json.txt"))


def test_rocm_smi_warning_lines_before_json_are_skipped() -> None:
    text = "WARNING: AMD GPU device(s) is/are in a low-power state.\n" + fixture(
        "rocm_smi_1gpu.json"
    )
    assert len(parse_rocm_smi_json(text)) == 1


def test_probe_amd_falls_back_to_rocm_smi() -> None:
    calls: list[str] = []

    def run(argv: list[str], timeout: float) -> str:
        calls.append(argv[0])
        if argv[0] == "amd-smi":
            raise ProbeUnavailable("amd-smi not found on PATH")
        return fixture("rocm_smi_1gpu.json")

    assert [r.model for r in probe_amd(run)] == ["Radeon RX 7900 XT"]
    assert calls == ["amd-smi", "rocm-smi"]


# -- Intel ----------------------------------------------------------------------------------------


def _xpu_fragments() -> list[str]:
    """Each fragment of real ``xpu-smi discovery -j`` lines rebuilt into a JSON object."""
    blocks: list[list[str]] = []
    for line in fixture("xpu_smi_discovery_fragments.txt").splitlines():
        if line.startswith("# FRAGMENT"):
            blocks.append([])
        elif line.strip():
            blocks[-1].append(line.strip().rstrip(","))
    return ["{" + ",".join(block) + "}" for block in blocks]


def test_xpu_discovery_device_objects() -> None:
    head, tail = _xpu_fragments()
    [first] = parse_xpu_discovery(head)  # a single device object (discovery -d N -j shape)
    assert first.model == "Intel(R) Graphics [0xe211]"
    assert first.vram_total == 25669140480 and first.device_id == 0
    [second] = parse_xpu_discovery(tail)
    assert second.pci_address == "0000:97:00.0"
    assert second.uuid == "00000000-0000-0097-0000-0000e2118086"


def test_xpu_discovery_device_list_of_several() -> None:
    head, tail = _xpu_fragments()
    text = '{"device_list": [' + head + "," + tail + "]}"
    readings = parse_xpu_discovery(text)
    assert [r.vram_total for r in readings] == [25669140480, 25669140480]
    assert [r.device_id for r in readings] == [0, 1]


def test_xpu_without_gpus_is_a_reason() -> None:
    with pytest.raises(ProbeUnavailable, match="No GPU devices found"):
        parse_xpu_discovery(fixture("xpu_smi_no_gpu.txt"))


def test_probe_intel_asks_details_and_stats_per_device() -> None:
    head, _ = _xpu_fragments()
    listing = json.dumps(
        {"device_list": [{"device_id": 0, "device_name": "x", "device_type": "GPU"}]}
    )

    def run(argv: list[str], timeout: float) -> str:
        if argv[1:] == ["discovery", "-j"]:
            return listing
        if argv[1] == "discovery":
            return head
        raise ProbeUnavailable("xpu-smi stats: not supported")

    [reading] = probe_intel(run)
    assert reading.vram_total == 25669140480 and reading.vram_used is None


def test_xpu_stats_parser_reads_device_level_metrics() -> None:
    # shape per xpu-smi's JSON field names; no real stats sample was found (see report)
    text = json.dumps(
        {
            "device_id": 0,
            "device_level": [
                {"metrics_type": "XPUM_STATS_GPU_UTILIZATION", "value": 12},
                {"metrics_type": "XPUM_STATS_MEMORY_USED", "value": 82.5},
            ],
        }
    )
    assert parse_xpu_stats(text) == (int(82.5 * MIB), 12.0)


# -- scanning -------------------------------------------------------------------------------------


def test_scan_indexes_across_vendors_and_keeps_reasons(caplog: pytest.LogCaptureFixture) -> None:
    nvidia = json.loads(fixture("nvml_2gpu.json"))

    def broken() -> list[GPUReading]:
        raise RuntimeError("boom")

    def missing() -> list[GPUReading]:
        raise ProbeUnavailable("xpu-smi not found on PATH")

    with caplog.at_level(logging.INFO):
        scan = scan_gpus(
            {
                GPUVendor.NVIDIA: lambda: probe_nvidia(RecordedNVML(nvidia)),
                GPUVendor.AMD: lambda: parse_rocm_smi_csv(fixture("rocm_smi_2gpu.csv")),
                GPUVendor.INTEL: missing,
                GPUVendor.UNKNOWN: broken,
            }
        )
    assert [g.index for g in scan.gpus] == [0, 1, 2, 3]
    assert [g.vendor for g in scan.gpus] == [GPUVendor.NVIDIA] * 2 + [GPUVendor.AMD] * 2
    assert scan.gpus[2] == GPU(
        index=2,
        vendor=GPUVendor.AMD,
        model=scan.gpus[2].model,
        vram=17163091968,
        uuid="0x9246____________",
    )
    assert scan.unavailable[GPUVendor.INTEL] == "xpu-smi not found on PATH"
    assert "boom" in scan.unavailable[GPUVendor.UNKNOWN]
    assert "no Intel GPUs: xpu-smi not found on PATH" in caplog.text
    assert scan.reasons() == [
        "intel: xpu-smi not found on PATH",
        f"Unknown: {scan.unavailable[GPUVendor.UNKNOWN]}",
    ]


def test_no_amd_tool_is_one_reason_naming_both_tools() -> None:
    def run(argv: list[str], timeout: float) -> str:
        raise ProbeUnavailable(f"{argv[0]} not found on PATH")

    scan = scan_gpus({GPUVendor.AMD: lambda: probe_amd(run)})
    assert scan.gpus == ()
    assert scan.reasons() == ["amd: amd-smi not found on PATH, and rocm-smi not found on PATH"]


def test_missing_tool_and_hanging_tool_are_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProbeUnavailable, match="not found"):
        run_tool(["definitely-not-a-gpu-tool-xyz"])
    hang = tmp_path / "xpu-smi"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    fail = tmp_path / "amd-smi"
    fail.write_text("#!/bin/sh\necho 'ERROR: no AMD GPUs' >&2\nexit 3\n")
    fail.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.raises(ProbeUnavailable, match=r"timed out after 0\.5s"):
        run_tool(["xpu-smi", "discovery", "-j"], timeout=0.5)
    with pytest.raises(ProbeUnavailable, match="exited with 3: ERROR: no AMD GPUs"):
        run_tool(["amd-smi", "static", "--json"])
