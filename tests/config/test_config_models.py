"""Config models: defaults equal spec §5, key tables, value checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dms.config
from dms.config import (
    Config,
    UnknownConfigKey,
    check_multiaddr,
    config_to_json,
    default_config,
    env_keys,
)
from dms.errors import ConfigError, NotFound

# Spec §5 defaults, verbatim except the elided `logging`/`elastic` sub-objects.
SPEC_DEFAULTS = json.loads(
    """
{
 "profiler": {"enabled": true, "addr": "127.0.0.1", "port": 6060},
 "general": {"env": "production", "user_dir": "$HOME/.nunet", "work_dir": "$HOME/nunet",
   "data_dir": "$HOME/nunet/data", "debug": false, "host_city": "", "host_country": "",
   "host_continent": "", "port_available_range_from": 16384, "port_available_range_to": 65536,
   "storage_mode": false, "storage_ca_directory": "$HOME/.nunet/storage_ca_directory",
   "storage_bricks_dir": "$HOME/.nunet/storage_bricks_dir", "storage_glusterfs_hostname": "",
   "payment_provider": {"mode": false,
     "ethereum_rpc_url": "https://ethereum-sepolia-rpc.publicnode.com",
     "ethereum_rpc_token": "", "ntx_contract_address": "0xB37216b70a745129966E553cF8Ee2C51e1cB359A",
     "starting_block_scanning": "0x8D7374", "block_frost_api_url": "", "block_frost_api_key": "",
     "cardano_asset_name": "", "cardano_asset_policy_id": ""},
   "PushLivenessEnabled": true},
 "rest": {"addr": "127.0.0.1", "port": 9999},
 "p2p": {"listen_address": ["/ip4/0.0.0.0/tcp/9000", "/ip4/0.0.0.0/udp/9000/quic-v1"],
   "bootstrap_peers": [
     "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWHzew9HTYzywFuvTHGK5Yzoz7qAhMfxagtCvhvjheoBQ3",
     "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWJMtMN1mTNRfgMqUygT7eSXamVzc9ihpSjeairm9PebmB",
     "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWKjSodxxi7UfRHzuk7eGgUF49MoPUCJvtva9K12TqDDsi"],
   "memory": 1024, "fd": 512},
 "job": {"allow_privileged_docker": false},
 "observability": {
   "log_level": "INFO", "log_file": "$HOME/nunet/logs/nunet-dms-logs.jsonl",
   "max_size": 0, "max_backups": 0, "max_age": 0,
   "elasticsearch_url": "https://telemetry.nunet.io", "elasticsearch_index": "nunet-dms",
   "flush_interval": 5, "elasticsearch_enabled": false, "elasticsearch_api_key": "",
   "insecure_skip_verify": true},
 "apm": {"server_url": "https://apm.telemetry.nunet.io", "service_name": "nunet-dms",
   "environment": "production", "api_key": "", "secret_token": ""}
}
""".replace("$HOME", "/home/tester")
)


def _is_subset(expected: object, actual: object, path: str = "") -> list[str]:
    """Keys of `expected` whose values differ in `actual` (extra keys in actual are fine)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [path]
        out: list[str] = []
        for key, value in expected.items():
            out += _is_subset(value, actual.get(key), f"{path}.{key}")
        return out
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def test_defaults_match_spec_with_home_expanded() -> None:
    data = config_to_json(default_config({"HOME": "/home/tester"}))
    assert _is_subset(SPEC_DEFAULTS, data) == []


def test_newest_keys_have_defaults() -> None:
    cfg = default_config({"HOME": "/h"})
    assert cfg.general.compute_gateway is False
    assert cfg.general.providers == []
    assert cfg.job.require_contracts_for_deployment is False
    assert cfg.job.containerd.socket_path == "/run/containerd/containerd.sock"
    # Supervision keys (ours, not Go's): Go's health-check timing, a 20 s liveness window.
    assert (cfg.job.healthcheck_interval, cfg.job.healthcheck_failures) == (30.0, 3)
    assert (cfg.job.liveness_interval, cfg.job.liveness_window) == (5.0, 20.0)
    assert (cfg.job.restart_limit, cfg.job.restart_window) == (5, 600.0)
    assert cfg.observability.otel.enabled is False
    assert cfg.coinmarketcap.cache_ttl == 300.0
    # Nested logging starts empty; load_config fills it from the legacy flat keys.
    assert cfg.observability.logging.level == ""
    assert cfg.observability.logging.rotation.max_size == 0


