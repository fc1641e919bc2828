"""Keeping deployments alive, end to end: real daemons on loopback, a real Docker engine, faults
injected from outside as an operator would cause them (``docker kill``, SIGKILL of a daemon),
state checked only through the CLI (``nunet deployment status|events|manifest``, ``nunet get
allocations``, ``/dms/node/resources/free``) and the Docker engine's own view.

node0 orchestrates with short supervision timings (heartbeats every 0.5 s, a provider silent
for 3 s is lost); node1..node3 are onboarded providers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import Cli

from dms import devnet

pytestmark = pytest.mark.docker

IMAGE = "nunet-test/busybox:latest"
SUPERVISION = {
    "job": {
        "liveness_interval": "0.5s",
        "liveness_window": "3s",
        "restart_backoff": "0.2s",
        "restart_backoff_max": "1s",
        "healthcheck_timeout": "3s",
    }
}
#: How long a state may take to appear (several daemons and Docker share 2 cores).
WAIT = 60.0


def _docker_ok() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    if not _docker_ok():
        pytest.fail("these tests need a running Docker engine (scripts/docker.sh starts one)")
    network = devnet.create(
        tmp_path_factory.mktemp("supervise") / "net",
        4,
        log_level="DEBUG",
        node_config={0: SUPERVISION},
    )
    devnet.start(network)
    try:
        devnet.onboard(network, [1, 2, 3])
        yield network
    finally:
        devnet.stop(network)
        _remove_containers(network)


@pytest.fixture
def cli(net: devnet.Devnet) -> Cli:
    return Cli(net)


# -- helpers ----------------------------------------------------------------------------------


def _executor_label(net: devnet.Devnet, index: int) -> str:
    return f"nunet-executor=dms-{net.nodes[index].peer_id[-12:]}"


def _containers(net: devnet.Devnet, index: int, *, all_: bool = False) -> dict[str, str]:
    """Execution ID -> container ID of the containers node ``index``'s executor labelled."""
    args = ["docker", "ps", "-q", "--filter", f"label={_executor_label(net, index)}"]
    if all_:
        args.append("-a")
    ids = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    out: dict[str, str] = {}
    for cid in ids:
        label = subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "nunet-execution-id"}}', cid],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if label:
            out[label] = cid
    return out


def _remove_containers(net: devnet.Devnet) -> None:
    for index in range(len(net.nodes)):
        for cid in _containers(net, index, all_=True).values():
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ensemble.yaml"
    path.write_text(text)
    return path


def _service(cmd: str, extra: str = "", node_extra: str = "") -> str:
    return f"""version: "V1"
allocations:
  web:
    executor: docker
    type: service
    resources: {{cpu: {{cores: 0.5}}, ram: {{size: 64MiB}}, disk: {{size: 0.1}}}}
    execution: {{type: docker, image: "{IMAGE}", cmd: ["sh", "-c", {json.dumps(cmd)}]}}
{extra}nodes:
  node1:
    allocations: [web]
{node_extra}"""


def _deploy(cli: Cli, path: Path) -> str:
    result = cli.run("deploy", "-f", str(path), "-t", "3m", "-d")
    found = re.search(r"[0-9a-f]{64}", result.stdout + result.stderr)
    assert found, result
    eid = found.group(0)
    _wait(cli, eid, lambda s: s["Status"] == "Running", "Running")
    return eid


def _status(cli: Cli, eid: str) -> dict[str, Any]:
    return dict(json.loads(cli.run("deployment", "status", eid, "--json").stdout))


