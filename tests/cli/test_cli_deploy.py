"""``nunet deploy`` and ``nunet deployment ...`` at their edges, as a user meets them: the real
console script in a subprocess, against no DMS, a port where nothing runs, or a real one-node
devnet."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms import devnet, gojson

NUNET = str(Path(sys.executable).parent / "nunet")
REPO = Path(__file__).resolve().parents[2]

BAD = """\
version: "V1"
allocations:
  a1:
    executor: wasm
    type: task
    resources: {cpu: {cores: -1}, ram: {size: lots}}
    execution: {type: wasm, module: missing.wasm}
    depends_on: [a9]
nodes:
  n1:
    allocations: [a1, ghost]
    ports: [{public: 0, private: 99999, allocation: a1}]
"""


def nunet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NUNET, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that accepts connections (and so would see any DMS request)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        DMS_GENERAL_USER_DIR=str(tmp_path / "user"),
        DMS_GENERAL_WORK_DIR=str(tmp_path / "work"),
        DMS_REST_PORT=str(port),
    )
    return env


def test_invalid_ensemble_prints_every_problem_and_contacts_no_dms(
    tmp_path: Path, listener: socket.socket
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    done = nunet(_env(tmp_path, listener.getsockname()[1]), "deploy", "-f", str(path))
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    expected = [
        ("allocations.a1.resources.cpu.cores", 6),
        ("allocations.a1.resources.ram.size", 6),
        ("allocations.a1.execution.module", 7),
        ("allocations.a1.depends_on[0]", 8),
        ("nodes.n1.allocations[1]", 11),
        ("nodes.n1.ports[0].private", 12),
    ]
    for where, line in expected:
        assert any(ln.startswith(f"{path}: {where} (line {line}): ") for ln in lines), (
            where,
            lines,
        )
    assert all(ln.startswith(f"{path}: ") for ln in lines), lines
    assert done.stdout == "" and "Traceback" not in done.stderr
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody knocked


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    net = devnet.create(tmp_path_factory.mktemp("cli-deploy") / "net", 1)
    devnet.start(net)
    try:
        yield net
    finally:
        devnet.stop(net)


def test_no_dms_running_is_one_clear_line(one_node: devnet.Devnet) -> None:
    """The user's identity exists (so no passphrase or key problem hides it); the port is dead."""
    port = devnet.free_port()
    env = {**one_node.cli_env(0), "DMS_REST_PORT": str(port)}
    for args in (
        ("deploy", "-f", str(REPO / "examples" / "hello.yaml")),
        ("deployment", "status", "abc"),
    ):
        done = nunet(env, *args)
        assert done.returncode == 1, done
        assert done.stderr == (
            f"error: cannot reach the DMS at http://127.0.0.1:{port}: is `nunet run` running?\n"
        ), done.stderr
        assert done.stdout == ""


def test_status_of_an_unknown_deployment_is_one_line_and_exit_1(one_node: devnet.Devnet) -> None:
    done = nunet(one_node.cli_env(0), "deployment", "status", "0123abc")
    assert done.returncode == 1, done
    assert done.stderr == "error: no deployment 0123abc\n", done.stderr
    assert done.stdout == ""


def test_deploy_sends_local_wasm_modules_inline() -> None:
    """What ``nunet deploy`` sends: the validated ensemble with the module's bytes, since a
    provider may not read a path on the user's host."""
    from dms.cli._deploy import _load

    ensemble = _load(REPO / "examples" / "hello.yaml")
    wat = (REPO / "examples" / "hello.wat").read_bytes()
    for alloc in ensemble.allocations.values():
        params = alloc.execution.params
        assert gojson.b64decode(params["module_data"]) == wat
        assert params["sha256"] == hashlib.sha256(wat).hexdigest()
