"""Execution directories shared by the executors (:mod:`dms.executor._execution_dirs`)."""

from __future__ import annotations

import json
from pathlib import Path

from dms.executor._docker_files import remove_execution_dir, remove_owned_dirs
from dms.executor._docker_spec import safe_name
from dms.executor._execution_dirs import (
    execution_dir,
    executions_root,
    owned_dirs,
    remove_trees,
    write_marker,
)


def test_execution_dir_stays_inside_the_executions_root(tmp_path: Path) -> None:
    assert execution_dir(tmp_path, "e1") == tmp_path / "executions" / "e1"
    escape = execution_dir(tmp_path, "../../escape")
    assert escape.parent == executions_root(tmp_path)
    assert escape.name.startswith("_.._escape-")
    assert execution_dir(tmp_path, "a/b") != execution_dir(tmp_path, "a_b")


def test_owned_dirs_reads_both_marker_formats(tmp_path: Path) -> None:
    root = executions_root(tmp_path)
    dirs = {name: root / name for name in ("new", "wasm-old", "docker-old", "other", "none")}
    for path in dirs.values():
        path.mkdir(parents=True)
    write_marker(dirs["new"], "docker", "me", execution_id="new")
    (dirs["wasm-old"] / ".nunet-executor").write_text(
        json.dumps({"executor": "wasm", "executor_id": "me", "execution_id": "w", "job_id": "j"})
    )
    (dirs["docker-old"] / "owner").write_text("me")  # the previous Docker executor's marker
    write_marker(dirs["other"], "docker", "someone-else")
    (root / "a-file").write_text("not a directory")
    assert sorted(p.name for p in owned_dirs(root, "docker", "me")) == ["docker-old", "new"]
    assert [p.name for p in owned_dirs(root, "wasm", "me")] == ["wasm-old"]
    assert owned_dirs(tmp_path / "missing", "wasm", "me") == []
    remove_trees(owned_dirs(root, "docker", "me"))
    assert sorted(p.name for p in root.iterdir()) == ["a-file", "none", "other", "wasm-old"]


def test_docker_removes_directories_of_the_previous_naming(tmp_path: Path) -> None:
    root = executions_root(tmp_path)
    legacy = root / "escape-0123abcd"  # previous name of an unsafe ID: found by its marker
    legacy.mkdir(parents=True)
    (legacy / "owner").write_text("exA")
    remove_owned_dirs(tmp_path, "exA")
    assert not legacy.exists()
    current = execution_dir(tmp_path, "e/1")
    previous = root / safe_name("e/1")  # where the previous version put it
    current.mkdir()
    previous.mkdir()
    remove_execution_dir(tmp_path, "e/1")
    assert not current.exists() and not previous.exists()
