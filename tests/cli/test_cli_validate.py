"""``nunet validate`` driven as a user would: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

NUNET = str(Path(sys.executable).parent / "nunet")
REPO = Path(__file__).resolve().parents[2]

BAD = """\
version: "V1"
allocations:
  a1:
    executor: docker
    type: task
    resources: {cpu: {cores: 1}, ram: {size: lots}}
    execution: {type: docker, image: x}
    depends_on: [a9]
nodes:
  n1:
    allocations: [a1, ghost]
    redundnacy: 1
"""


def nunet(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    env["DMS_GENERAL_USER_DIR"] = str(tmp_path / "user")
    env["DMS_GENERAL_WORK_DIR"] = str(tmp_path / "work")
    return subprocess.run(
        [NUNET, *args], check=False, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_valid_ensemble(tmp_path: Path) -> None:
    path = REPO / "examples" / "hello-wasm.yaml"
    done = nunet(tmp_path, "validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path}: valid (1 allocations on 1 nodes)\n"


def test_every_problem_one_per_line_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    done = nunet(tmp_path, "validate", str(path))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{path}: allocations.a1.resources.ram.size (line 6): invalid size: 'lots' "
        "(expected e.g. 4, 4GiB, 512MiB, 2GB)",
        f"{path}: allocations.a1.depends_on[0] (line 8): unknown allocation 'a9'",
        f"{path}: nodes.n1.allocations[1] (line 11): unknown allocation 'ghost'",
        f"{path}: nodes.n1.redundnacy (line 12): unknown key 'redundnacy' (known: allocations, "
        "failure_recovery, location, peer, ports, redundancy)",
    ]
    assert "Traceback" not in done.stderr


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    done = nunet(tmp_path, "validate", str(path), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False and report["file"] == str(path)
    assert {
        "path": "nodes.n1.allocations[1]",
        "line": 11,
        "message": "unknown allocation 'ghost'",
    } in report["problems"]
    ok = nunet(tmp_path, "validate", str(REPO / "examples" / "hello-wasm.yaml"), "--json")
    assert json.loads(ok.stdout) == {
        "file": str(REPO / "examples" / "hello-wasm.yaml"),
        "valid": True,
        "allocations": 1,
        "nodes": 1,
        "problems": [],
    }


def test_a_module_over_the_inline_cap_or_missing_is_reported(tmp_path: Path) -> None:
    text = (REPO / "examples" / "hello-wasm.yaml").read_text()
    (tmp_path / "e.yaml").write_text(text)
    done = nunet(tmp_path, "validate", str(tmp_path / "e.yaml"))
    assert done.returncode == 1
    assert "allocations.hello.execution.module (line 14): module file" in done.stdout
    assert "does not exist" in done.stdout
    (tmp_path / "hello.wat").write_bytes(b"(module)" + b" " * (4 * 1024 * 1024))
    done = nunet(tmp_path, "validate", str(tmp_path / "e.yaml"))
    assert done.returncode == 1 and "the limit for a module sent with a deployment" in done.stdout


def test_an_unreadable_file_is_one_error_line(tmp_path: Path) -> None:
    done = nunet(tmp_path, "validate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot read") and len(done.stderr.splitlines()) == 1
