"""A VM on its ensemble's subnet, end to end: real daemons on loopback, the real Docker engine
and real QEMU (emulated here), driven through ``nunet deploy``.

A busybox ``httpd`` in a container on one provider, and a task in a micro-VM on another that
fetches ``http://web.internal:8080/`` and prints the body: the VM's frames go to its provider's
DMS (``-netdev dgram``), its packets cross to the other provider over libp2p, ``web.internal``
resolves at the gateway. The web server ends once it served a page, so both are tasks and
``nunet deploy`` waits for Completed and prints the VM's output. Afterwards nothing is left:
no QEMU, no container, no subnet device on the host.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from dms import devnet
from dms.daemon import node_executor_id
from dms.executor._vm_guest import default_guest_dir

REPO = Path(__file__).resolve().parents[2]
IMAGE = "nunet-test/busybox:latest"
BODY = "hello from a container, fetched by a VM over the subnet"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None,
        reason="qemu-system-x86_64 is not installed (scripts/vm-guest.sh installs it)",
    ),
]

# The server stops (exit 0) once it answered one request: `-v` logs "response:200".
WEB = (
    f"mkdir -p /www && echo {BODY} >/www/index.html && "
    "(httpd -f -v -p 8080 -h /www 2>/tmp/log &) && i=0 && "
    "until grep -q response:200 /tmp/log 2>/dev/null || [ $i -ge 900 ]; "
    "do sleep 0.2; i=$((i + 1)); done; sleep 1; grep -q response:200 /tmp/log"
)
# The VM may boot before the server listens: try for a while.
FETCH = (
    "i=0; until wget -q -O - http://web.internal:8080/; do i=$((i + 1)); "
    "[ $i -ge 60 ] && exit 1; sleep 1; done"
)
ENSEMBLE = f"""
version: "V1"
allocations:
  web:
    executor: docker
    type: task
    resources: {{cpu: {{cores: 0.25}}, ram: {{size: 64MiB}}, disk: {{size: 0.5}}}}
    execution:
      type: docker
      image: {IMAGE}
      cmd: ["sh", "-c", "{WEB}"]
  fetch:
    executor: vm
    type: task
    resources: {{cpu: {{cores: 1}}, ram: {{size: 128MiB}}, disk: {{size: 0.1}}}}
    execution:
      type: vm
      command: '{FETCH}'
      timeout: 180
nodes:
  front:
    allocations: [web]
  back:
    allocations: [fetch]
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    found = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"{IMAGE} is not built: run scripts/docker.sh")
    # The guest needs its network modules (format 3): the script rebuilds an older one.
    subprocess.run(
        [str(REPO / "scripts" / "vm-guest.sh"), str(default_guest_dir())],
        check=True,
        capture_output=True,
        timeout=600,
    )
    network = devnet.create(tmp_path_factory.mktemp("subnet-vm") / "net", 3)
    devnet.start(network)
    try:
        devnet.onboard(network, [1, 2])
        yield network
    finally:
        devnet.stop(network)
        for cid in _containers(network):
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _containers(net: devnet.Devnet) -> list[str]:
    names: list[str] = []
    for node in net.nodes[1:]:
        label = f"label=nunet-executor={node_executor_id(node.peer_id)}"
        names += subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", label],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    return names


def _subnet_links() -> list[str]:
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [line.split(":")[1].strip() for line in out.splitlines() if ": nn" in line]


def test_a_vm_task_fetches_from_a_container_by_name_over_the_subnet(net: devnet.Devnet) -> None:
    cli = Cli(net)
    ensemble = Path(net.base) / "subnet-vm.yaml"
    ensemble.write_text(ENSEMBLE)
    result = cli.run("deploy", "-f", str(ensemble), "-t", "4m")
    output = result.stdout + result.stderr
    assert "is Completed" in result.stderr, output
    # The headings go to stderr, the outputs to stdout; the web task prints nothing.
    assert "== fetch: stdout" in result.stderr, output
    assert result.stdout.strip() == BODY, output
    eid = re.search(r"deployment ([0-9a-f]{64})", result.stderr)
    assert eid, result.stderr
    manifest = cli.run("deployment", "manifest", eid.group(1)[:12]).stdout
    peers = re.findall(r'"peer": "([^"]+)"', manifest)
    assert len(set(peers)) >= 2, manifest  # two providers
    # Nothing left: no QEMU of the providers, no container, no subnet device.
    for node in net.nodes[1:]:
        leftover = subprocess.run(
            ["pgrep", "-f", f"qemu-system-x86_64.*{node.directory}"],
            capture_output=True,
            check=False,
        )
        assert leftover.returncode == 1, leftover.stdout
    assert _subnet_links() == []
