"""``nunet executor`` driven as a user would: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dms.subnet import subnet_capability

NUNET = str(Path(sys.executable).parent / "nunet")

NULL_ENSEMBLE = """\
version: "V1"
allocations:
  sleeper:
    executor: "null"
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 512MiB}, disk: {size: 1}}
    execution: {type: "null", duration: %(duration)s, exit_code: 4, stdout: "hello from null\\n"}
  other:
    executor: "null"
    execution: {type: "null"}
nodes:
  node1:
    allocations: [sleeper, other]
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    env["DMS_GENERAL_USER_DIR"] = str(tmp_path / "user")
    env["DMS_GENERAL_WORK_DIR"] = str(tmp_path / "work")
    return env


def nunet(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NUNET, *args],
        check=False,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ensemble(tmp_path: Path, duration: float = 0.1) -> Path:
    path = tmp_path / "ensemble.yaml"
    path.write_text(NULL_ENSEMBLE % {"duration": duration})
    return path


def test_list_says_which_executors_run_here(tmp_path: Path) -> None:
    done = nunet(tmp_path, "executor", "list", "--json")
    assert done.returncode == 0, done.stderr
    found = {e["name"]: e for e in json.loads(done.stdout)}
    assert found["null"] == {"name": "null", "available": True, "reason": ""}
    assert {"docker", "wasm"} <= set(found)
    for entry in found.values():
        assert entry["available"] or entry["reason"].startswith(entry["name"] + ":")


def test_list_says_whether_this_machine_can_run_subnets(tmp_path: Path) -> None:
    done = nunet(tmp_path, "executor", "list")
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("subnets")]
    capability = subnet_capability()
    expected = "yes" if capability.available else f"no: {capability.reason}"
    assert line.endswith(f"allocations): {expected}")


def test_run_streams_output_and_exits_with_the_executions_code(tmp_path: Path) -> None:
    done = nunet(tmp_path, "executor", "run", str(_ensemble(tmp_path)), "-a", "sleeper")
    assert done.returncode == 4
    assert done.stdout == "hello from null\n"
    assert "allocation 'sleeper' (null) exited with code 4" in done.stderr


def test_run_json_and_timeout(tmp_path: Path) -> None:
    path = _ensemble(tmp_path, duration=30)
    started = time.monotonic()
    done = nunet(tmp_path, "executor", "run", str(path), "-a", "sleeper", "--json", "-t", "0.3s")
    assert time.monotonic() - started < 10
    assert done.returncode == 124
    result = json.loads(done.stdout)
    assert result["termination"] == "cpu_limit"
    assert result["error_msg"] == "--timeout of 0.3 s reached"


