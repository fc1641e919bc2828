"""Per-execution files on the host: ``<work_dir>/executions/<execution_id>/``.

Go writes provision scripts to ``/tmp/nunet/init-<executionID>/``; we keep them under the
executor's work dir so that :meth:`DockerExecutor.cleanup` finds them after a crash, and mark
each directory with the executor that owns it (see :mod:`dms.executor._execution_dirs`),
because several executors may share one work dir. The ``init`` directory is 0700 (scripts
may hold secrets) and is bind-mounted read-only at :data:`~dms.executor._docker_spec.INIT_DIR`;
as in Go, an image whose ``USER`` is not root cannot read them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from dms.executor._docker_spec import INIT_DIR, INIT_WRAPPER, NAME, safe_name
from dms.executor._execution_dirs import (
    LEGACY_OWNER_FILE,
    execution_dir,
    executions_root,
    owned_dirs,
    remove_trees,
    write_marker,
)

_SCRIPT_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


def _legacy_execution_dir(work_dir: Path, execution_id: str) -> Path:
    """Where the previous version put ``execution_id``'s files (differs only for unsafe IDs)."""
    return executions_root(work_dir) / safe_name(execution_id)


def write_provision_scripts(
    work_dir: Path, executor_id: str, execution_id: str, scripts: Sequence[tuple[str, bytes]]
) -> Path:
    """Write ``scripts`` and their wrapper; return the ``init`` directory to mount.

    Scripts run in order; one starting with ``#!`` is executed directly (its interpreter must
    exist in the image), any other through ``/bin/sh``. The wrapper stops at the first failure,
    so the main command never runs after a failed provision step.
    """
    base = execution_dir(work_dir, execution_id)
    base.mkdir(parents=True, exist_ok=True)
    write_marker(base, NAME, executor_id, execution_id=execution_id)
    # Also the previous version's marker, so a downgraded DMS still cleans this directory up.
    (base / LEGACY_OWNER_FILE).write_text(executor_id)
    init = base / "init"
    init.mkdir(mode=0o700, exist_ok=True)
    os.chmod(init, 0o700)
    lines = ["#!/bin/sh", "set -e"]
    for number, (name, body) in enumerate(scripts, start=1):
        file_name = f"{number:02d}-{_SCRIPT_NAME_BAD.sub('_', name) or 'script'}"
        path = init / file_name
        path.write_bytes(body)
        os.chmod(path, 0o700)
        inside = shlex.quote(f"{INIT_DIR}/{file_name}")
        lines.append(inside if body.startswith(b"#!") else f"/bin/sh {inside}")
    wrapper = init / INIT_WRAPPER
    wrapper.write_text("\n".join(lines) + "\n")
    os.chmod(wrapper, 0o700)
    return init


def remove_execution_dir(work_dir: Path, execution_id: str) -> None:
    remove_trees(
        {execution_dir(work_dir, execution_id), _legacy_execution_dir(work_dir, execution_id)}
    )


def remove_owned_dirs(work_dir: Path, executor_id: str) -> None:
    """Delete every execution directory marked as ``executor_id``'s (docker's)."""
    remove_trees(owned_dirs(executions_root(work_dir), NAME, executor_id))
