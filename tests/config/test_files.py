"""``dms._files.atomic_write``: the one atomic file writer (config, keystore, capability store)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dms._files import atomic_write


def test_new_file_gets_mode_and_no_temp_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    atomic_write(path, b"data")
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_keep_mode_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    atomic_write(path, b"new", tmp_name="f.tmp", keep_mode=True)
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
    atomic_write(path, b"newer")
    assert path.stat().st_mode & 0o777 == 0o600


def test_failed_rename_removes_temp_file_and_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"old")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new", tmp_name=".f.json.tmp")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_failing_directory_fsync_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.json"
    real_fsync = os.fsync
    synced: list[str] = []

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        synced.append("file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(path, b"data")
    assert path.read_bytes() == b"data"
    assert synced == ["file"]