def test_interrupt_cancels_the_execution(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [NUNET, "executor", "run", str(_ensemble(tmp_path, duration=60)), "-a", "sleeper"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the CLI says when the execution runs (signals handled)
    assert "started as" in first, first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "was interrupted" in err


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("allocations: [unclosed", (), "error: invalid YAML at line 1"),
        (NULL_ENSEMBLE % {"duration": 0}, (), "several allocations (other, sleeper); name one"),
        (NULL_ENSEMBLE % {"duration": 0}, ("-a", "nope"), "no allocation 'nope'"),
        ("execution: {type: null}", (), "quote it"),
        ("execution: {type: lxc}", (), "unknown executor 'lxc'"),
        ("execution: {type: 'null', duration: -1}", (), "'duration' must not be negative"),
        ("executor: docker\nexecution: {type: 'null'}", (), "cannot run an execution of type"),
        ("resources: {ram: {size: lots}}\nexecution: {type: 'null'}", (), "resources.ram.size"),
    ],
)
def test_bad_input_is_one_line_and_runs_nothing(
    tmp_path: Path, text: str, args: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = nunet(tmp_path, "executor", "run", str(path), *args)
    assert done.returncode not in (0, 4)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    done = nunet(tmp_path, "executor", "run", str(tmp_path / "nope.yaml"))
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error: cannot read")


REPO = Path(__file__).resolve().parents[2]


def test_the_wasm_example_runs_anywhere(tmp_path: Path) -> None:
    done = nunet(tmp_path, "executor", "run", str(REPO / "examples" / "hello-wasm.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from a WASM allocation on nunet\n"
    assert "allocation 'hello' (wasm) exited with code 0" in done.stderr


def test_a_runaway_wasm_module_is_stopped_by_its_fuel(tmp_path: Path) -> None:
    (tmp_path / "loop.wat").write_text('(module (func (export "_start") (loop (br 0))))')
    (tmp_path / "loop.yaml").write_text(
        "executor: wasm\nexecution: {type: wasm, module: loop.wat, fuel: 1000000}\n"
    )
    done = nunet(tmp_path, "executor", "run", str(tmp_path / "loop.yaml"), "--json")
    assert done.returncode == 124, done.stderr
    assert json.loads(done.stdout)["termination"] == "cpu_limit"
    assert "was stopped by its limit: fuel budget" in done.stderr


@pytest.mark.docker
def test_docker_allocation_over_its_memory_limit_exits_137(tmp_path: Path) -> None:
    (tmp_path / "oom.yaml").write_text(
        "executor: docker\n"
        "resources: {cpu: {cores: 0.5}, ram: {size: 16MiB}}\n"
        "execution:\n"
        "  type: docker\n"
        "  image: nunet-test/busybox:latest\n"
        "  cmd: [sh, -c, 'echo start; x=$(head -c 100000000 /dev/zero | tr \"\\0\" a); echo $x']\n"
    )
    done = nunet(tmp_path, "executor", "run", str(tmp_path / "oom.yaml"))
    assert done.returncode == 137, done.stderr
    assert done.stdout.startswith("start\n")
    assert "was killed: out of memory" in done.stderr
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=nunet-executor=nunet-cli"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert leftovers.stdout.strip() == ""  # the run removed its container


@pytest.mark.docker
def test_cleanup_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    (tmp_path / "long.yaml").write_text(
        "executor: docker\n"
        "resources: {cpu: {cores: 0.1}, ram: {size: 16MiB}}\n"
        "execution: {type: docker, image: 'nunet-test/busybox:latest', cmd: [sleep, '300']}\n"
    )
    label = "label=nunet-executor=nunet-cli"

    def labelled() -> list[str]:
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", label], check=True, capture_output=True, text=True
        )
        return out.stdout.split()

    before = set(labelled())
    proc = subprocess.Popen(
        [NUNET, "executor", "run", str(tmp_path / "long.yaml")],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not set(labelled()) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.kill()  # SIGKILL: the CLI cannot clean up after itself
    proc.wait(timeout=10)
    assert set(labelled()) - before, "the container should outlive the killed CLI"
    done = nunet(tmp_path, "executor", "cleanup", "-e", "docker")
    assert done.returncode == 0, done.stderr
    assert "docker: cleaned up" in done.stderr
    assert labelled() == []
    assert not list((tmp_path / "work" / "cli-executions" / "executions").glob("*"))


def test_a_url_module_on_the_users_own_network_runs_from_the_cli(tmp_path: Path) -> None:
    """The CLI runs the user's own spec, so a module on their LAN or loopback is fetched
    (a node serving deployers refuses such URLs: see tests/executor/test_wasm_fetch.py)."""
    import hashlib
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    www = tmp_path / "www"
    www.mkdir()
    module = (REPO / "examples" / "hello.wat").read_bytes()
    (www / "hello.wat").write_bytes(module)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hello.wat"
        digest = hashlib.sha256(module).hexdigest()
        (tmp_path / "url.yaml").write_text(
            f"execution: {{type: wasm, module: '{url}', sha256: '{digest}'}}\n"
        )
        done = nunet(tmp_path, "executor", "run", str(tmp_path / "url.yaml"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from a WASM allocation on nunet\n"


@pytest.mark.docker
def test_a_missing_image_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "missing.yaml").write_text(
        "execution: {type: docker, image: 'nunet-test/no-such-image:1', cmd: ['true']}\n"
    )
    done = nunet(tmp_path, "executor", "run", str(tmp_path / "missing.yaml"))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "image 'nunet-test/no-such-image:1' is not on this machine" in errors[0]
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=nunet-executor=nunet-cli"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert leftovers.stdout.strip() == ""
