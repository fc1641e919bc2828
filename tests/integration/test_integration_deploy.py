"""Deployments end to end: real daemons on loopback, driven only through the CLI.

One devnet (node0 orchestrates; node1..node3 are onboarded providers in Germany, France and the
USA) serves the tests that leave it as they found it; the ones that need a provider to die or
a node without the deployment capability start their own.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import NUNET, Cli

from dms import devnet

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

LOCATIONS = {
    1: {"general": {"host_continent": "Europe", "host_country": "DE", "host_city": "Berlin"}},
    2: {"general": {"host_continent": "Europe", "host_country": "FR", "host_city": "Paris"}},
    3: {
        "general": {
            "host_continent": "North America",
            "host_country": "US",
            "host_city": "New York City",
        }
    },
}


@pytest.fixture(scope="module")
def deploy_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    net = devnet.create(
        tmp_path_factory.mktemp("deploy") / "net", 4, log_level="DEBUG", node_config=LOCATIONS
    )
    devnet.start(net)
    try:
        devnet.onboard(net, [1, 2, 3])
        yield net
    finally:
        devnet.stop(net)


@pytest.fixture
def dcli(deploy_net: devnet.Devnet) -> Cli:
    return Cli(deploy_net)


def _json(cli: Cli, *args: str, node: int = 0) -> Any:
    return json.loads(cli.run(*args, "--json", node=node).stdout)


def _free(cli: Cli, node: int) -> Any:
    return _json(cli, "actor", "cmd", "/dms/node/resources/free", node=node)["Resources"]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _task_yaml(nodes: dict[str, dict[str, Any]], executor: str = "wasm") -> str:
    """An ensemble with one task per node; ``nodes`` maps node name -> extra node YAML."""
    lines = ['version: "V1"', "allocations:"]
    for name in nodes:
        lines += [
            f"  {name}-task:",
            f"    executor: {executor}",
            "    type: task",
            "    resources: {cpu: {cores: 0.5}, ram: {size: 64MiB}, disk: {size: 0.1}}",
            f"    execution: {{type: wasm, module: {EXAMPLES / 'hello.wat'}, fuel: 10000000}}",
        ]
    lines.append("nodes:")
    for name, extra in nodes.items():
        lines += [f"  {name}:", f"    allocations: [{name}-task]"]
        for key, value in extra.items():
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _deploy(cli: Cli, path: Path, *extra: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return cli.run("deploy", "-f", str(path), "-t", "2m", *extra, ok=ok)


def _ensemble_id(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"deployment ([0-9a-f]{64})", result.stderr)
    assert found, result.stderr
    return found.group(1)


def test_wasm_task_ensemble_completes_on_two_providers(dcli: Cli) -> None:
    result = _deploy(dcli, EXAMPLES / "hello.yaml")
    assert result.stdout.count("hello from a WASM allocation on nunet") == 2, result
    assert "is Completed" in result.stderr
    eid = _ensemble_id(result)
    manifest = json.loads(dcli.run("deployment", "manifest", eid[:10]).stdout)
    peers = {n["peer"] for n in manifest["nodes"].values()}
    assert len(peers) == 2  # two ensemble nodes, two different providers
    providers = {n.peer_id for n in dcli.net.nodes[1:]}
    assert peers <= providers
    listed = _json(dcli, "get", "deployments")
    assert listed[eid] == "Completed"
    # the output again, for one allocation, and where the DMS wrote it
    logs = dcli.run("deployment", "logs", eid[:12], "-a", "hello1")
    assert logs.stdout == "hello from a WASM allocation on nunet\n"
    written = logs.stderr.strip().splitlines()[-1].removeprefix("logs written to ")
    assert (Path(written) / "stdout.log").read_text() == logs.stdout
    # an ended deployment can be forgotten; then it is gone from the list
    assert "pruned 1 deployments" in dcli.run("deployment", "prune", eid).stdout
    assert eid not in _json(dcli, "get", "deployments")
    gone = dcli.run("deployment", "status", eid, ok=False)
    assert gone.returncode == 1 and f"no deployment {eid}" in gone.stderr


def test_too_big_fails_fast_naming_the_resource(dcli: Cli, tmp_path: Path) -> None:
    text = _task_yaml({"big": {}}).replace("cores: 0.5", "cores: 64")
    started = time.monotonic()
    result = _deploy(dcli, _write(tmp_path, "big.yaml", text), ok=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result
    assert elapsed < 20, elapsed
    assert "failed" in result.stderr
    assert re.search(r"CPU|cores", result.stderr), result.stderr
    eid = _ensemble_id(result)
    status = dcli.run("deployment", "status", eid, ok=False)
    assert status.returncode == 1
    assert "Failed" in status.stdout and re.search(r"CPU|cores", status.stdout)


def test_location_constraint_places_only_on_matching_provider(dcli: Cli, tmp_path: Path) -> None:
    accept = {"accept": [{"continent": "Europe", "country": "FR"}]}
    result = _deploy(dcli, _write(tmp_path, "fr.yaml", _task_yaml({"n": {"location": accept}})))
    eid = _ensemble_id(result)
    manifest = json.loads(dcli.run("deployment", "manifest", eid).stdout)
    assert manifest["nodes"]["n"]["peer"] == dcli.net.nodes[2].peer_id

    nowhere = {"accept": [{"continent": "Africa", "country": "ET"}]}
    failed = _deploy(
        dcli, _write(tmp_path, "et.yaml", _task_yaml({"n": {"location": nowhere}})), ok=False
    )
    assert failed.returncode == 1
    assert "location" in failed.stderr, failed.stderr


def test_validate_then_shutdown_returns_every_resource(dcli: Cli, tmp_path: Path) -> None:
    before = {i: _free(dcli, i) for i in (1, 2, 3)}
    service = (
        '{executor: "null", type: service, execution: {type: "null", duration: 3600}, '
        "resources: {cpu: {cores: 0.5}, ram: {size: 64MiB}, disk: {size: 0.1}}}"
    )
    text = (
        'version: "V1"\n'
        f"allocations:\n  a: {service}\n  b: {service}\n"
        "nodes:\n  one: {allocations: [a]}\n  two: {allocations: [b]}\n"
    )
    path = _write(tmp_path, "svc.yaml", text)
    dcli.run("validate", str(path))
    result = _deploy(dcli, path)
    assert "is Running" in result.stderr
    eid = _ensemble_id(result)
    manifest = json.loads(dcli.run("deployment", "manifest", eid).stdout)
    assert manifest["nodes"]["one"]["peer"] != manifest["nodes"]["two"]["peer"]
    during = {i: _free(dcli, i) for i in (1, 2, 3)}
    assert during != before
    # a running deployment cannot be pruned: one clear line, and it still runs
    refused = dcli.run("deployment", "prune", eid, ok=False)
    assert refused.returncode == 1 and "shut it down first" in refused.stderr, refused
    assert _json(dcli, "get", "deployments")[eid] == "Running"
    dcli.run("deployment", "shutdown", eid[:16])
    after = {i: _free(dcli, i) for i in (1, 2, 3)}
    assert after == before
    assert _json(dcli, "get", "deployments")[eid] == "Completed"


@pytest.mark.docker
def test_docker_task_ensemble_completes(dcli: Cli) -> None:
    result = _deploy(dcli, EXAMPLES / "hello-docker.yaml")
    assert "hello from a container on nunet" in result.stdout, result
    assert "is Completed" in result.stderr


def test_provider_dying_between_commit_and_allocate_is_replaced(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """node1 offers the most headroom, so the matcher ranks it first; a failpoint makes its
    process exit when the allocate request arrives (after its commit): the orchestrator reverts,
    excludes it, and places the node on node2."""
    net = devnet.create(tmp_path_factory.mktemp("dying") / "net", 3, log_level="DEBUG")
    devnet.start(net, node_env={1: {"DMS_FAILPOINTS": "provider-exit-before-allocate"}})
    try:
        devnet.onboard(net, [1], cpu=2)
        devnet.onboard(net, [2], cpu=1)
        cli = Cli(net)
        result = _deploy(cli, _write(tmp_path, "t.yaml", _task_yaml({"only": {}})))
        assert "commit failed" in result.stderr, result.stderr
        eid = _ensemble_id(result)
        manifest = json.loads(cli.run("deployment", "manifest", eid).stdout)
        assert manifest["nodes"]["only"]["peer"] == net.nodes[2].peer_id
        assert "is Completed" in result.stderr
    finally:
        devnet.stop(net)


def test_orchestrator_without_deployment_capability_commits_nothing(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    net = devnet.create(
        tmp_path_factory.mktemp("nocap") / "net",
        2,
        log_level="DEBUG",
        node_caps={0: ("/public", "/broadcast")},
    )
    devnet.start(net)
    try:
        devnet.onboard(net, [1])
        cli = Cli(net)
        before = _free(cli, 1)
        path = _write(tmp_path, "t.yaml", _task_yaml({"n": {}}))
        result = cli.run("deploy", "-f", str(path), "-t", "75s", ok=False)
        assert result.returncode == 1, result
        assert _free(cli, 1) == before
        allocations = _json(cli, "get", "allocations", node=1)
        assert allocations == []
    finally:
        devnet.stop(net)


def test_devnet_up_onboard_makes_providers(tmp_path: Path) -> None:
    """`nunet devnet up --onboard`, as the README's main job types it: node0 orchestrates,
    the others are onboarded providers."""
    base = tmp_path / "net"
    up = subprocess.run(
        [NUNET, "devnet", "up", "--nodes", "2", "--onboard", "--dir", str(base)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    net = devnet.Devnet.load(base)
    try:
        assert up.returncode == 0, up.stderr
        assert "onboarding node1..node1" in up.stderr
        cli = Cli(net)
        assert _json(cli, "actor", "cmd", "/dms/node/onboarding/status", node=1)["onboarded"]
        assert not _json(cli, "actor", "cmd", "/dms/node/onboarding/status", node=0)["onboarded"]
    finally:
        devnet.stop(net)
