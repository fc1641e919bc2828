"""The cheap commands stay cheap: what ``nunet version``, ``--help``, ``key did`` and
``actor cmd`` import.

Each command runs in a fresh interpreter through ``dms.cli.main.main`` (as the console script
does), then prints ``sorted(sys.modules)`` at exit; the heavy libraries must not be in it.
``key did`` and ``actor cmd`` read the user dir and REST address without building the config
models (no pydantic), and ``actor cmd`` builds and relays its message without the actor runtime
(no trio) or httpx. The timing targets themselves are measured by
``bench/bench_cli_startup.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dms.cli._lazy import load
from dms.cli.main import COMMANDS
from dms.crypto import Ed25519PrivateKey
from dms.did import KeyProvider, keystore_for
from dms.ucan import new_context

HEAVY = ("libp2p", "fastapi", "docker", "trio", "hypercorn", "wasmtime", "dms.actor", "dms.node")
#: Also kept out of the commands that read a key or relay a message (see bench/README.md).
CLIENT_HEAVY = ("pydantic", "httpx", "trio", "libp2p", "fastapi", "docker", "dms.node")

WRAPPER = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["nunet", *sys.argv[1:]]
from dms.cli.main import main
main()
"""


def loaded(*args: str, env: dict[str, str] | None = None, code: int = 0) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def heavy_in(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules for h in heavy if m == h or m.startswith(h + "."))


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
    modules = loaded("key", "did", "user", env=env)
    assert heavy_in(modules) == []
    assert heavy_in(modules, CLIENT_HEAVY) == []


def test_actor_cmd_loads_no_actor_runtime_pydantic_or_httpx(tmp_path: Path) -> None:
    """Up to the request (here refused: nothing listens), ``actor cmd`` has read the config,
    opened the capability context, built and signed nothing heavier than envelopes."""
    key = Ed25519PrivateKey.generate()
    keystore_for(tmp_path, scrypt_n=2**10).save("user", key, "pw")
    new_context(tmp_path, "user", KeyProvider(key))
    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "DMS_GENERAL_USER_DIR": str(tmp_path),
        "DMS_REST_PORT": str(port),
        "DMS_PASSPHRASE": "pw",
        "HOME": str(tmp_path),
    }
    modules = loaded("actor", "cmd", "/public/status", env=env, code=1)
    assert {"dms.client", "dms.contexts", "http.client"} <= modules  # it got to the request
    assert heavy_in(modules, CLIENT_HEAVY) == []


def test_lazy_helps_are_the_modules_own() -> None:
    """``nunet --help`` shows the registry's one-line helps without importing the modules;
    they must say what the modules' own commands say."""
    for entry in COMMANDS:
        command = load(entry)
        assert command.name == entry.name
        assert (command.help or "").strip().splitlines()[0] == entry.help, entry.name
