"""The exit-code table of the README, against a real ``nunet run`` daemon (a one-node devnet).

0 ok; 1 refused or failed (the reply says so: printed in full on stdout, and the reason as
one ``error:`` line on stderr); 2 usage; 124 timed out; 130 interrupted. The daemon is frozen
with SIGSTOP for the last two, so the CLI really waits on it (and thawed after).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from dms import devnet

NUNET = str(Path(sys.executable).parent / "nunet")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    net = devnet.create(tmp_path_factory.mktemp("cli-exit") / "net", 1)
    devnet.start(net)
    try:
        yield net
    finally:
        devnet.stop(net)


def nunet(net: devnet.Devnet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NUNET, *args],
        env=net.cli_env(0),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=90,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@contextmanager
def frozen(net: devnet.Devnet) -> Iterator[None]:
    """The daemon stopped (SIGSTOP): its socket still accepts, nothing answers."""
    pid = net.nodes[0].pid
    assert pid > 0
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def wait_connected(pid: int, port: int, deadline_s: float = 30.0) -> None:
    """Until process ``pid`` holds an open TCP connection to ``port`` (it is waiting on it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            raise AssertionError("the CLI exited before it reached the DMS") from None
        if any(c.raddr and c.raddr.port == port for c in connections):
            return
        time.sleep(0.02)
    raise AssertionError(f"the CLI never connected to port {port}")


def test_ok_is_0(node: devnet.Devnet) -> None:
    done = nunet(node, "actor", "cmd", "/public/status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Status"] == "OK"


def test_a_refusal_exits_1_with_the_whole_reply_on_stdout(node: devnet.Devnet) -> None:
    """The seeds' own example: onboarding more RAM than the machine has."""
    done = nunet(
        node, "actor", "cmd", "--context", "user", "/dms/node/onboarding/onboard",
        "--cpu", "1", "--ram", "100000", "--disk", "1", "--no-gpu", "--json",
    )  # fmt: skip
    assert done.returncode == 1, done
    reply = json.loads(done.stdout)
    assert reply["success"] is False and reply["error"]
    assert one_error_line(done.stderr) == f"error: {' '.join(reply['error'].split())}"


def test_a_failure_exits_1(node: devnet.Devnet) -> None:
    done = nunet(node, "actor", "cmd", "/dms/node/peers/ping", "-H", node.nodes[0].peer_id)
    assert done.returncode == 1, done
    assert one_error_line(done.stderr) == "error: can't ping self"
    assert "can't ping self" in done.stdout  # the reply itself, as printed on success


def test_a_failed_status_with_json_still_prints_the_reply(node: devnet.Devnet) -> None:
    done = nunet(node, "deployment", "status", "0123abc", "--json")
    assert done.returncode == 1, done
    assert json.loads(done.stdout)["Error"] == "no deployment 0123abc"
    assert one_error_line(done.stderr) == "error: no deployment 0123abc"


def test_usage_is_2(node: devnet.Devnet) -> None:
    done = nunet(node, "actor", "cmd", "/public/status", "--no-such-flag")
    assert done.returncode == 2, done
    assert "No such option: --no-such-flag" in done.stderr


@pytest.mark.slow
def test_a_dms_that_does_not_answer_times_out_with_124(node: devnet.Devnet) -> None:
    with frozen(node):
        start = time.monotonic()
        done = nunet(node, "actor", "cmd", "/public/status", "-t", "1s")
    assert done.returncode == 124, done
    assert "did not answer" in one_error_line(done.stderr)
    assert time.monotonic() - start < 60


def test_an_interrupted_command_exits_130(node: devnet.Devnet) -> None:
    with frozen(node):
        proc = subprocess.Popen(
            [NUNET, "actor", "cmd", "/public/status"],
            env=node.cli_env(0),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_connected(proc.pid, node.nodes[0].rest_port)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
