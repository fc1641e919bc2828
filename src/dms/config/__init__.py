"""The DMS configuration (``dms_config.json``), compatible with the Go DMS (spec §5).

Load the effective configuration with :func:`load_config` (defaults, the first file found,
``DMS_*`` and ``BOOTSTRAP_PEERS`` overrides) and read it through attributes
(``config.rest.port``, ``config.general.user_dir``) or :meth:`Config.get` with a dotted key.
:func:`set_config_value`, :func:`edit_config` and :func:`save_config` change the file, always
validating first and writing atomically. Every failure is a one-line
:class:`~dms.errors.ConfigError`. :func:`split_go_duration` is the one reader of Go's duration
syntax, for config fields and CLI flags alike.
"""

from dms.config._duration import GO_DURATION_UNITS_NS, split_go_duration
from dms.config._load import (
    CONFIG_FILE_NAME,
    apply_legacy_observability,
    config_search_paths,
    config_to_json,
    find_config_file,
    load_config,
    override_config,
    read_config_file,
)
from dms.config._models import (
    APMConfig,
    CoinMarketCapConfig,
    Config,
    ContainerdConfig,
    ElasticConfig,
    GeneralConfig,
    JobConfig,
    LoggingConfig,
    ObservabilityConfig,
    OtelConfig,
    P2PConfig,
    PaymentProviderConfig,
    ProfilerConfig,
    ProviderConfig,
    RestConfig,
    RotationConfig,
    check_multiaddr,
)
from dms.config._schema import UnknownConfigKey, env_keys
from dms.config._write import (
    default_config,
    edit_config,
    save_config,
    set_config_value,
    validate_config_file,
    writable_config_path,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "GO_DURATION_UNITS_NS",
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
    "UnknownConfigKey",
    "apply_legacy_observability",
    "check_multiaddr",
    "config_search_paths",
    "config_to_json",
    "default_config",
    "edit_config",
    "env_keys",
    "find_config_file",
    "load_config",
    "override_config",
    "read_config_file",
    "save_config",
    "set_config_value",
    "split_go_duration",
    "validate_config_file",
    "writable_config_path",
]
