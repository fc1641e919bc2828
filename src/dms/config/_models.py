"""The shape of ``dms_config.json``: one pydantic model per section, defaults from the Go DMS.

The key set is the union of the two Go versions described in spec §5 (the older one with
``general.PushLivenessEnabled`` and ``payment_provider.starting_block_scanning``, the newest one
with ``compute_gateway``, ``providers``, ``containerd``, ``otel`` and ``coinmarketcap``), so a file
written for either Go version loads here. Field names are the JSON keys; the one Go field without
a json tag (``PushLivenessEnabled``) keeps its Go name as an alias.

Sub-objects the spec elides are designed here (Go's defaults for them were not found):

- ``observability.logging.rotation``: ``max_size`` (MB), ``max_backups`` (files), ``max_age``
  (days), mirroring the lumberjack knobs of the legacy flat keys; 0 means "no limit".
- ``observability.elastic``: ``enabled, url, index, api_key, flush_interval`` (seconds) and
  ``insecure_skip_verify``, the nested counterparts of the flat ``elasticsearch_*`` keys. They
  are *not* filled from the flat keys (the Go loader leaves those alone), so they start empty.
- ``job.containerd``: the containerd and CNI locations their tools use by default.
- ``coinmarketcap``: CoinMarketCap's public API; ``cache_ttl`` and ``quote_ttl`` are seconds and
  also accept Go duration strings (``"5m"``, ``"1h30m"``), which is what a Go ``time.Duration``
  field reads from a string.
- ``job.liveness_*``, ``job.healthcheck_*``, ``job.restart_*``: how the deployments this node
  orchestrates are supervised (heartbeats, health checks, restart backoff and limit; see
  ``dms.orchestrator.SupervisionSettings``). Durations take seconds or Go duration strings.

Path-like strings expand ``$HOME``/``${HOME}``/``~`` when validated, against the ``home`` given in
the validation context (``load_config`` passes the home of the environment it reads) or else the
process' home, so ``Config()`` alone is already usable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dms.config._duration import split_go_duration
from dms.config._paths import expand_home as _expand_home

__all__ = [
    "APMConfig",
    "CoinMarketCapConfig",
    "Config",
    "ContainerdConfig",
    "ElasticConfig",
    "GeneralConfig",
    "JobConfig",
    "LoggingConfig",
    "ObservabilityConfig",
    "OtelConfig",
    "P2PConfig",
    "PaymentProviderConfig",
    "ProfilerConfig",
    "ProviderConfig",
    "RestConfig",
    "RotationConfig",
]

DEFAULT_BOOTSTRAP_PEERS: tuple[str, ...] = (
    "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWHzew9HTYzywFuvTHGK5Yzoz7qAhMfxagtCvhvjheoBQ3",
    "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWJMtMN1mTNRfgMqUygT7eSXamVzc9ihpSjeairm9PebmB",
    "/dnsaddr/bootstrap.p2p.nunet.io/p2p/12D3KooWKjSodxxi7UfRHzuk7eGgUF49MoPUCJvtva9K12TqDDsi",
)
DEFAULT_LISTEN_ADDRESSES: tuple[str, ...] = (
    "/ip4/0.0.0.0/tcp/9000",
    "/ip4/0.0.0.0/udp/9000/quic-v1",
)


# --------------------------------------------------------------------------------------------
# value helpers


def _home_from(info: ValidationInfo) -> str:
    """The home directory ``$HOME`` stands for: the loader's (context) or the process'."""
    ctx = info.context if isinstance(info.context, dict) else {}
    home = ctx.get("home")
    return str(home) if home else str(Path.home())


def _expand_path_value(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        return _expand_home(value, _home_from(info))
    if isinstance(value, os.PathLike):
        return _expand_home(os.fspath(value), _home_from(info))
    return value


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_seconds(value: Any) -> Any:
    """Accept seconds as a number, or a Go duration string (``"1h30m"``), since Go's
    ``time.Duration`` decodes such strings; anything else is left for pydantic to reject."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = split_go_duration(text, _DURATION_UNITS)
    if parts is None:
        raise ValueError(f"not a number of seconds or a Go duration: {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


Seconds = Annotated[float, BeforeValidator(_parse_seconds), Field(ge=0)]
#: A duration that must be positive and finite (a 0 or infinite period or window is a mistake).
PositiveSeconds = Annotated[
    float, BeforeValidator(_parse_seconds), Field(gt=0, allow_inf_nan=False)
]
Port = Annotated[int, Field(ge=1, le=65535)]
NonNegative = Annotated[int, Field(ge=0)]


# Multiaddr protocols we accept and whether each takes a value. A full parser belongs to the
# network layer; load-time validation only has to catch typos like "/ip4/0.0.0.0/9000".
_MA_PROTOCOLS: dict[str, bool] = {
    "ip4": True, "ip6": True, "dns": True, "dns4": True, "dns6": True, "dnsaddr": True,
    "tcp": True, "udp": True, "p2p": True, "ipfs": True, "certhash": True, "ip6zone": True,
    "quic": False, "quic-v1": False, "webtransport": False, "webrtc": False,
    "webrtc-direct": False, "ws": False, "wss": False, "tls": False, "noise": False,
    "http": False, "https": False, "p2p-circuit": False,
}  # fmt: skip
_PEER_ID = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,128}$")
_DNS_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