def _wait(
    cli: Cli, eid: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = _status(cli, eid)
        if done(status):
            return status
        assert status["Status"] not in ("Failed", "Completed") or what in (
            "Failed",
            "Completed",
        ), (what, status)
        time.sleep(0.2)
    raise AssertionError(f"deployment {eid[:12]} never reached {what}: {status}")


def _messages(status: dict[str, Any]) -> list[str]:
    return [str(e.get("message", "")) for e in status.get("Events") or []]


def _provider_of(net: devnet.Devnet, cli: Cli, eid: str, node: str = "node1") -> int:
    manifest = json.loads(cli.run("deployment", "manifest", eid).stdout)
    peer = manifest["nodes"][node]["peer"]
    return next(i for i, n in enumerate(net.nodes) if n.peer_id == peer)


def _free(cli: Cli, index: int) -> Any:
    reply = json.loads(
        cli.run("actor", "cmd", "/dms/node/resources/free", "--json", node=index).stdout
    )
    return reply["Resources"]


def _shutdown(cli: Cli, eid: str) -> None:
    cli.run("deployment", "shutdown", eid)
    _wait(cli, eid, lambda s: s["Status"] in ("Completed", "Failed"), "Completed")


# -- tests ------------------------------------------------------------------------------------


def test_killed_container_is_restarted(net: devnet.Devnet, cli: Cli, tmp_path: Path) -> None:
    eid = _deploy(cli, _write(tmp_path, _service("sleep 3600")))
    provider = _provider_of(net, cli, eid)
    alloc_id = f"{eid}_web"
    first = _containers(net, provider)[alloc_id]
    subprocess.run(["docker", "kill", first], check=True, capture_output=True)
    status = _wait(
        cli,
        eid,
        lambda s: (
            s["Allocations"]["web"]["restarts"] >= 1
            and s["Allocations"]["web"]["status"] == "running"
        ),
        "restarted",
    )
    assert status["Status"] == "Running"
    messages = _messages(status)
    assert any("allocation web failed" in m and "restarting web" in m for m in messages), messages
    assert any(m == "allocation web restarted" for m in messages), messages
    second = _containers(net, provider)[alloc_id]
    assert second != first
    _shutdown(cli, eid)
    assert alloc_id not in _containers(net, provider, all_=True)


def test_failing_health_check_restarts_after_three_failures(
    net: devnet.Devnet, cli: Cli, tmp_path: Path
) -> None:
    """Healthy for a while, then the check fails (the file it tests is removed): three
    failures in a row restart the allocation, which is healthy again."""
    check = "    healthcheck: {type: command, exec: [test, -f, /tmp/ok], interval: 300ms}\n"
    eid = _deploy(
        cli, _write(tmp_path, _service("touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 3600", check))
    )
    status = _wait(
        cli, eid, lambda s: s["Allocations"]["web"]["restarts"] >= 1, "restarted by health"
    )
    messages = _messages(status)
    assert any("failed its health check (3/3)" in m for m in messages), messages
    assert any("failed its health check 3 times in a row" in m for m in messages), messages
    status = _wait(
        cli,
        eid,
        lambda s: (
            (s["Allocations"]["web"].get("health") or {}).get("healthy") is True
            and s["Allocations"]["web"]["status"] == "running"
        ),
        "healthy again",
    )
    assert status["Status"] == "Running"
    _shutdown(cli, eid)


def test_task_exiting_non_zero_fails_with_code_and_output(
    net: devnet.Devnet, cli: Cli, tmp_path: Path
) -> None:
    text = _service("echo about to fail; echo boom >&2; exit 3").replace(
        "type: service", "type: task"
    )
    result = cli.run("deploy", "-f", str(_write(tmp_path, text)), "-t", "2m", ok=False)
    assert result.returncode != 0
    assert "exit code 3" in result.stderr and "boom" in result.stderr, result.stderr


def test_provider_killed_service_moves_and_the_provider_frees_it_when_back(
    net: devnet.Devnet, cli: Cli, tmp_path: Path
) -> None:
    free_before = {i: _free(cli, i) for i in (1, 2, 3)}
    eid = _deploy(cli, _write(tmp_path, _service("sleep 3600")))
    lost = _provider_of(net, cli, eid)
    alloc_id = f"{eid}_web"
    stale = _containers(net, lost)[alloc_id]
    killed_at = time.monotonic()
    devnet.kill(net, lost)
    status = _wait(
        cli,
        eid,
        lambda s: (
            s["Allocations"]["web"]["peer"] not in ("", net.nodes[lost].peer_id)
            and s["Allocations"]["web"]["status"] == "running"
        ),
        "moved",
    )
    recovered = time.monotonic() - killed_at
    assert status["Status"] == "Running"
    messages = _messages(status)
    assert any(m.startswith("node node1 lost: no heartbeat") for m in messages), messages
    assert any(m.startswith("node node1 runs again, on") for m in messages), messages
    # Within the liveness window (3 s) plus one placement (generous on a 2-core machine).
    assert recovered < 3 + 20, recovered
    moved_to = _provider_of(net, cli, eid)
    assert moved_to != lost and alloc_id in _containers(net, moved_to)
    # The killed provider, restarted, learns that its allocation moved and frees it.
    devnet.start(net, only=[lost])
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if alloc_id not in _containers(net, lost, all_=True):
            allocations = json.loads(cli.run("get", "allocations", "--json", node=lost).stdout)
            if not allocations and _free(cli, lost) == free_before[lost]:
                break
        time.sleep(0.3)
    else:
        raise AssertionError("the restarted provider kept the moved allocation")
    assert (
        subprocess.run(["docker", "inspect", stale], capture_output=True, check=False).returncode
        != 0
    )
    status = _status(cli, eid)
    assert any("stopped on" in m and "moved" in m for m in _messages(status)), _messages(status)
    _shutdown(cli, eid)


def test_provider_restarted_while_its_allocation_runs_readopts_it(
    net: devnet.Devnet, cli: Cli, tmp_path: Path
) -> None:
    """SIGKILL and restart a provider within the liveness window: it re-adopts the running
    container (same container, nothing leaked) and the deployment never leaves Running. The
    node's ``failure_recovery: restart`` waits for its provider however long it takes to come
    back (the default, redeploy, would move it after the 3 s liveness window)."""
    text = _service("sleep 3600", node_extra="    failure_recovery: restart\n")
    eid = _deploy(cli, _write(tmp_path, text))
    provider = _provider_of(net, cli, eid)
    alloc_id = f"{eid}_web"
    container = _containers(net, provider)[alloc_id]
    free_before = _free(cli, provider)
    devnet.kill(net, provider)
    devnet.start(net, only=[provider])
    status = _wait(
        cli,
        eid,
        lambda s: any("re-adopted" in m for m in _messages(s)),
        "re-adopted",
    )
    assert status["Status"] == "Running"
    assert status["Allocations"]["web"]["peer"] == net.nodes[provider].peer_id
    assert _containers(net, provider) == {alloc_id: container}
    assert _free(cli, provider) == free_before
    _shutdown(cli, eid)
    assert alloc_id not in _containers(net, provider, all_=True)


def test_orchestrator_restarted_keeps_supervising(
    net: devnet.Devnet, cli: Cli, tmp_path: Path
) -> None:
    eid = _deploy(cli, _write(tmp_path, _service("sleep 3600")))
    provider = _provider_of(net, cli, eid)
    alloc_id = f"{eid}_web"
    devnet.kill(net, 0)
    devnet.start(net, only=[0])
    listed = json.loads(cli.run("get", "deployments", "--json").stdout)
    assert (
        any(eid in json.dumps(entry) for entry in listed)
        if isinstance(listed, list)
        else eid in json.dumps(listed)
    )
    status = _wait(
        cli,
        eid,
        lambda s: any("supervising again" in m for m in _messages(s)),
        "restored",
    )
    assert status["Status"] == "Running"
    # A later fault is still recovered.
    first = _containers(net, provider)[alloc_id]
    subprocess.run(["docker", "kill", first], check=True, capture_output=True)
    _wait(
        cli,
        eid,
        lambda s: (
            s["Allocations"]["web"]["restarts"] >= 1
            and s["Allocations"]["web"]["status"] == "running"
        ),
        "restarted after the orchestrator's restart",
    )
    _shutdown(cli, eid)
