"""The onboard request the CLI sends, built and checked by the node's own rules."""

from __future__ import annotations

import json

import pytest

from dms.errors import InvalidInput
from dms.node import onboard_payload
from dms.node._onboarding import onboard_request
from dms.resources import CPU, GPU, RAM, Disk, Resources

GIB = 1024**3


def test_payload_is_gos_onboard_request() -> None:
    payload = onboard_payload("1.5", "2", "512MiB", "0:4", False)
    assert json.dumps(payload) == json.dumps(
        {
            "NoGPU": False,
            "GPUs": "0:4",
            "Config": {
                "is_onboarded": True,
                "onboarded_resources": {
                    "cpu": {"cores": 1.5},
                    "ram": {"size": 2 * GIB},
                    "disk": {"size": 512 * 1024**2},
                },
            },
        }
    )
    assert onboard_request(payload) == Resources(
        cpu=CPU(cores=1.5),
        ram=RAM(size=2 * GIB),
        disk=Disk(size=512 * 1024**2),
        gpus=(GPU(index=0, vram=4 * GIB),),
    )


def test_no_gpu_wins_and_its_gpus_are_not_parsed() -> None:
    payload = onboard_payload(1, 1, 1, "nonsense", True)
    assert (payload["NoGPU"], payload["GPUs"]) == (True, "nonsense")
    assert onboard_request(payload).gpus == ()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("x", "1", "1"), "cpu must be a number of cores, not 'x'"),
        (("1", "lots", "1"), "invalid size"),
        (("1", "1", "1", "nonsense"), "invalid GPU 'nonsense'"),
        (("1", "1", "1", "0:lots"), "invalid size"),
    ],
)
def test_bad_values_fail_with_the_nodes_messages(args: tuple[str, ...], error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        onboard_payload(*args)