def check_multiaddr(text: str) -> str:
    """Check that ``text`` reads as a multiaddr (``/ip4/1.2.3.4/tcp/9000/...``).

    Raises ``ValueError`` naming the first bad component; returns the text unchanged.
    """
    if not text.startswith("/") or text.endswith("/"):
        raise ValueError(f"not a multiaddr (must start with '/' and not end with it): {text!r}")
    parts = text[1:].split("/")
    i = 0
    while i < len(parts):
        proto = parts[i]
        if proto not in _MA_PROTOCOLS:
            raise ValueError(f"unknown multiaddr protocol {proto!r} in {text!r}")
        if not _MA_PROTOCOLS[proto]:
            i += 1
            continue
        if i + 1 >= len(parts) or parts[i + 1] == "":
            raise ValueError(f"multiaddr protocol {proto!r} needs a value in {text!r}")
        arg = parts[i + 1]
        _check_multiaddr_value(proto, arg, text)
        i += 2
    return text


def _check_multiaddr_value(proto: str, arg: str, text: str) -> None:
    try:
        if proto == "ip4":
            ipaddress.IPv4Address(arg)
        elif proto == "ip6":
            ipaddress.IPv6Address(arg)
    except ValueError:
        raise ValueError(f"bad {proto} address {arg!r} in {text!r}") from None
    if proto in ("tcp", "udp") and not (arg.isdigit() and 0 <= int(arg) <= 65535):
        raise ValueError(f"bad {proto} port {arg!r} in {text!r}")
    if proto in ("dns", "dns4", "dns6", "dnsaddr") and not _DNS_NAME.match(arg):
        raise ValueError(f"bad host name {arg!r} in {text!r}")
    if proto in ("p2p", "ipfs") and not _PEER_ID.match(arg):
        raise ValueError(f"bad peer id {arg!r} in {text!r}")


def _check_multiaddr_input(value: Any) -> Any:
    return check_multiaddr(value) if isinstance(value, str) else value


Multiaddr = Annotated[str, BeforeValidator(_check_multiaddr_input)]


def _section_default() -> Any:
    """Default of a section field: an empty object, *validated* like one read from a file, so
    the loader's ``home`` context reaches the defaults nested inside it too."""
    return {}


