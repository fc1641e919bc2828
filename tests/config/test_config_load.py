"""Loading: search order, exact keys, case-insensitivity, env overrides, legacy keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dms.config import config_search_paths, find_config_file, load_config
from dms.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME and an empty cwd, with no XDG_CONFIG_HOME and no DMS_* variables."""
    home = tmp_path / "home"
    work = tmp_path / "cwd"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("BOOTSTRAP_PEERS", raising=False)
    import os

    for name in list(os.environ):
        if name.upper().startswith("DMS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(work)
    return home


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_no_file_gives_defaults_with_home_expanded(home: Path) -> None:
    cfg = load_config()
    assert cfg.rest.port == 9999
    assert cfg.general.user_dir == home / ".nunet"
    assert find_config_file() is None


def test_search_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    cwd_file = Path.cwd() / "dms_config.json"
    home_file = home / ".nunet" / "dms_config.json"
    xdg_file = xdg / "nunet" / "dms_config.json"
    write(xdg_file, {"rest": {"port": 3}})
    assert load_config().rest.port == 3
    write(home_file, {"rest": {"port": 2}})
    assert load_config().rest.port == 2
    write(cwd_file, {"rest": {"port": 1}})
    assert load_config().rest.port == 1
    explicit = write(tmp_path / "other.json", {"rest": {"port": 4}})
    assert load_config(explicit).rest.port == 4
    assert find_config_file() == cwd_file


def test_user_config_dir_falls_back_to_dot_config(home: Path) -> None:
    write(home / ".config" / "nunet" / "dms_config.json", {"rest": {"port": 5}})
    assert load_config().rest.port == 5


def test_search_paths_list(home: Path) -> None:
    paths = config_search_paths()
    assert paths[:3] == [
        Path.cwd() / "dms_config.json",
        home / ".nunet" / "dms_config.json",
        home / ".config" / "nunet" / "dms_config.json",
    ]
    assert paths[3] == Path("/etc/nunet/dms_config.json")


def test_env_mapping_and_cwd_arguments(tmp_path: Path) -> None:
    write(tmp_path / "h" / ".nunet" / "dms_config.json", {"rest": {"port": 7}})
    cfg = load_config(env={"HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert cfg.rest.port == 7
    assert cfg.general.work_dir == tmp_path / "h" / "nunet"


def test_explicit_missing_file_is_an_error(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing\.json does not exist"):
        load_config(Path("missing.json"))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"rest": {"prot": 1}}, "rest.prot"),
        ({"general": {"payment_provider": {"modee": True}}}, "general.payment_provider.modee"),
        (
            {"observability": {"logging": {"rotation": {"x": 1}}}},
            "observability.logging.rotation.x",
        ),
        (
            {"general": {"providers": [{"name": "a", "type": "t", "nam": 1}]}},
            "general.providers[0].nam",
        ),
    ],
)
def test_unknown_keys_rejected_with_dotted_name_and_file(home: Path, data: Any, key: str) -> None:
    path = write(Path.cwd() / "dms_config.json", data)
    with pytest.raises(ConfigError) as info:
        load_config()
    msg = str(info.value)
    assert f"unknown config key {key} " in msg
    assert str(path) in msg
    assert "\n" not in msg


def test_keys_match_case_insensitively(home: Path) -> None:
    write(
        Path.cwd() / "dms_config.json",
        {"REST": {"Port": 1234}, "General": {"pushLIVENESSenabled": False, "USER_DIR": "/u"}},
    )
    cfg = load_config()
    assert cfg.rest.port == 1234
    assert cfg.general.push_liveness_enabled is False
    assert cfg.general.user_dir == Path("/u")


