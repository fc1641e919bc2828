"""The ``params`` of a ``wasm`` execution, checked once into a typed :class:`WasmSpec`.

``validate`` runs when a node bids, so everything here is cheap and local (no fetch, no
compile). The rules that matter for safety live here too: a spec never names a host path
that the module would see (there is no mount parameter at all; the module sees only its own
``/sandbox``), and a local module file must be a ``.wasm``/``.wat`` file, so a spec cannot make
the executor read an arbitrary host file and echo it back in a parse error.

Where a module comes from:

* ``module_data`` (base64, as Go marshals ``[]byte``) with ``sha256``: the module travels with
  the deployment (``nunet deploy`` reads the deployer's local file, see
  :func:`dms.jobs.inline_local_modules`); the hash is checked here, before anything else, and
  ``module`` is then only the program's name (``argv[0]``), never opened;
* an http(s) URL, fetched by the executor (size-capped, public addresses only);
* a host path, only when ``allow_host_paths`` (the node setting ``wasm_allow_host_paths``;
  ``nunet executor run`` sets it, since the spec is the user's own): a node serving deployers
  never opens a path a deployer named.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dms.executor._errors import InvalidSpec
from dms.executor._types import SpecConfig

KNOWN_PARAMS = ("args", "env", "fuel", "module", "module_data", "sha256", "timeout")

#: Parameter names that would hand the module host paths; refused with a pointed message
#: rather than the generic "unknown parameter" one.
HOST_PATH_PARAMS = frozenset(
    {
        "binds",
        "dirs",
        "host_path",
        "map_dir",
        "mapdir",
        "mounts",
        "preopen",
        "preopens",
        "volumes",
        "workdir",
        "working_dir",
    }
)

MODULE_SUFFIXES = (".wasm", ".wat")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_FUEL = 2**64 - 1


@dataclass(frozen=True)
class WasmSpec:
    """A checked ``wasm`` execution spec."""

    module: str  # an absolute path, an http(s) URL, or (with ``data``) the module's name
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    fuel: int | None = None
    timeout: float | None = None
    sha256: str | None = None
    data: bytes | None = None  # the module itself (``module_data``), already hash-checked

    @property
    def is_url(self) -> bool:
        return self.data is None and self.module.startswith(("http://", "https://"))

    @property
    def is_inline(self) -> bool:
        return self.data is not None

    @property
    def name(self) -> str:
        """The module's file name: ``argv[0]`` of the program."""
        path = urlsplit(self.module).path if self.is_url else self.module
        return posixpath.basename(path.rstrip("/")) or "module.wasm"


def _fail(message: str) -> InvalidSpec:
    return InvalidSpec(f"wasm execution: {message}")