class _Section(BaseModel):
    """Base of every section: unknown keys are an error (Go's ``UnmarshalExact``) and a field
    with a Go-name alias can also be set by its Python name from code."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


# --------------------------------------------------------------------------------------------
# sections


class ProfilerConfig(_Section):
    """The Go pprof HTTP endpoint; kept so Go configs load (a Python profiler may use it)."""

    enabled: bool = True
    addr: str = "127.0.0.1"
    port: Port = 6060


class PaymentProviderConfig(_Section):
    """Chain endpoints for contract payments (Ethereum NTX and Cardano)."""

    mode: bool = False
    ethereum_rpc_url: str = "https://ethereum-sepolia-rpc.publicnode.com"
    ethereum_rpc_token: str = ""
    ntx_contract_address: str = "0xB37216b70a745129966E553cF8Ee2C51e1cB359A"
    starting_block_scanning: str = "0x8D7374"
    block_frost_api_url: str = ""
    block_frost_api_key: str = ""
    cardano_asset_name: str = ""
    cardano_asset_policy_id: str = ""


class ProviderConfig(_Section):
    """One compute provider of the newest Go DMS (e.g. ``type: "local-incus"``); ``config`` is
    free-form and belongs to the provider type, so its keys are not checked here."""

    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class GeneralConfig(_Section):
    """Node identity, directories and port ranges."""

    env: str = "production"
    user_dir: Path = Path("$HOME/.nunet")
    work_dir: Path = Path("$HOME/nunet")
    data_dir: Path = Path("$HOME/nunet/data")
    debug: bool = False
    host_city: str = ""
    host_country: str = ""
    host_continent: str = ""
    # Not in Go's config (its bids take ASN/ISP from GeoIP); named like the other host_* keys so
    # a node can state its whole ``Location`` (spec §7). Leave them unset in files a Go DMS
    # must also read: Go rejects unknown keys.
    host_asn: NonNegative = 0
    host_isp: str = ""
    # The Go default upper bound is 65536, one past the last port: the range is half-open.
    port_available_range_from: Annotated[int, Field(ge=1, le=65535)] = 16384
    port_available_range_to: Annotated[int, Field(ge=2, le=65536)] = 65536
    storage_mode: bool = False
    storage_ca_directory: Path = Path("$HOME/.nunet/storage_ca_directory")
    storage_bricks_dir: Path = Path("$HOME/.nunet/storage_bricks_dir")
    storage_glusterfs_hostname: str = ""
    payment_provider: PaymentProviderConfig = Field(default_factory=_section_default)
    push_liveness_enabled: bool = Field(default=True, alias="PushLivenessEnabled")
    compute_gateway: bool = False
    providers: list[ProviderConfig] = Field(default_factory=list)

    @field_validator(
        "user_dir", "work_dir", "data_dir", "storage_ca_directory", "storage_bricks_dir",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        return _expand_path_value(value, info)

    @model_validator(mode="after")
    def _check_range(self) -> GeneralConfig:
        if self.port_available_range_from >= self.port_available_range_to:
            raise ValueError(
                f"port_available_range_from ({self.port_available_range_from}) must be below "
                f"port_available_range_to ({self.port_available_range_to})"
            )
        return self


class RestConfig(_Section):
    """Where the REST API listens (the CLI reaches the daemon here)."""

    addr: str = "127.0.0.1"
    port: Port = 9999


class P2PConfig(_Section):
    """libp2p listen addresses, bootstrap peers and resource-manager limits (MB, fds)."""

    listen_address: list[Multiaddr] = Field(default_factory=lambda: list(DEFAULT_LISTEN_ADDRESSES))
    bootstrap_peers: list[Multiaddr] = Field(default_factory=lambda: list(DEFAULT_BOOTSTRAP_PEERS))
    memory: NonNegative = 1024
    fd: NonNegative = 512


class ContainerdConfig(_Section):
    """The containerd executor's socket and CNI locations (defaults are containerd's own)."""

    socket_path: str = "/run/containerd/containerd.sock"
    namespace: str = "nunet"
    config_path: str = ""
    cni_net_conf_dir: str = "/etc/cni/net.d"
    cni_plugin_dir: str = "/opt/cni/bin"
    cni_network_name: str = "nunet"
    cni_bridge_iface: str = "nunet0"
    netns_base_dir: str = "/var/run/netns"


class JobConfig(_Section):
    """Policy for jobs this node accepts, and how the deployments it orchestrates are kept up.

    The supervision keys (``liveness_*``, ``healthcheck_*``, ``restart_*``) are not in Go's
    config; durations are seconds or Go duration strings (``"500ms"``, ``"1m"``). Leave them
    unset in files a Go DMS must also read: Go rejects unknown keys.
    """

    allow_privileged_docker: bool = False
    require_contracts_for_deployment: bool = False
    containerd: ContainerdConfig = Field(default_factory=_section_default)
    # Supervision (dms.orchestrator.SupervisionSettings has the meaning of each).
    liveness_interval: PositiveSeconds = 5.0
    liveness_window: PositiveSeconds = 20.0
    healthcheck_interval: PositiveSeconds = 30.0
    healthcheck_timeout: PositiveSeconds = 5.0
    healthcheck_failures: Annotated[int, Field(ge=1)] = 3
    restart_backoff: PositiveSeconds = 1.0
    restart_backoff_max: PositiveSeconds = 60.0
    restart_limit: NonNegative = 5
    restart_window: PositiveSeconds = 600.0

    @model_validator(mode="after")
    def _check_supervision(self) -> JobConfig:
        if self.liveness_window <= self.liveness_interval:
            raise ValueError(
                f"liveness_window ({self.liveness_window:g}s) must exceed "
                f"liveness_interval ({self.liveness_interval:g}s)"
            )
        if self.restart_backoff_max < self.restart_backoff:
            raise ValueError(
                f"restart_backoff_max ({self.restart_backoff_max:g}s) must be at least "
                f"restart_backoff ({self.restart_backoff:g}s)"
            )
        return self


class RotationConfig(_Section):
    """Log file rotation: size in MB, number of old files, age in days; 0 = no limit."""

    max_size: NonNegative = 0
    max_backups: NonNegative = 0
    max_age: NonNegative = 0


class LoggingConfig(_Section):
    """Log level and JSON-lines file; empty values are filled from the legacy flat keys."""

    level: str = ""
    file: str = ""
    rotation: RotationConfig = Field(default_factory=_section_default)

    @field_validator("file", mode="before")
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        return _expand_path_value(value, info)


class ElasticConfig(_Section):
    """Log shipping to Elasticsearch (nested form of the flat ``elasticsearch_*`` keys)."""

    enabled: bool = False
    url: str = ""
    index: str = ""
    api_key: str = ""
    flush_interval: NonNegative = 0
    insecure_skip_verify: bool = False


class OtelConfig(_Section):
    """OpenTelemetry export; off unless configured."""

    enabled: bool = False
    endpoint: str = ""
    insecure: bool = False


class ObservabilityConfig(_Section):
    """Logging, log shipping and tracing. The flat keys are the legacy form, still read."""

    logging: LoggingConfig = Field(default_factory=_section_default)
    elastic: ElasticConfig = Field(default_factory=_section_default)
    otel: OtelConfig = Field(default_factory=_section_default)
    log_level: str = "INFO"
    log_file: str = "$HOME/nunet/logs/nunet-dms-logs.jsonl"
    max_size: NonNegative = 0
    max_backups: NonNegative = 0
    max_age: NonNegative = 0
    elasticsearch_url: str = "https://telemetry.nunet.io"
    elasticsearch_index: str = "nunet-dms"
    flush_interval: NonNegative = 5
    elasticsearch_enabled: bool = False
    elasticsearch_api_key: str = ""
    insecure_skip_verify: bool = True

    @field_validator("log_file", mode="before")
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        return _expand_path_value(value, info)


class APMConfig(_Section):
    """Elastic APM endpoint."""

    server_url: str = "https://apm.telemetry.nunet.io"
    service_name: str = "nunet-dms"
    environment: str = "production"
    api_key: str = ""
    secret_token: str = ""


class CoinMarketCapConfig(_Section):
    """Price quotes for contract payments (newest Go DMS); TTLs in seconds."""

    api_key: str = ""
    base_url: str = "https://pro-api.coinmarketcap.com"
    endpoint_path: str = "/v2/cryptocurrency/quotes/latest"
    cache_ttl: Seconds = 300.0
    quote_ttl: Seconds = 60.0


class Config(_Section):
    """The whole ``dms_config.json``; ``load_config`` builds it from defaults, file and env."""

    profiler: ProfilerConfig = Field(default_factory=_section_default)
    general: GeneralConfig = Field(default_factory=_section_default)
    rest: RestConfig = Field(default_factory=_section_default)
    p2p: P2PConfig = Field(default_factory=_section_default)
    job: JobConfig = Field(default_factory=_section_default)
    observability: ObservabilityConfig = Field(default_factory=_section_default)
    apm: APMConfig = Field(default_factory=_section_default)
    coinmarketcap: CoinMarketCapConfig = Field(default_factory=_section_default)

    def get(self, dotted_key: str) -> Any:
        """The value at ``dotted_key`` (case-insensitive, canonical or Go spelling): a section
        model for an object key, the plain value for a leaf. Unknown keys raise
        :class:`~dms.config.UnknownConfigKey`."""
        from dms.config._schema import resolve_key

        value: Any = self
        for attr in resolve_key(dotted_key).attrs:
            value = getattr(value, attr)
        return value
