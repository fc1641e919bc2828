"""``nunet config ...`` run as the real console script, with HOME and cwd in tmp dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NUNET = Path(sys.executable).parent / "nunet"


class Run:
    """Runs ``nunet`` in an isolated HOME/cwd with a clean DMS_* environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.cwd = tmp_path / "cwd"
        self.home.mkdir()
        self.cwd.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith("DMS_") and k not in ("BOOTSTRAP_PEERS", "EDITOR")
        }
        self.env["HOME"] = str(self.home)
        self.env.pop("XDG_CONFIG_HOME", None)

    def __call__(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(NUNET), *args],
            cwd=self.cwd,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def run(tmp_path: Path) -> Run:
    if not NUNET.exists():
        pytest.skip(f"console script not installed at {NUNET}")
    return Run(tmp_path)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_help_on_every_command(run: Run) -> None:
    for args in (["config", "--help"], *(["config", c, "--help"] for c in ("get", "set", "edit"))):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
        assert "--config" in result.stdout or args == ["config", "--help"]


def test_get_whole_config_is_json_defaults(run: Run) -> None:
    result = run("config", "get")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rest"] == {"addr": "127.0.0.1", "port": 9999}
    assert data["general"]["user_dir"] == f"{run.home}/.nunet"
    assert data["general"]["PushLivenessEnabled"] is True


def test_get_scalar_plain_and_object_json(run: Run) -> None:
    assert run("config", "get", "rest.port").stdout == "9999\n"
    assert run("config", "get", "REST.ADDR").stdout == "127.0.0.1\n"
    assert run("config", "get", "general.debug").stdout == "false\n"
    listen = json.loads(run("config", "get", "p2p.listen_address").stdout)
    assert listen == ["/ip4/0.0.0.0/tcp/9000", "/ip4/0.0.0.0/udp/9000/quic-v1"]
    assert json.loads(run("config", "get", "apm").stdout)["service_name"] == "nunet-dms"


def test_get_sees_env_overrides(run: Run) -> None:
    result = run("config", "get", "rest.port", DMS_REST_PORT="4444")
    assert result.stdout == "4444\n"
    result = run("config", "get", "p2p.bootstrap_peers", BOOTSTRAP_PEERS="/ip4/1.2.3.4/tcp/5")
    assert json.loads(result.stdout) == ["/ip4/1.2.3.4/tcp/5"]


def test_get_errors_are_one_line(run: Run) -> None:
    assert_one_line_error(run("config", "get", "rest.nope"), "unknown config key rest.nope")
    assert_one_line_error(run("config", "get", DMS_REST_PORT="x"), "DMS_REST_PORT", "rest.port")
    (run.cwd / "dms_config.json").write_text('{"rest": {"nested": {"deep": 1}}}')
    assert_one_line_error(run("config", "get"), "rest.nested", "dms_config.json")


def test_get_with_config_flag(run: Run, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"rest": {"port": 1111}}')
    assert run("config", "get", "rest.port", "--config", str(other)).stdout == "1111\n"
    assert_one_line_error(
        run("config", "get", "--config", str(tmp_path / "missing.json")), "does not exist"
    )


def test_set_then_get(run: Run) -> None:
    result = run("config", "set", "rest.port", "8181")
    assert result.returncode == 0, result.stderr
    path = run.cwd / "dms_config.json"
    assert json.loads(path.read_text()) == {"rest": {"port": 8181}}
    assert str(path) in result.stdout
    assert run("config", "get", "rest.port").stdout == "8181\n"


def test_set_invalid_value_fails_and_leaves_file(run: Run) -> None:
    path = run.cwd / "dms_config.json"
    path.write_text('{"rest": {"port": 1}}')
    result = run("config", "set", "rest.port", "99999")
    assert_one_line_error(result, "rest.port")
    assert result.returncode == 1
    assert path.read_text() == '{"rest": {"port": 1}}'
    assert_one_line_error(run("config", "set", "bogus.key", "1"), "unknown config key bogus.key")
    assert path.read_text() == '{"rest": {"port": 1}}'


def test_set_missing_argument_is_usage_error(run: Run) -> None:
    result = run("config", "set", "rest.port")
    assert result.returncode == 2
    assert not (run.cwd / "dms_config.json").exists()


def write_editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(
        "import json, sys\n"
        "path = sys.argv[-1]\n"
        "data = json.load(open(path))\n"
        f"{body}\n"
        "json.dump(data, open(path, 'w'), indent=2)\n"
    )
    return f"{sys.executable} {script}"


def test_edit_valid(run: Run, tmp_path: Path) -> None:
    editor = write_editor(tmp_path, "data['rest']['port'] = 5151")
    result = run("config", "edit", EDITOR=editor)
    assert result.returncode == 0, result.stderr
    path = run.cwd / "dms_config.json"
    assert json.loads(path.read_text())["rest"]["port"] == 5151
    assert run("config", "get", "rest.port").stdout == "5151\n"


def test_edit_invalid_restores_and_fails(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text('{"rest": {"port": 1}}')
    editor = write_editor(tmp_path, "data['rest']['port'] = 'not-a-port'")
    result = run("config", "edit", "--config", str(path), EDITOR=editor)
    assert_one_line_error(result, "rest.port", "expected integer", "restored")
    assert path.read_text() == '{"rest": {"port": 1}}'
