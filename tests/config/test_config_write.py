"""Writing: set_config_value, save_config and edit_config through the Python API."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from dms.config import (
    default_config,
    edit_config,
    load_config,
    save_config,
    set_config_value,
)
from dms.errors import ConfigError


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment: fake HOME, no overrides."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def test_first_write_goes_to_cwd_and_holds_only_the_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    written = set_config_value(None, "REST.PORT", "8080", env=env, cwd=tmp_path)
    assert written == tmp_path / "dms_config.json"
    assert json.loads(written.read_text()) == {"rest": {"port": 8080}}
    assert load_config(env=env, cwd=tmp_path).rest.port == 8080
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_writes_the_file_that_is_read(tmp_path: Path, env: dict[str, str]) -> None:
    home_file = Path(env["HOME"]) / ".nunet" / "dms_config.json"
    home_file.parent.mkdir()
    home_file.write_text("{}")
    assert set_config_value(None, "rest.port", "1", env=env, cwd=tmp_path) == home_file
    assert not (tmp_path / "dms_config.json").exists()


def test_canonical_spelling_and_two_space_indent(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"REST": {"Addr": "0.0.0.0"}, "general": {"pushlivenessenabled": true}}')
    set_config_value(path, "General.PushLivenessEnabled", "false", env=env)
    text = path.read_text()
    assert json.loads(text) == {
        "rest": {"addr": "0.0.0.0"},
        "general": {"PushLivenessEnabled": False},
    }
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert '\n  "rest": {\n    "addr"' in text


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("p2p.listen_address", "/ip4/1.1.1.1/tcp/1,/ip4/1.1.1.1/udp/1/quic-v1",
         ["/ip4/1.1.1.1/tcp/1", "/ip4/1.1.1.1/udp/1/quic-v1"]),
        ("p2p.bootstrap_peers", '["/ip4/1.1.1.1/tcp/1"]', ["/ip4/1.1.1.1/tcp/1"]),
        ("p2p.bootstrap_peers", "", []),
        ("general.debug", "TRUE", True),
        ("general.host_city", " Addis Ababa ", " Addis Ababa "),
        ("general.user_dir", "/srv/x", "/srv/x"),
        ("coinmarketcap.cache_ttl", "2m", 120.0),
        ("job.liveness_window", "1m", 60.0),
        ("job.healthcheck_timeout", "500ms", 0.5),
        ("job.restart_limit", "7", 7),
        ("rest", '{"PORT": 1, "addr": "::1"}', {"addr": "::1", "port": 1}),
        ("general.providers", '[{"name": "a", "Type": "local-incus"}]',
         [{"name": "a", "type": "local-incus", "config": {}}]),
    ],
)  # fmt: skip
def test_values_converted_to_key_type(
    tmp_path: Path, env: dict[str, str], key: str, value: str, expected: Any
) -> None:
    path = set_config_value(tmp_path / "c.json", key, value, env=env)
    node: Any = json.loads(path.read_text())
    for part in key.split("."):
        node = node[part]
    assert node == expected


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("rest.port", "abc", "expected integer"),
        ("rest.port", "0", "rest.port"),
        ("rest.nope", "1", "unknown config key rest.nope"),
        ("general.port_available_range_to", "100", "must be below"),
        ("p2p.listen_address", "0.0.0.0:9000", "multiaddr"),
        ("rest", "{bad", "JSON object"),
        ("rest", '{"x": 1}', "unknown config key rest.x"),
        ("job.liveness_window", "1s", "liveness_window (1s) must exceed"),
        ("job.restart_backoff", "soon", "not a number of seconds"),
    ],
)
def test_invalid_set_leaves_file_untouched(
    tmp_path: Path, env: dict[str, str], key: str, value: str, needle: str
) -> None:
    path = tmp_path / "c.json"
    original = b'{"rest":   {"port": 1234}}'
    path.write_bytes(original)
    with pytest.raises(ConfigError) as info:
        set_config_value(path, key, value, env=env)
    assert needle in str(info.value)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "home"]


def test_invalid_set_creates_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        set_config_value(None, "rest.port", "x", env=env, cwd=tmp_path)
    assert not (tmp_path / "dms_config.json").exists()


def test_set_refuses_a_file_with_unknown_keys(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"old_key": 1}')
    with pytest.raises(ConfigError, match="unknown config key old_key"):
        set_config_value(path, "rest.port", "1", env=env)
    assert path.read_text() == '{"old_key": 1}'


def test_write_goes_through_temp_file_fsync_and_rename(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    seen: dict[str, Any] = {"fsync": 0}
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: Any, dst: Any) -> None:
        seen["src"], seen["dst"] = Path(src), Path(dst)
        seen["tmp_content"] = Path(src).read_text()
        seen["old_content_at_rename"] = Path(dst).read_text()
        real_replace(src, dst)

    def spy_fsync(fd: int) -> None:
        seen["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    set_config_value(path, "rest.port", "4321", env=env)
    assert seen["src"] == tmp_path / "dms_config.tmp.json"
    assert seen["dst"] == path
    assert json.loads(seen["tmp_content"]) == {"rest": {"port": 4321}}
    assert seen["old_content_at_rename"] == "{}"
    assert seen["fsync"] >= 1
    assert not (tmp_path / "dms_config.tmp.json").exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_failed_rename_leaves_old_file_and_no_temp(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConfigError, match="cannot write config file"):
        set_config_value(path, "rest.port", "1", env=env)
    assert path.read_text() == "{}"
    assert not (tmp_path / "dms_config.tmp.json").exists()


def test_save_config_round_trips(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = default_config(env)
    cfg.rest.port = 7777
    path = save_config(cfg, tmp_path / "full.json")
    loaded = load_config(path, env=env)
    assert loaded.rest.port == 7777
    assert loaded.general.user_dir == cfg.general.user_dir


# ---- edit ----------------------------------------------------------------------------------


def make_editor(tmp_path: Path, body: str) -> str:
    """A tiny 'editor': a Python script that rewrites the file given as its last argument."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import json, sys\n"
        "path = sys.argv[-1]\n"
        "data = json.load(open(path))\n"
        f"{body}\n"
        "json.dump(data, open(path, 'w'))\n"
    )
    return f"{sys.executable} {script}"


def test_edit_creates_defaults_then_accepts_valid_edit(tmp_path: Path, env: dict[str, str]) -> None:
    editor = make_editor(tmp_path, "data['rest']['port'] = 6000")
    path = edit_config(editor=editor, env=env, cwd=tmp_path)
    assert path == tmp_path / "dms_config.json"
    assert load_config(path, env=env).rest.port == 6000
    assert json.loads(path.read_text())["general"]["user_dir"] == f"{env['HOME']}/.nunet"


def test_edit_uses_EDITOR_and_restores_on_invalid_edit(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.json"
    original = '{"rest": {"port": 1}}'
    path.write_text(original)
    env = {**env, "EDITOR": make_editor(tmp_path, "data['rest']['colour'] = 'blue'")}
    with pytest.raises(ConfigError) as info:
        edit_config(path, env=env)
    assert "unknown config key rest.colour" in str(info.value)
    assert "restored" in str(info.value)
    assert path.read_text() == original


def test_edit_restores_when_editor_fails(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    editor = make_editor(tmp_path, "data['x'] = 1\njson.dump(data, open(path, 'w'))\nsys.exit(3)")
    with pytest.raises(ConfigError, match="exited with status 3"):
        edit_config(path, editor=editor, env=env)
    assert path.read_text() == "{}"


def test_edit_with_missing_editor(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="cannot run editor"):
        edit_config(path, editor="/nonexistent/editor", env=env)
