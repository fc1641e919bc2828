"""Local WASM modules travel inside the deployment, pinned by their SHA-256.

Why: a deployer's ``module: hello.wasm`` names a file on the deployer's machine. A provider
must never open a host path that someone else named (it could be the provider's own secrets),
so the deployer (the CLI) reads the file and replaces the path by its bytes: params
``module_data`` (base64, as Go marshals ``[]byte``) and ``sha256`` (hex), plus ``module`` reduced
to the file's name (the program's ``argv[0]``). The wasm executor checks the hash before it
compiles anything. Modules are size-capped (a deployment is a message); bigger ones belong on
an http(s) URL with a pinned ``sha256``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from pathlib import Path

from dms.errors import InvalidInput
from dms.executor import SpecConfig
from dms.jobs._load import is_local_module, load_ensemble
from dms.jobs._model import Ensemble
from dms.jobs._problems import EnsembleInvalid, Problem

#: Largest module sent inline with a deployment.
MAX_INLINE_MODULE_BYTES = 4 * 1024 * 1024
_SUFFIXES = (".wasm", ".wat")


def _inline(spec: SpecConfig, base_dir: Path, max_bytes: int) -> SpecConfig:
    """``spec`` with its local module read in; raises ``ValueError`` with the reason."""
    module = str(spec.params["module"])
    path = Path(module)
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(f"module {module} must be a .wasm or .wat file")
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ValueError(f"cannot read module {module}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ValueError(
            f"module {module} is larger than {max_bytes} bytes, the limit for a module sent "
            "with a deployment; serve it over https and pin its sha256"
        )
    digest = hashlib.sha256(data).hexdigest()
    pinned = spec.params.get("sha256")
    if pinned is not None and (not isinstance(pinned, str) or pinned.lower() != digest):
        raise ValueError(f"module {module} has sha256 {digest}, but the ensemble pins {pinned!r}")
    params = {
        **spec.params,
        "module": path.name,
        "module_data": base64.b64encode(data).decode("ascii"),
        "sha256": digest,
    }
    return SpecConfig(spec.type, params)


def inline_local_modules(
    ensemble: Ensemble, base_dir: Path, *, max_bytes: int = MAX_INLINE_MODULE_BYTES
) -> Ensemble:
    """``ensemble`` with every wasm module given as a local path replaced by inline bytes.

    Relative paths are relative to ``base_dir``. Raises :class:`EnsembleInvalid` naming each
    module that cannot be sent (unreadable, not a module file, over ``max_bytes``, or not
    matching a pinned ``sha256``).
    """
    problems: list[Problem] = []
    allocations = dict(ensemble.allocations)
    for name, alloc in ensemble.allocations.items():
        if not is_local_module(alloc.execution):
            continue
        try:
            allocations[name] = replace(
                alloc, execution=_inline(alloc.execution, base_dir, max_bytes)
            )
        except ValueError as exc:
            problems.append(Problem(f"allocations.{name}.execution.module", None, str(exc)))
    if problems:
        raise EnsembleInvalid(problems)
    return replace(ensemble, allocations=allocations)


def load_ensemble_file(file: Path) -> Ensemble:
    """The ensemble in ``file`` as a deployer sends it: validated (relative module paths
    against the file's folder) and with its local WASM modules inlined.

    Raises :class:`EnsembleInvalid` with every problem, or :class:`InvalidInput` when the file
    cannot be read as UTF-8 text.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read {file}: not UTF-8 text") from None
    base_dir = file.resolve().parent
    return inline_local_modules(load_ensemble(text, base_dir=base_dir), base_dir)
