"""An ensemble's subnet end to end: real daemons on loopback, the real Docker engine, driven
through the CLI; checked from outside (``docker exec``, the host's links, HTTP).

A web server on one provider and a client on another: the client fetches from
``web.internal`` (the subnet's DNS at the gateway) and pings the web server's private address
over the subnet (packets cross between the two providers' DMSs over libp2p); the deploying DMS
joins the subnet (``subnet: {join: true}``), so the host reaches the web server's private
address directly; the web server's port is published on its provider. After shutdown no
subnet device is left on the host and no container of ours remains.

The subnet follows the ensemble: a provider SIGKILLed and restarted gives its re-adopted
allocation its address back; a web server moved to another provider (its provider lost) keeps
its address and name, and the client reaches it there.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
#: Fast supervision on the orchestrating node (node 0): a provider silent 3 s is lost.
SUPERVISION = {"job": {"liveness_interval": "0.5s", "liveness_window": "3s"}}
WAIT = 60.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    found = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"{IMAGE} is not built: run scripts/docker.sh")
    network = devnet.create(
        tmp_path_factory.mktemp("subnet") / "net", 4, node_config={0: SUPERVISION}
    )
    devnet.start(network)
    try:
        devnet.onboard(network, [1, 2, 3])
        yield network
    finally:
        devnet.stop(network)
        # A provider killed for good leaves its container (its DMS never learns it moved).
        for cid in _all_containers(network):
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _subnet_links() -> list[str]:
    """Subnet devices (``nn...``) in the host's namespace."""
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [line.split(":")[1].strip() for line in out.splitlines() if ": nn" in line]


def _container(net: devnet.Devnet, alloc_id: str, only: int | None = None) -> str:
    for index, node in enumerate(net.nodes):
        if index == 0 or only not in (None, index):
            continue
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
        # Both providers carry the packets in sealed UDP datagrams, not on the stream fallback.
        for node in ("front", "back"):
            log_path = net.nodes[_provider(net, manifest, node)].log_path
            while "go over UDP" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "go over UDP" in log_path.read_text(), node
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


# -- the subnet follows the ensemble ----------------------------------------------------------


def _deploy(cli: Cli, path: Path) -> str:
    result = cli.run("deploy", "-f", str(path), "-t", "2m")
    found = re.search(r"deployment ([0-9a-f]{64})", result.stderr)
    assert found and "is Running" in result.stderr, result.stderr
    return found.group(1)


def _manifest(cli: Cli, eid: str) -> dict[str, Any]:
    return dict(json.loads(cli.run("deployment", "manifest", eid).stdout))


def _provider(net: devnet.Devnet, manifest: dict[str, Any], node: str) -> int:
    peer = manifest["nodes"][node]["peer"]
    return next(i for i, n in enumerate(net.nodes) if n.peer_id == peer)


def _wait_status(cli: Cli, eid: str, done: Callable[[dict[str, Any]], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(cli.run("deployment", "status", eid, "--json").stdout)
        if done(status):
            return
        time.sleep(0.2)
    raise AssertionError(f"never {what}: {status}")


def _fetch_from_client(net: devnet.Devnet, eid: str) -> str:
    box = _container(net, f"{eid}_client")
    return _until(
        "wget web.internal",
        lambda: _exec(box, "wget", "-q", "-O", "-", "http://web.internal:8080/"),
        time.monotonic() + WAIT,
    )


def test_a_restarted_provider_gives_its_readopted_allocation_its_address_back(
    net: devnet.Devnet, tmp_path: Path
) -> None:
    cli = Cli(net)
    ensemble = tmp_path / "subnet.yaml"
    # failure_recovery: restart: the orchestrator waits for the provider instead of moving web.
    ensemble.write_text(ENSEMBLE.replace("  front:\n", "  front:\n    failure_recovery: restart\n"))
    eid = _deploy(cli, ensemble)
    try:
        manifest = _manifest(cli, eid)
        front = _provider(net, manifest, "front")
        web_box = _container(net, f"{eid}_web", only=front)
        assert _fetch_from_client(net, eid) == "hello over the subnet\n"
        devnet.kill(net, front)
        devnet.start(net, only=[front])
        _wait_status(
            cli,
            eid,
            lambda s: any("re-adopted" in str(e.get("message")) for e in s.get("Events") or []),
            "re-adopted",
        )
        # The same container, its address the same, reachable by name again.
        assert _container(net, f"{eid}_web", only=front) == web_box
        assert _fetch_from_client(net, eid) == "hello over the subnet\n"
        assert (
            _manifest(cli, eid)["allocations"]["web"]["priv_addr"]
            == (manifest["allocations"]["web"]["priv_addr"])
        )
    finally:
        cli.run("deployment", "shutdown", eid)


def test_a_moved_allocation_keeps_its_address_and_name(net: devnet.Devnet, tmp_path: Path) -> None:
    cli = Cli(net)
    ensemble = tmp_path / "subnet.yaml"
    ensemble.write_text(ENSEMBLE)
    eid = _deploy(cli, ensemble)
    lost = -1
    try:
        manifest = _manifest(cli, eid)
        lost = _provider(net, manifest, "front")
        address = manifest["allocations"]["web"]["priv_addr"]
        assert _fetch_from_client(net, eid) == "hello over the subnet\n"
        devnet.kill(net, lost)
        lost_peer = net.nodes[lost].peer_id
        _wait_status(
            cli,
            eid,
            lambda s: (
                s["Allocations"]["web"]["peer"] not in ("", lost_peer)
                and s["Allocations"]["web"]["status"] == "running"
            ),
            "moved",
        )
        moved = _manifest(cli, eid)
        assert _provider(net, moved, "front") not in (lost, _provider(net, moved, "back"))
        assert moved["allocations"]["web"]["priv_addr"] == address
        assert _fetch_from_client(net, eid) == "hello over the subnet\n"
    finally:
        cli.run("deployment", "shutdown", eid)
        if lost > 0:
            devnet.start(net, only=[lost])
