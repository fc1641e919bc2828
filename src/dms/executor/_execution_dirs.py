"""Execution directories on the host, shared by the executors that keep files.

Layout: ``<work_dir>/executions/<name>/``, where ``<name>`` is the execution ID when it is a
safe file name, else a sanitized name plus a hash (an ID must never walk out of the executions
directory). Each directory carries a marker naming the executor that owns it, because several
executors may share one work dir (``nunet executor`` runs docker and wasm under one executor ID,
in one work dir), so :meth:`~dms.executor.Executor.cleanup` removes exactly its own.

The marker is ``.nunet-executor``, a JSON object with at least ``executor`` (the back-end name)
and ``executor_id``. Older Docker executors wrote a plain-text ``owner`` file holding only the
executor ID; :func:`owned_dirs` still recognises it, as a ``docker`` directory.

No Docker SDK or wasmtime import here: both back-ends import this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path

#: The marker file (JSON) naming the executor that owns an execution directory.
MARKER = ".nunet-executor"
#: The previous Docker executor's marker: plain text, the executor ID only.
LEGACY_OWNER_FILE = "owner"
#: The back-end whose directories a :data:`LEGACY_OWNER_FILE` marks.
_LEGACY_OWNER_EXECUTOR = "docker"

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def executions_root(work_dir: Path) -> Path:
    return work_dir / "executions"


def directory_name(execution_id: str) -> str:
    """``execution_id`` when it is a safe file name, else a sanitized name plus a hash."""
    if _SAFE_ID.fullmatch(execution_id):
        return execution_id
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", execution_id)[:64].lstrip(".")
    return f"{safe}-{sha256(execution_id.encode()).hexdigest()[:12]}"


def execution_dir(work_dir: Path, execution_id: str) -> Path:
    """``<work_dir>/executions/<safe name of execution_id>``."""
    return executions_root(work_dir) / directory_name(execution_id)


def marker_bytes(executor: str, executor_id: str, **extra: str) -> bytes:
    """The content of a :data:`MARKER` file."""
    return json.dumps({"executor": executor, "executor_id": executor_id, **extra}).encode()


def write_marker(directory: Path, executor: str, executor_id: str, **extra: str) -> None:
    """Mark ``directory`` (which must exist) as ``executor``/``executor_id``'s; ``extra`` adds
    informational fields (``execution_id``, ``job_id``)."""
    fd = os.open(directory / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, marker_bytes(executor, executor_id, **extra))
    finally:
        os.close(fd)


def _owner(directory: Path) -> tuple[str, str] | None:
    """``(executor, executor_id)`` from a directory's marker, in either format."""
    try:
        data = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        pass
    else:
        if isinstance(data, dict):
            executor, executor_id = data.get("executor"), data.get("executor_id")
            if isinstance(executor, str) and isinstance(executor_id, str):
                return executor, executor_id
        return None
    try:
        return _LEGACY_OWNER_EXECUTOR, (directory / LEGACY_OWNER_FILE).read_text()
    except (OSError, ValueError):
        return None


def owned_dirs(root: Path, executor: str, executor_id: str) -> list[Path]:
    """The directories under ``root`` whose marker names ``executor``/``executor_id``."""
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for child in root.iterdir():
            if _owner(child) == (executor, executor_id):
                found.append(child)
    return found


def remove_trees(paths: Iterable[Path]) -> None:
    """Delete each tree, ignoring errors. ``rmtree`` never follows symlinks, so links a workload
    made inside its directory are harmless here."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
