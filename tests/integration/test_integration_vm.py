"""``nunet actor cmd /dms/node/vm/...`` against a real daemon, on real QEMU (one boot)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from dms.executor._vm_guest import Guest, default_guest_dir

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None,
        reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
    ),
]


def test_start_list_and_stop_a_vm_through_the_cli(cli: Cli) -> None:
    if Guest.default(default_guest_dir()).missing() is not None:
        subprocess.run([str(REPO / "scripts" / "vm-guest.sh")], check=True)
    cmd = ("actor", "cmd")
    started = cli.run(
        *cmd,
        "/dms/node/vm/start/custom",
        "--cpu",
        "1",
        "--memory",
        "128",
        "--command",
        "echo cli-vm; sleep 600",
        "--json",
    )
    reply = json.loads(started.stdout)
    assert reply["Error"] == ""
    vm_id = reply["ExecutionID"]
    console = Path(cli.net.nodes[0].directory) / "work" / "executions" / vm_id / "console.log"
    deadline = time.monotonic() + 60
    while b"cli-vm" not in console.read_bytes():
        assert time.monotonic() < deadline, "the VM did not run its command"
        time.sleep(0.1)

    listed = json.loads(cli.run(*cmd, "/dms/node/vm/list", "--json").stdout)
    assert [(vm["ExecutionID"], vm["Running"], vm["Memory"]) for vm in listed["VMS"]] == [
        (vm_id, True, 128 << 20)
    ]
    stopped = cli.run(*cmd, "/dms/node/vm/stop", "--id", vm_id, "--json")
    assert json.loads(stopped.stdout) == {"Error": ""}
    assert json.loads(cli.run(*cmd, "/dms/node/vm/list", "--json").stdout)["VMS"] == []
    # A failure is the reply's error and a non-zero exit.
    cli.fails(*cmd, "/dms/node/vm/stop", "--id", vm_id, match="no VM")
    cli.fails(*cmd, "/dms/node/vm/start/custom", "--memory", "lots", match="--memory must be")