def test_provider_config_is_free_form(home: Path) -> None:
    provider = {"Name": "incus", "TYPE": "local-incus", "config": {"AnyKey": {"x": 1}}}
    write(Path.cwd() / "dms_config.json", {"general": {"providers": [provider]}})
    cfg = load_config()
    assert cfg.general.providers[0].name == "incus"
    assert cfg.general.providers[0].config == {"AnyKey": {"x": 1}}


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"rest": {"port": "abc"}}, ["rest.port", "expected integer", '"abc"']),
        ({"rest": {"port": 0}}, ["rest.port", "greater than or equal to 1"]),
        ({"profiler": {"port": 65536}}, ["profiler.port", "less than or equal to 65535"]),
        ({"rest": 5}, ["rest", "expected object"]),
        ({"job": {"allow_privileged_docker": "maybe"}}, ["job.allow_privileged_docker", "boolean"]),
        ({"p2p": {"listen_address": "/ip4/0.0.0.0/tcp/1"}}, ["p2p.listen_address", "list of"]),
        ({"p2p": {"listen_address": ["0.0.0.0:9000"]}}, ["p2p.listen_address[0]", "multiaddr"]),
        (
            {"general": {"port_available_range_from": 500, "port_available_range_to": 400}},
            ["general", "port_available_range_from (500) must be below"],
        ),
    ],
)
def test_bad_values_name_key_type_and_file(home: Path, data: Any, needles: list[str]) -> None:
    path = write(Path.cwd() / "dms_config.json", data)
    with pytest.raises(ConfigError) as info:
        load_config()
    msg = str(info.value)
    for needle in [*needles, str(path)]:
        assert needle in msg
    assert "\n" not in msg


def test_numeric_strings_are_accepted_like_viper(home: Path) -> None:
    write(Path.cwd() / "dms_config.json", {"rest": {"port": "8080"}, "general": {"debug": "true"}})
    cfg = load_config()
    assert cfg.rest.port == 8080
    assert cfg.general.debug is True