def _scalar(value: Any, what: str) -> str:
    """A string, or a number YAML parsed out of one (``--n: 5``); never a bool or a list."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        raise _fail(f"{what} must be a string")
    if "\0" in text:
        raise _fail(f"{what} must not contain a NUL character")
    return text


def _args(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail("'args' must be a list of strings")
    return tuple(_scalar(arg, f"args[{i}]") for i, arg in enumerate(value))


def _env_pair(key: Any, value: Any, what: str) -> tuple[str, str]:
    name = _scalar(key, f"{what} name")
    if not name or "=" in name:
        raise _fail(f"{what}: invalid variable name {name!r}")
    return name, _scalar(value, f"{what} value")


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(_env_pair(k, v, f"env[{k!r}]") for k, v in value.items())
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail("'env' must be a mapping or a list of 'NAME=value' strings")
    pairs = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or "=" not in item:
            raise _fail(f"env[{i}] must be a 'NAME=value' string")
        name, _, text = item.partition("=")
        pairs.append(_env_pair(name, text, f"env[{i}]"))
    return tuple(pairs)


def _fuel(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_FUEL:
        raise _fail("'fuel' must be a positive integer (an instruction budget)")
    return value


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _fail("'timeout' must be a positive number of seconds")
    return float(value)


def _sha256(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise _fail("'sha256' must be 64 hexadecimal digits")
    return value.lower()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _module_data(value: Any, sha256: str | None, max_bytes: int | None) -> bytes:
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str):
        if max_bytes is not None and len(value) > (max_bytes + 2) // 3 * 4 + 4:
            raise _fail(f"'module_data' is larger than the {max_bytes} byte limit")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _fail("'module_data' must be base64 (the module's bytes)") from None
    else:
        raise _fail("'module_data' must be base64 (the module's bytes)")
    if not data:
        raise _fail("'module_data' is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise _fail(f"'module_data' is larger than the {max_bytes} byte limit")
    if sha256 is None:
        raise _fail("'module_data' needs 'sha256' (the module's hash, checked before it runs)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise _fail(f"'module_data' has sha256 {digest}, but the spec pins {sha256}; refusing it")
    return data


def _module_name(value: Any) -> str:
    """With inline data, ``module`` only names the program (``argv[0]``)."""
    if value is None:
        return "module.wasm"
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or "\0" in value:
        raise _fail("with 'module_data', 'module' is only the module's file name (no path)")
    return value


def _module(value: Any, module_dirs: Sequence[Path] | None, allow_host_paths: bool = True) -> str:
    if value is None:
        raise _fail("'module' is required (an absolute .wasm/.wat path or an http(s) URL)")
    if not isinstance(value, str) or not value.strip():
        raise _fail("'module' must be an absolute .wasm/.wat path or an http(s) URL")
    if "\0" in value:
        raise _fail("'module' must not contain a NUL character")
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(f"module URL {value!r}: only http:// and https:// URLs are fetched")
        return value
    path = Path(value)
    if not allow_host_paths:
        raise _fail(
            f"module {value!r} is a path on this host, which a deployment may not name; "
            "send the module inline (nunet deploy does) or as an http(s) URL"
        )
    if not path.is_absolute():
        raise _fail(f"module path {value!r} must be absolute (or an http(s) URL)")
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise _fail(f"module file {value} does not exist") from None
    except OSError as exc:
        raise _fail(f"module file {value} cannot be reached: {exc.strerror}") from None
    # The suffix rule applies to what is actually read, so a symlink cannot get round it.
    if real.suffix.lower() not in MODULE_SUFFIXES or path.suffix.lower() not in MODULE_SUFFIXES:
        raise _fail(f"module file {value} must be a .wasm or .wat file")
    if not real.is_file():
        raise _fail(f"module file {value} is not a regular file")
    if module_dirs is not None and not _inside(real, [d.resolve() for d in module_dirs]):
        raise _fail(f"module file {value} is outside the directories this node runs modules from")
    return str(real)


def parse_spec(
    spec: SpecConfig,
    *,
    module_dirs: Sequence[Path] | None = None,
    allow_host_paths: bool = False,
    max_module_bytes: int | None = None,
) -> WasmSpec:
    """Check ``spec`` and return it typed; raises :class:`InvalidSpec` with one line.

    A module given as a host path is refused unless ``allow_host_paths``; ``module_dirs``,
    when given, are then the only directories it may come from. Inline ``module_data`` is
    decoded, capped at ``max_module_bytes`` and checked against ``sha256`` here.
    """
    if spec.type != "wasm":
        raise InvalidSpec(f"wasm executor cannot run a {spec.type!r} execution")
    params = spec.params
    host_paths = sorted(set(params) & HOST_PATH_PARAMS)
    if host_paths:
        raise _fail(
            f"{', '.join(map(repr, host_paths))}: host paths cannot be given to a module; "
            "it sees only its own /sandbox directory"
        )
    unknown = sorted(map(str, set(params) - set(KNOWN_PARAMS)))
    if unknown:
        raise _fail(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(KNOWN_PARAMS)})")
    sha256 = _sha256(params.get("sha256"))
    data = None
    if params.get("module_data") is not None:
        data = _module_data(params["module_data"], sha256, max_module_bytes)
        module = _module_name(params.get("module"))
    else:
        module = _module(params.get("module"), module_dirs, allow_host_paths)
    return WasmSpec(
        module=module,
        args=_args(params.get("args")),
        env=_env(params.get("env")),
        fuel=_fuel(params.get("fuel")),
        timeout=_timeout(params.get("timeout")),
        sha256=sha256,
        data=data,
    )
