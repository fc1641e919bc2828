"""Build and run the small Go programs under tests/gocompat/go/ with Debian's golang-go.

They use Go's standard library only (no module can be fetched here), so a bare ``go.mod`` is
enough. A missing toolchain is a failure, not a skip: wire compatibility is only proven against
Go itself, and ``.ci/run`` installs ``golang-go``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_DIR = Path(__file__).parent / "go"


def build_go_program(name: str, out_dir: Path) -> Path:
    """Compile ``tests/gocompat/go/<name>/main.go`` into ``out_dir`` and return the binary."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is missing: install it with apt-get install golang-go")
    src = out_dir / f"src-{name}"
    shutil.copytree(GO_DIR / name, src, dirs_exist_ok=True)
    (src / "go.mod").write_text(f"module {name}\n\ngo 1.19\n")
    binary = out_dir / name
    env = dict(os.environ)
    env.setdefault("GOCACHE", str(out_dir / "gocache"))
    env.setdefault("GOPATH", str(out_dir / "gopath"))
    env["GOFLAGS"] = "-mod=mod"
    env["GOPROXY"] = "off"
    result = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"go build {name} failed:\n{result.stderr}")
    return binary


def run_lines(binary: Path, mode: str, lines: list[str]) -> list[str]:
    """Feed ``lines`` to the program in ``mode``; return its output lines (one per input)."""
    result = subprocess.run(
        [str(binary), mode],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    out = result.stdout.split("\n")[:-1]
    assert len(out) == len(lines), result.stderr
    return out
