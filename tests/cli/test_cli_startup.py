"""The cheap commands stay cheap: what ``nunet version``, ``--help`` and ``key did`` import.

Each command runs in a fresh interpreter through ``dms.cli.main.main`` (as the console script
does), then prints ``sorted(sys.modules)`` at exit; the heavy libraries must not be in it.
The timing targets themselves are measured by ``bench/bench_cli_startup.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dms.cli._lazy import load
from dms.cli.main import COMMANDS
from dms.crypto import Ed25519PrivateKey
from dms.did import keystore_for

HEAVY = ("libp2p", "fastapi", "docker", "trio", "hypercorn", "wasmtime", "dms.actor", "dms.node")

WRAPPER = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["nunet", *sys.argv[1:]]
from dms.cli.main import main
main()
"""


def loaded(*args: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def heavy_in(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        m for m in modules for h in HEAVY if h not in allowed and (m == h or m.startswith(h + "."))
    )


@pytest.mark.parametrize(
    "args", [("version",), ("--help",), ("key", "--help"), ("actor", "--help")]
)
def test_version_and_help_load_nothing_of_the_dms(args: tuple[str, ...]) -> None:
    modules = loaded(*args)
    assert heavy_in(modules) == []
    if args in (("version",), ("--help",)):  # nothing but the CLI's own entry modules
        dms = {m for m in modules if m.startswith("dms.") and not m.startswith("dms.cli")}
        assert dms == {"dms.errors"}
        assert "pydantic" not in modules  # typer would coerce --help through it


def test_key_did_loads_no_network_daemon_or_executor(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    keystore_for(tmp_path, scrypt_n=2**10).save("user", key, "pw")
    env = {"DMS_GENERAL_USER_DIR": str(tmp_path), "DMS_PASSPHRASE": "pw", "HOME": str(tmp_path)}
    assert heavy_in(loaded("key", "did", "user", env=env)) == []


def test_lazy_helps_are_the_modules_own() -> None:
    """``nunet --help`` shows the registry's one-line helps without importing the modules;
    they must say what the modules' own commands say."""
    for entry in COMMANDS:
        command = load(entry)
        assert command.name == entry.name
        assert (command.help or "").strip().splitlines()[0] == entry.help, entry.name
