"""Go JSON of types.Resources: exact bytes out, lenient parsing in."""

from __future__ import annotations

import json

import pytest

from dms import gojson
from dms.errors import InvalidInput
from dms.resources import CPU, GPU, RAM, Disk, GPUVendor, Resources


def _machine() -> Resources:
    return Resources(
        cpu=CPU(
            clock_speed=2.4e9,
            cores=4,
            model="AMD EPYC",
            vendor="AMD",
            threads=8,
            architecture="amd64",
            cache_size=32 * 1024 * 1024,
        ),
        gpus=(
            GPU(
                index=0,
                vendor=GPUVendor.NVIDIA,
                pci_address="0000:06:00.0",
                model="Quadro RTX 4000",
                vram=8589934592,
                uuid="GPU-c7b5",
            ),
        ),
        ram=RAM(size=16 * 1024**3),
        disk=Disk(size=500 * 10**9),
    )


def test_full_resources_bytes_follow_go_tags() -> None:
    assert _machine().to_json() == (
        b'{"cpu":{"clock_speed":2400000000,"cores":4,"model":"AMD EPYC","vendor":"AMD",'
        b'"threads":8,"architecture":"amd64","cache_size":33554432},'
        b'"gpus":[{"index":0,"vendor":"NVIDIA","pci_address":"0000:06:00.0",'
        b'"model":"Quadro RTX 4000","vram":8589934592,"uuid":"GPU-c7b5"}],'
        b'"ram":{"size":17179869184},"disk":{"size":500000000000}}'
    )


def test_omitempty_fields_and_empty_gpu_list_are_left_out() -> None:
    assert Resources().to_json() == (
        b'{"cpu":{"clock_speed":0,"cores":0},"ram":{"size":0},"disk":{"size":0}}'
    )


def test_gpu_fields_are_never_omitted() -> None:
    assert gojson.marshal(GPU()) == (
        b'{"index":0,"vendor":"Unknown","pci_address":"","model":"","vram":0,"uuid":""}'
    )


def test_ram_and_disk_extras_when_set() -> None:
    assert gojson.marshal(RAM(size=1, clock_speed=3200, type="DDR4")) == (
        b'{"size":1,"clock_speed":3200,"type":"DDR4"}'
    )
    assert gojson.marshal(Disk(size=1, type="SSD", read_speed=5)) == (
        b'{"size":1,"type":"SSD","read_speed":5}'
    )


def test_cores_are_go_float32() -> None:
    cpu = CPU(cores=0.1)
    assert cpu.cores != 0.1  # stored as the float32 nearest to 0.1
    assert gojson.marshal(cpu) == b'{"clock_speed":0,"cores":0.1}'


def test_round_trip_through_json() -> None:
    machine = _machine()
    assert Resources.from_json(json.loads(machine.to_json())) == machine


def test_parsing_is_case_insensitive_and_ignores_unknown_keys() -> None:
    parsed = Resources.from_json(
        {
            "CPU": {"Clock_Speed": 3e9, "CORES": 2.5, "Architecture": "arm64"},
            "GPUs": [{"Index": 1, "Vendor": "AMD/ATI", "VRAM": 1024}],
            "Ram": {"Size": 10},
            "disk": {"size": 20, "whatever": True},
            "ID": "from BaseDBModel",
        }
    )
    assert parsed.cpu == CPU(clock_speed=3e9, cores=2.5, architecture="arm64")
    assert parsed.gpus == (GPU(index=1, vendor=GPUVendor.AMD, vram=1024),)
    assert parsed.ram.size == 10 and parsed.disk.size == 20


def test_missing_parts_are_zero() -> None:
    assert Resources.from_json({}) == Resources()
    assert Resources.from_json({"gpus": None}) == Resources()


@pytest.mark.parametrize(
    "bad",
    [
        {"ram": {"size": -1}},
        {"ram": {"size": "4GiB"}},
        {"cpu": {"cores": True}},
        {"gpus": {"index": 0}},
        {"cpu": []},
    ],
)
def test_invalid_values_raise_invalid_input(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Resources.from_json(bad)


@pytest.mark.parametrize(
    ("text", "vendor"),
    [
        ("NVIDIA", GPUVendor.NVIDIA),
        ("nvidia corporation", GPUVendor.NVIDIA),
        ("Advanced Micro Devices, Inc. [AMD/ATI]", GPUVendor.AMD),
        ("AMD/ATI", GPUVendor.AMD),
        ("Intel(R) Corporation", GPUVendor.INTEL),
        ("None", GPUVendor.NONE),
        ("Matrox", GPUVendor.UNKNOWN),
    ],
)
def test_gpu_vendor_parse_like_go(text: str, vendor: GPUVendor) -> None:
    assert GPUVendor.parse(text) is vendor
