"""A Docker service ensemble end to end: real daemons on loopback and the real Docker engine,
driven only through the CLI.

``examples/web-and-cache.yaml`` puts a web server and a cache on two providers; the web server's
container port 8080 is published on a public port its provider picks at commit. The test finds
that port where a user would (the deployment's manifest, and ``nunet get allocations`` on the
provider), fetches the page through it, shuts the deployment down and checks that every
provider is back to exactly what it had free and that no container of ours is left.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import Cli

from dms import devnet
from dms.daemon import node_executor_id

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
IMAGE = "nunet-test/busybox:latest"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    found = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False, timeout=30
    )
    if found.returncode != 0:
        pytest.fail(f"{IMAGE} is not built: run scripts/docker.sh")
    network = devnet.create(tmp_path_factory.mktemp("deploy-docker") / "net", 3)
    devnet.start(network)
    try:
        devnet.onboard(network, [1, 2])
        yield network
    finally:
        devnet.stop(network)


def _json(cli: Cli, *args: str, node: int = 0) -> Any:
    return json.loads(cli.run(*args, "--json", node=node).stdout)


def _free(cli: Cli, node: int) -> Any:
    return _json(cli, "actor", "cmd", "/dms/node/resources/free", node=node)["Resources"]


def _containers(net: devnet.Devnet) -> list[str]:
    """Containers (running or not) created by the providers' executors."""
    names: list[str] = []
    for node in net.nodes[1:]:
        label = f"label=nunet-executor={node_executor_id(node.peer_id)}"
        listed = subprocess.run(
            ["docker", "ps", "-a", "-q", "--filter", label],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        names += listed.stdout.split()
    return names


def _page(port: int, deadline: float) -> str:
    """The web server's answer on ``port`` (it may take a moment to listen)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_web_and_cache_serve_on_the_leased_port_and_shut_down_clean(net: devnet.Devnet) -> None:
    cli = Cli(net)
    before = {i: _free(cli, i) for i in (1, 2)}
    result = cli.run("deploy", "-f", str(REPO / "examples" / "web-and-cache.yaml"), "-t", "2m")
    assert "is Running" in result.stderr, result.stderr
    found = re.search(r"deployment ([0-9a-f]{64})", result.stderr)
    assert found, result.stderr
    eid = found.group(1)
    try:
        manifest = json.loads(cli.run("deployment", "manifest", eid[:12]).stdout)
        front, back = manifest["nodes"]["front"], manifest["nodes"]["back"]
        assert front["peer"] != back["peer"]
        provider = next(i for i in (1, 2) if net.nodes[i].peer_id == front["peer"])
        web = manifest["allocations"]["web"]
        ((public, private),) = web["ports"].items()
        assert private == 8080 and int(public) != 0
        assert "ports" not in manifest["allocations"]["cache"]
        # The provider reports the same lease for the allocation it runs.
        allocations = _json(cli, "get", "allocations", node=provider)
        (listed,) = [a for a in allocations if a["name"] == "web"]
        assert listed["ports"] == {public: 8080} and listed["status"] == "running"
        # The page came from the cache, on the other provider, by name over the subnet.
        page = _page(int(public), time.monotonic() + 20)
        assert page == "hello from the cache, over the subnet\n"
        assert len(_containers(net)) == 2
    finally:
        cli.run("deployment", "shutdown", eid)
    assert {i: _free(cli, i) for i in (1, 2)} == before
    assert _containers(net) == []