def test_location_keys_beyond_go_default_to_unset() -> None:
    cfg = default_config({"HOME": "/h"})
    assert (cfg.general.host_asn, cfg.general.host_isp) == (0, "")
    assert Config.model_validate({"general": {"host_asn": 24757}}).general.host_asn == 24757
    with pytest.raises(ValueError, match="host_asn"):
        Config.model_validate({"general": {"host_asn": -1}})


def test_home_paths_are_real_paths() -> None:
    cfg = default_config({"HOME": "/h"})
    assert cfg.general.user_dir == Path("/h/.nunet")
    assert isinstance(cfg.general.work_dir, Path)
    assert cfg.observability.log_file == "/h/nunet/logs/nunet-dms-logs.jsonl"


def test_plain_config_uses_process_home() -> None:
    assert Config().general.user_dir == Path.home() / ".nunet"


def test_get_is_case_insensitive_and_knows_go_names() -> None:
    cfg = default_config({"HOME": "/h"})
    assert cfg.get("REST.Port") == 9999
    assert cfg.get("general.pushlivenessenabled") is True
    assert cfg.get("general.payment_provider.MODE") is False
    assert cfg.get("p2p") is cfg.p2p


@pytest.mark.parametrize("key", ["nope", "rest.nope", "rest.port.x", "", "rest..port"])
def test_get_unknown_key_is_config_error_and_not_found(key: str) -> None:
    with pytest.raises(UnknownConfigKey) as info:
        Config().get(key)
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, NotFound)
    assert "\n" not in str(info.value)


def test_env_names_are_unique_and_include_nested_underscored_keys() -> None:
    table = env_keys()
    assert table["DMS_REST_PORT"].dotted == "rest.port"
    assert table["DMS_GENERAL_USER_DIR"].dotted == "general.user_dir"
    assert table["DMS_GENERAL_PAYMENT_PROVIDER_MODE"].dotted == "general.payment_provider.mode"
    assert table["DMS_JOB_CONTAINERD_CNI_NET_CONF_DIR"].dotted == "job.containerd.cni_net_conf_dir"
    assert table["DMS_GENERAL_PUSHLIVENESSENABLED"].dotted == "general.PushLivenessEnabled"
    # leaf_keys built the table without collisions (it raises otherwise).
    assert len(table) == len({info.dotted for info in table.values()})


@pytest.mark.parametrize(
    "addr",
    [
        "/ip4/0.0.0.0/tcp/9000",
        "/ip4/0.0.0.0/udp/9000/quic-v1",
        "/ip6/::/tcp/0",
        "/dns4/example.com/tcp/443/wss",
        "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWHzew9HTYzywFuvTHGK5Yzoz7qAhMfxagtCvhvjheoBQ3",
    ],
)
def test_good_multiaddrs(addr: str) -> None:
    assert check_multiaddr(addr) == addr


@pytest.mark.parametrize(
    "addr",
    [
        "0.0.0.0:9000",
        "/ip4/0.0.0.0/9000",
        "/ip4/300.0.0.1/tcp/1",
        "/ip4/0.0.0.0/tcp/70000",
        "/ip4/0.0.0.0/tcp",
        "/ip4/0.0.0.0/tcp/1/",
        "/p2p/not-a-peer-id!",
    ],
)
def test_bad_multiaddrs(addr: str) -> None:
    with pytest.raises(ValueError):
        check_multiaddr(addr)


def test_public_api_list() -> None:
    assert set(dms.config.__all__) >= {
        "Config",
        "load_config",
        "find_config_file",
        "config_to_json",
        "set_config_value",
        "save_config",
        "edit_config",
    }
    for name in dms.config.__all__:
        assert hasattr(dms.config, name)
