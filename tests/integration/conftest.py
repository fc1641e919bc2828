"""A real devnet (``nunet run`` processes on loopback) for the integration tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dms import devnet

NUNET = str(Path(sys.executable).parent / "nunet")


@dataclass
class Cli:
    """Runs ``nunet`` as the devnet's user against one node."""

    net: devnet.Devnet

    def run(
        self, *args: str, node: int = 0, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [NUNET, *args],
            env={**self.net.cli_env(node), **(env or {})},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=90,
            check=False,
        )
        if ok:
            assert result.returncode == 0, f"nunet {' '.join(args)}: {result.stderr}"
        return result

    def fails(self, *args: str, match: str, node: int = 0, **kw: dict[str, str]) -> str:
        result = self.run(*args, node=node, ok=False, **kw)  # type: ignore[arg-type]
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and lines, result
        assert lines[-1].startswith("error: ") and match in lines[-1], lines[-1]
        return lines[-1]


def log_of(net: devnet.Devnet, node: int) -> str:
    return net.nodes[node].log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def shared_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    """Three daemons that tests may use but not break (no signals, no config changes)."""
    net = devnet.create(tmp_path_factory.mktemp("devnet") / "net", 3, log_level="DEBUG")
    devnet.start(net)
    try:
        yield net
    finally:
        devnet.stop(net)


@pytest.fixture
def cli(shared_devnet: devnet.Devnet) -> Cli:
    return Cli(shared_devnet)
