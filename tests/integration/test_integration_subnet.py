"""An ensemble's subnet end to end: real daemons on loopback, the real Docker engine, driven
through the CLI; checked from outside (``docker exec``, the host's links, HTTP).

A web server on one provider and a client on another: the client fetches from
``web.internal`` (the subnet's DNS at the gateway) and pings the web server's private address
over the subnet (packets cross between the two providers' DMSs over libp2p); the deploying DMS
joins the subnet (``subnet: {join: true}``), so the host reaches the web server's private
address directly; the web server's port is published on its provider. After shutdown no
subnet device is left on the host and no container of ours remains.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from dms import devnet
from dms.daemon import node_executor_id

pytestmark = pytest.mark.docker

IMAGE = "nunet-test/busybox:latest"
WEB = (
    "mkdir -p /www && echo hello over the subnet >/www/index.html && exec httpd -f -p 8080 -h /www"
)
RES = "resources: {cpu: {cores: 0.25}, ram: {size: 64MiB}, disk: {size: 0.5}}"
ENSEMBLE = f"""
version: "V1"
allocations:
  web:
    executor: docker
    type: service
    {RES}
    execution:
      type: docker
      image: {IMAGE}
      cmd: ["sh", "-c", "{WEB}"]
  client:
    executor: docker
    type: service
    {RES}
    execution:
      type: docker
      image: {IMAGE}
      cmd: ["sh", "-c", "exec sleep 2147483647"]
nodes:
  front:
    allocations: [web]
    ports: [{{public: 0, private: 8080, allocation: web}}]
  back:
    allocations: [client]
subnet: {{join: true}}
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    found = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"{IMAGE} is not built: run scripts/docker.sh")
    network = devnet.create(tmp_path_factory.mktemp("subnet") / "net", 3)
    devnet.start(network)
    try:
        devnet.onboard(network, [1, 2])
        yield network
    finally:
        devnet.stop(network)


def _subnet_links() -> list[str]:
    """Subnet devices (``nn...``) in the host's namespace."""
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [line.split(":")[1].strip() for line in out.splitlines() if ": nn" in line]


def _container(net: devnet.Devnet, alloc_id: str) -> str:
    for node in net.nodes[1:]:
        label = f"label=nunet-executor={node_executor_id(node.peer_id)}"
        listed = subprocess.run(
            ["docker", "ps", "-q", "--filter", label, "--filter", f"name={alloc_id}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
        if listed:
            return listed[0]
    raise AssertionError(f"no container for {alloc_id}")


def _all_containers(net: devnet.Devnet) -> list[str]:
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


def _until(what: str, fn: object, deadline: float) -> str:
    """``fn()``'s output once it succeeds (a new subnet may take a moment to answer)."""
    last = ""
    while time.monotonic() < deadline:
        result = fn()  # type: ignore[operator]
        if result.returncode == 0:
            return str(result.stdout)
        last = result.stderr or result.stdout
        time.sleep(0.2)
    raise AssertionError(f"{what} never worked: {last}")


def _exec(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", container, *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return str(response.read().decode())


def test_allocations_on_two_providers_talk_by_name_over_the_subnet(
    net: devnet.Devnet, tmp_path: Path
) -> None:
    cli = Cli(net)
    ensemble = tmp_path / "subnet.yaml"
    ensemble.write_text(ENSEMBLE)
    assert _subnet_links() == []
    result = cli.run("deploy", "-f", str(ensemble), "-t", "2m")
    assert "is Running" in result.stderr, result.stderr
    found = re.search(r"deployment ([0-9a-f]{64})", result.stderr)
    assert found, result.stderr
    eid = found.group(1)
    try:
        manifest = json.loads(cli.run("deployment", "manifest", eid[:12]).stdout)
        web, client = manifest["allocations"]["web"], manifest["allocations"]["client"]
        assert manifest["nodes"]["front"]["peer"] != manifest["nodes"]["back"]["peer"]
        web_ip, client_ip = ipaddress.IPv4Address(web["priv_addr"]), client["priv_addr"]
        net24 = ipaddress.IPv4Network(f"{web_ip}/24", strict=False)
        assert ipaddress.IPv4Address(client_ip) in net24 and str(web_ip) != client_ip
        assert web["dns_name"] == "web.internal"
        deadline = time.monotonic() + 30
        box = _container(net, f"{eid}_client")
        # By name, through the resolver at the gateway, across the two providers.
        body = _until(
            "wget web.internal",
            # (busybox's wget -T crashes: the exec's own timeout bounds it)
            lambda: _exec(box, "wget", "-q", "-O", "-", "http://web.internal:8080/"),
            deadline,
        )
        assert body == "hello over the subnet\n"
        _until("ping", lambda: _exec(box, "ping", "-c", "1", "-W", "2", str(web_ip)), deadline)
        # The deploying DMS joined: the host reaches the private address itself.
        assert _http(f"http://{web_ip}:8080/") == "hello over the subnet\n"
        # And the published port reaches the web server from the host.
        ((public, private),) = web["ports"].items()
        assert private == 8080
        assert _http(f"http://127.0.0.1:{public}/") == "hello over the subnet\n"
        assert len(_subnet_links()) == 1  # only the joined host's own device
    finally:
        cli.run("deployment", "shutdown", eid)
    assert _all_containers(net) == []
    deadline = time.monotonic() + 10
    while _subnet_links() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _subnet_links() == []
