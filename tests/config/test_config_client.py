"""``client_settings`` answers exactly as ``load_config`` does, quickly for the usual inputs.

Every case runs both on the same inputs (a private ``HOME`` and working directory, so the search
path is the test's own): the same three values, or the same error. The cases the quick reading
covers are checked to stay on it (no models built), the odd ones to go to the full loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from dms.config import (
    ClientSettings,
    Config,
    GeneralConfig,
    RestConfig,
    _client,
    client_settings,
    env_keys,
    load_config,
)
from dms.errors import ConfigError


@pytest.fixture
def place(tmp_path: Path) -> tuple[dict[str, str], Path]:
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    return {"HOME": str(home)}, cwd


def expected(path: Path | None, env: Mapping[str, str], cwd: Path) -> ClientSettings | str:
    try:
        config = load_config(path, env, cwd=cwd)
    except ConfigError as exc:
        return f"{type(exc).__name__}: {exc}"
    return ClientSettings(config.general.user_dir, config.rest.addr, config.rest.port)


def actual(path: Path | None, env: Mapping[str, str], cwd: Path) -> ClientSettings | str:
    try:
        return client_settings(path, env, cwd=cwd)
    except ConfigError as exc:
        return f"{type(exc).__name__}: {exc}"


def quick(path: Path | None, env: Mapping[str, str], cwd: Path) -> bool:
    """Whether the quick reading answers (no models built)."""
    try:
        _client._quick(path, env, cwd)
    except _client._Unusual:
        return False
    return True


def check(path: Path | None, env: Mapping[str, str], cwd: Path, *, fast: bool) -> None:
    assert actual(path, env, cwd) == expected(path, env, cwd)
    assert quick(path, env, cwd) is fast


QUICK_ENV = [
    {},
    {"DMS_GENERAL_USER_DIR": "/srv/nunet"},
    {"DMS_GENERAL_USER_DIR": "  /srv/with space/  "},
    {"DMS_GENERAL_USER_DIR": "$HOME/k"},
    {"DMS_GENERAL_USER_DIR": "${HOME}/k/$HOME"},
    {"DMS_GENERAL_USER_DIR": "~"},
    {"DMS_GENERAL_USER_DIR": "~/keys"},
    {"DMS_GENERAL_USER_DIR": "~other/keys"},
    {"DMS_GENERAL_USER_DIR": "relative/dir"},
    {"DMS_REST_PORT": "8080"},
    {"DMS_REST_PORT": " 1 \n"},
    {"DMS_REST_PORT": "65535"},
    {"DMS_REST_ADDR": " 10.0.0.1 "},
    {"DMS_REST_ADDR": ""},
    {"DMS_REST_ADDR": "::1"},
    {"DMS_PASSPHRASE": "x", "DMS_CONN_LOGS": "1", "DMS_RESTART": "no", "BOOTSTRAP_PEERS": "  "},
    {"DMS_GENERAL_USER_DIR": "/u", "DMS_REST_PORT": "1234", "DMS_REST_ADDR": "0.0.0.0"},
]

SLOW_ENV = [
    {"DMS_GENERAL_USER_DIR": ""},
    {"DMS_GENERAL_USER_DIR": "   "},
    {"DMS_GENERAL_USER_DIR": "/bad\udcff"},
    {"DMS_REST_PORT": "0"},
    {"DMS_REST_PORT": "65536"},
    {"DMS_REST_PORT": "09999"},
    {"DMS_REST_PORT": "+80"},
    {"DMS_REST_PORT": "8_0"},
    {"DMS_REST_PORT": "\u0663\u0663"},  # Arabic-Indic digits
    {"DMS_REST_PORT": "1e3"},
    {"DMS_REST_PORT": "80.0"},
    {"DMS_REST_PORT": ""},
    {"DMS_REST_PORT": "http"},
    {"dms_rest_port": "1234"},
    {"DMS_REST_PORT": "1234", "dms_rest_port": "4321"},
    {"Dms_General_User_Dir": "/mixed"},
    {"DMS_GENERAL_WORK_DIR": "/w"},
    {"DMS_P2P_MEMORY": "lots"},
    {"DMS_P2P_MEMORY": "12"},
    {"DMS_REST": '{"port": 5}'},
    {"DMS_GENERAL": "{}"},
    {"DMS_GENERAL_PORT_AVAILABLE_RANGE_FROM": "70000"},
    {"BOOTSTRAP_PEERS": "not-a-multiaddr"},
    {"BOOTSTRAP_PEERS": "/ip4/1.2.3.4/tcp/1"},
]


@pytest.mark.parametrize("extra", QUICK_ENV)
def test_usual_environments_take_the_quick_reading(
    place: tuple[dict[str, str], Path], extra: dict[str, str]
) -> None:
    env, cwd = place
    check(None, {**env, **extra}, cwd, fast=True)


@pytest.mark.parametrize("extra", SLOW_ENV)
def test_other_environments_get_the_full_loaders_answer(
    place: tuple[dict[str, str], Path], extra: dict[str, str]
) -> None:
    env, cwd = place
    check(None, {**env, **extra}, cwd, fast=False)


QUICK_FILES = [
    "",
    "  \n",
    "{}",
    '{"general": {}, "rest": {}}',
    '{"general": {"user_dir": "/from/file"}}',
    '{"General": {"User_Dir": "$HOME/x"}, "REST": {"Port": 1234, "addr": "h.example"}}',
    '{"rest": {"port": 65535, "addr": ""}}',
    '{"rest": {"port": 1, "port": 2}}',  # JSON duplicates: the last wins in both readers
]

SLOW_FILES = [
    "[]",
    "null",
    "not json",
    '{"rest": null}',
    '{"rest": {"port": "1234"}}',
    '{"rest": {"port": 0}}',
    '{"rest": {"port": true}}',
    '{"rest": {"port": 9999.0}}',
    '{"rest": {"port": 1, "PORT": 2}}',
    '{"rest": {"addr": 5}}',
    '{"rest": {"addr": "\\ud800"}}',
    '{"general": {"user_dir": ""}}',
    '{"general": {"user_dir": 5}}',
    '{"general": {"work_dir": "/w"}}',
    '{"general": {"user_dir": "/a"}, "GENERAL": {"user_dir": "/b"}}',
    '{"p2p": {"memory": 1}}',
    '{"unknown": 1}',
    '{"general": {"user_dir": "/a", "nope": 1}}',
]


@pytest.mark.parametrize("text", QUICK_FILES)
def test_simple_config_files_take_the_quick_reading(
    place: tuple[dict[str, str], Path], text: str
) -> None:
    env, cwd = place
    (cwd / "dms_config.json").write_text(text)
    check(None, env, cwd, fast=True)
    check(None, {**env, "DMS_REST_PORT": "4321", "DMS_GENERAL_USER_DIR": "~/e"}, cwd, fast=True)


@pytest.mark.parametrize("text", SLOW_FILES)
def test_other_config_files_get_the_full_loaders_answer(
    place: tuple[dict[str, str], Path], text: str
) -> None:
    env, cwd = place
    (cwd / "dms_config.json").write_text(text)
    check(None, env, cwd, fast=False)


def test_unreadable_or_undecodable_files_get_the_full_loaders_error(
    place: tuple[dict[str, str], Path],
) -> None:
    env, cwd = place
    file = cwd / "dms_config.json"
    file.write_bytes(b'{"rest": {"addr": "\xff"}}')
    check(None, env, cwd, fast=False)
    assert isinstance(actual(None, env, cwd), str)  # an error, the loader's
    file.write_bytes(b'\xef\xbb\xbf{"rest": {"port": 1}}')  # a BOM: not JSON to either
    check(None, env, cwd, fast=False)
    file.unlink()
    file.mkdir()  # a directory is not a config file: the search goes on to the defaults
    check(None, env, cwd, fast=True)


def test_the_search_path_is_the_loaders(place: tuple[dict[str, str], Path]) -> None:
    env, cwd = place
    home = Path(env["HOME"])
    (home / ".nunet").mkdir()
    (home / ".nunet" / "dms_config.json").write_text('{"rest": {"port": 2000}}')
    check(None, env, cwd, fast=True)
    assert client_settings(None, env, cwd=cwd).rest_port == 2000
    (cwd / "dms_config.json").write_text('{"rest": {"port": 3000}}')  # ./ comes first
    assert client_settings(None, env, cwd=cwd).rest_port == 3000
    check(None, env, cwd, fast=True)


def test_a_config_flag_goes_to_the_full_loader(
    place: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, cwd = place
    given = tmp_path / "given.json"
    given.write_text('{"general": {"user_dir": "/given"}}')
    check(given, env, cwd, fast=False)
    assert client_settings(given, env, cwd=cwd).user_dir == Path("/given")
    missing = tmp_path / "missing.json"
    check(missing, env, cwd, fast=False)
    with pytest.raises(ConfigError, match="does not exist"):
        client_settings(missing, env, cwd=cwd)


def test_the_repeated_facts_match_the_models() -> None:
    """Section names and defaults are repeated in ``_client`` (it must not import the models)."""
    assert tuple(name.upper() for name in Config.model_fields) == _client.SECTIONS
    general, rest = GeneralConfig.model_fields, RestConfig.model_fields
    assert general["user_dir"].default == Path(_client.DEFAULT_USER_DIR)
    assert rest["addr"].default == _client.DEFAULT_REST_ADDR
    assert rest["port"].default == _client.DEFAULT_REST_PORT
    prefixes = tuple(f"DMS_{section}" for section in _client.SECTIONS)
    for name in env_keys():
        assert any(name == p or name.startswith(p + "_") for p in prefixes), name
    for name in ("DMS_GENERAL_USER_DIR", "DMS_REST_ADDR", "DMS_REST_PORT"):
        assert name in env_keys()
    assert env_keys()["DMS_GENERAL_USER_DIR"].annotation is Path
    assert env_keys()["DMS_REST_ADDR"].annotation is str
