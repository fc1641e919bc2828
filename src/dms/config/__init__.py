"""The DMS configuration (``dms_config.json``), compatible with the Go DMS (spec §5).

Load the effective configuration with :func:`load_config` (defaults, the first file found,
``DMS_*`` and ``BOOTSTRAP_PEERS`` overrides) and read it through attributes
(``config.rest.port``, ``config.general.user_dir``) or :meth:`Config.get` with a dotted key.
:func:`set_config_value`, :func:`edit_config` and :func:`save_config` change the file, always
validating first and writing atomically. Every failure is a one-line
:class:`~dms.errors.ConfigError`. :func:`split_go_duration` is the one reader of Go's duration
syntax, for config fields and CLI flags alike.

:func:`client_settings` gives the CLI ``general.user_dir``, ``rest.addr`` and ``rest.port``
exactly as :func:`load_config` would, without building the models for the usual inputs. The
names backed by pydantic (the models, the loader, the writers) are therefore loaded on first
use (PEP 562): importing this package alone costs no pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dms._lazy import lazy_names
from dms.config._client import ClientSettings, client_settings
from dms.config._duration import GO_DURATION_UNITS_NS, split_go_duration
from dms.config._paths import CONFIG_FILE_NAME, config_search_paths, find_config_file

if TYPE_CHECKING:
    from dms.config._load import (
        apply_legacy_observability,
        config_to_json,
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

#: The modules behind each lazily loaded name (all of them import pydantic): module -> names.
_PYDANTIC: dict[str, tuple[str, ...]] = {
    "dms.config._load": (
        "apply_legacy_observability",
        "config_to_json",
        "load_config",
        "override_config",
        "read_config_file",
    ),
    "dms.config._models": (
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
        "check_multiaddr",
    ),
    "dms.config._schema": ("UnknownConfigKey", "env_keys"),
    "dms.config._write": (
        "default_config",
        "edit_config",
        "save_config",
        "set_config_value",
        "validate_config_file",
        "writable_config_path",
    ),
}
__getattr__, __dir__ = lazy_names(__name__, globals(), _PYDANTIC)


__all__ = [
    "CONFIG_FILE_NAME",
    "GO_DURATION_UNITS_NS",
    "APMConfig",
    "ClientSettings",
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
    "client_settings",
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
