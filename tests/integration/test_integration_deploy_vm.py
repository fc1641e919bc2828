"""``examples/hello-vm.yaml`` deployed through ``nunet deploy`` on a real devnet: the provider
runs the task in a QEMU micro-VM (emulated here) and the deployer gets its output and exit."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from dms import devnet
from dms.executor._vm_guest import Guest, default_guest_dir

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None,
        reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
    ),
]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    if Guest.default(default_guest_dir()).missing() is not None:
        subprocess.run([str(REPO / "scripts" / "vm-guest.sh")], check=True, timeout=600)
    network = devnet.create(tmp_path_factory.mktemp("deploy-vm") / "net", 2)
    devnet.start(network)
    try:
        devnet.onboard(network, [1])
        yield network
    finally:
        devnet.stop(network)


def test_a_vm_task_deploys_runs_and_reports_its_output(net: devnet.Devnet) -> None:
    cli = Cli(net)
    result = cli.run("deploy", "-f", str(REPO / "examples" / "hello-vm.yaml"), "-t", "3m")
    assert "is Completed" in result.stderr, result.stderr
    assert "hello from a VM on nunet" in result.stdout + result.stderr
    # The guest saw the vCPU the allocation asked for.
    assert "1 vCPU" in result.stdout + result.stderr
    # Nothing of the VM is left on the provider once the task ended and was reported.
    leftovers = subprocess.run(
        ["pgrep", "-f", f"qemu-system-x86_64.*{net.nodes[1].directory}"],
        capture_output=True,
        check=False,
    )
    assert leftovers.returncode == 1, leftovers.stdout