def test_invalid_json_and_non_object(home: Path) -> None:
    write(Path.cwd() / "dms_config.json", "{ // comment\n}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config()
    write(Path.cwd() / "dms_config.json", "[1]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config()


def test_duplicate_key_in_other_case_rejected(home: Path) -> None:
    write(Path.cwd() / "dms_config.json", '{"rest": {"port": 1, "PORT": 2}}')
    with pytest.raises(ConfigError, match=r"rest\.port given twice"):
        load_config()


# ---- environment overrides ------------------------------------------------------------------


def test_env_overrides_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path.cwd() / "dms_config.json", {"rest": {"port": 1000}})
    monkeypatch.setenv("DMS_REST_PORT", "2000")
    monkeypatch.setenv("DMS_GENERAL_USER_DIR", "/srv/nunet")
    monkeypatch.setenv("DMS_GENERAL_PAYMENT_PROVIDER_MODE", "true")
    monkeypatch.setenv("DMS_JOB_CONTAINERD_CNI_BRIDGE_IFACE", "br9")
    monkeypatch.setenv("DMS_GENERAL_PUSHLIVENESSENABLED", "false")
    monkeypatch.setenv("DMS_CONN_LOGS", "true")  # not a config key: ignored
    cfg = load_config()
    assert cfg.rest.port == 2000
    assert cfg.general.user_dir == Path("/srv/nunet")
    assert cfg.general.payment_provider.mode is True
    assert cfg.job.containerd.cni_bridge_iface == "br9"
    assert cfg.general.push_liveness_enabled is False


def test_env_names_match_case_insensitively() -> None:
    cfg = load_config(env={"HOME": "/h", "dms_rest_port": "3000"}, cwd=Path("/nonexistent"))
    assert cfg.rest.port == 3000


def test_env_lists_json_or_comma(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMS_P2P_LISTEN_ADDRESS", "/ip4/1.2.3.4/tcp/1, /ip4/1.2.3.4/udp/1/quic-v1")
    assert load_config().p2p.listen_address == ["/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/udp/1/quic-v1"]
    monkeypatch.setenv("DMS_P2P_LISTEN_ADDRESS", '["/ip4/5.6.7.8/tcp/2"]')
    assert load_config().p2p.listen_address == ["/ip4/5.6.7.8/tcp/2"]
    monkeypatch.setenv("DMS_GENERAL_PROVIDERS", '[{"NAME": "p", "type": "local-incus"}]')
    assert load_config().general.providers[0].name == "p"


def test_bootstrap_peers_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path.cwd() / "dms_config.json", {"p2p": {"bootstrap_peers": ["/ip4/9.9.9.9/tcp/9"]}})
    monkeypatch.setenv("DMS_P2P_BOOTSTRAP_PEERS", "/ip4/8.8.8.8/tcp/8")
    monkeypatch.setenv("BOOTSTRAP_PEERS", "/ip4/1.1.1.1/tcp/1,/ip4/2.2.2.2/tcp/2")
    assert load_config().p2p.bootstrap_peers == ["/ip4/1.1.1.1/tcp/1", "/ip4/2.2.2.2/tcp/2"]
    monkeypatch.setenv("BOOTSTRAP_PEERS", "")
    assert load_config().p2p.bootstrap_peers == ["/ip4/8.8.8.8/tcp/8"]


@pytest.mark.parametrize(
    ("name", "value", "needles"),
    [
        ("DMS_REST_PORT", "http", ["DMS_REST_PORT", "rest.port", "expected integer"]),
        ("DMS_REST_PORT", "99999", ["DMS_REST_PORT", "rest.port"]),
        ("DMS_GENERAL_DEBUG", "sometimes", ["DMS_GENERAL_DEBUG", "boolean"]),
        ("DMS_P2P_LISTEN_ADDRESS", "[not json", ["DMS_P2P_LISTEN_ADDRESS", "JSON array"]),
        ("DMS_GENERAL_PORT_AVAILABLE_RANGE_TO", "100", ["DMS_GENERAL_PORT_AVAILABLE_RANGE_TO"]),
        ("BOOTSTRAP_PEERS", "peer1,peer2", ["BOOTSTRAP_PEERS", "p2p.bootstrap_peers[0]"]),
        ("DMS_GENERAL_PROVIDERS", '[{"nm": 1}]', ["DMS_GENERAL_PROVIDERS", "providers[0].nm"]),
    ],
)
def test_bad_env_value_names_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, needles: list[str]
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_config()
    for needle in needles:
        assert needle in str(info.value)


def test_bad_file_value_blamed_on_file_even_with_env(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(Path.cwd() / "dms_config.json", {"rest": {"addr": 5}})
    monkeypatch.setenv("DMS_REST_PORT", "1")
    with pytest.raises(ConfigError, match=f"rest.addr in config file {path}"):
        load_config()


# ---- legacy observability keys --------------------------------------------------------------


def test_legacy_flat_keys_copied_where_nested_is_empty(home: Path) -> None:
    write(
        Path.cwd() / "dms_config.json",
        {
            "observability": {
                "log_level": "DEBUG",
                "log_file": "$HOME/flat.jsonl",
                "max_size": 10,
                "max_backups": 3,
                "max_age": 7,
                "elasticsearch_url": "https://es.example",
                "logging": {"file": "/nested.jsonl", "rotation": {"max_backups": 9}},
            }
        },
    )
    obs = load_config().observability
    assert obs.logging.level == "DEBUG"  # empty → copied
    assert obs.logging.file == "/nested.jsonl"  # set → kept
    assert obs.logging.rotation.max_size == 10
    assert obs.logging.rotation.max_backups == 9
    assert obs.logging.rotation.max_age == 7
    assert obs.log_file == f"{home}/flat.jsonl"
    # The flat elasticsearch keys are left alone, not copied into `elastic`.
    assert obs.elasticsearch_url == "https://es.example"
    assert obs.elastic.url == ""


def test_legacy_defaults_fill_logging(home: Path) -> None:
    logging = load_config().observability.logging
    assert logging.level == "INFO"
    assert logging.file == f"{home}/nunet/logs/nunet-dms-logs.jsonl"


def test_go_duration_strings_for_ttls(home: Path) -> None:
    write(Path.cwd() / "dms_config.json", {"coinmarketcap": {"cache_ttl": "1h30m", "quote_ttl": 5}})
    cfg = load_config()
    assert cfg.coinmarketcap.cache_ttl == 5400.0
    assert cfg.coinmarketcap.quote_ttl == 5.0


def test_override_config_for_command_line_flags(home: Path) -> None:
    from dms.config import override_config

    cfg = load_config()
    new = override_config(cfg, {"rest.port": "7070", "general.debug": True, "p2p.memory": 2048})
    assert (new.rest.port, new.general.debug, new.p2p.memory) == (7070, True, 2048)
    assert cfg.rest.port == 9999  # the original is unchanged
    with pytest.raises(ConfigError, match=r"rest\.port given on the command line"):
        override_config(cfg, {"rest.port": "0"})
