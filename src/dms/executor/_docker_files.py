"""Per-execution files on the host: ``<work_dir>/executions/<execution_id>/``.

Go writes provision scripts to ``/tmp/nunet/init-<executionID>/``; we keep them under the
executor's work dir so that :meth:`DockerExecutor.cleanup` finds them after a crash, and mark
each directory with the executor that owns it (``owner``), because several executors may share
one work dir. The ``init`` directory is 0700 (scripts may hold secrets) and is bind-mounted
read-only at :data:`~dms.executor._docker_spec.INIT_DIR`; as in Go, an image whose ``USER`` is
not root cannot read them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from dms.executor._docker_spec import INIT_DIR, INIT_WRAPPER, safe_name

OWNER_FILE = "owner"
_SCRIPT_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


def executions_root(work_dir: Path) -> Path:
    return work_dir / "executions"


def execution_dir(work_dir: Path, execution_id: str) -> Path:
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
    (base / OWNER_FILE).write_text(executor_id)
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
    shutil.rmtree(execution_dir(work_dir, execution_id), ignore_errors=True)


def remove_owned_dirs(work_dir: Path, executor_id: str) -> None:
    """Delete every execution directory marked as ``executor_id``'s."""
    root = executions_root(work_dir)
    if not root.is_dir():
        return
    for child in root.iterdir():
        with contextlib.suppress(OSError):
            if (child / OWNER_FILE).read_text() == executor_id:
                shutil.rmtree(child, ignore_errors=True)
