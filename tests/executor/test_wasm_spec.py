"""WASM specs are checked before anything runs, each refusal one clear line; and how a run's
outcome becomes a result (termination, OOM evidence) without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dms.executor import InvalidSpec, SpecConfig, Termination
from dms.executor._wasm_logs import tail_offset
from dms.executor._wasm_result import Outcome, OutcomeKind, RunContext, StopReason, result_of
from dms.executor._wasm_spec import WasmSpec, parse_spec
from tests.executor import wasm_fixtures as wat
from tests.executor.wasm_fixtures.support import make_executor, module_file, wasm_request


def _spec(**params: Any) -> SpecConfig:
    return SpecConfig("wasm", params)


def test_a_full_spec_is_parsed(tmp_path: Path) -> None:
    module = module_file(tmp_path, "m.wasm", b"\0asm")
    spec = parse_spec(
        _spec(
            module=str(module),
            args=["-v", 3],
            env=["A=1", "B=x=y"],
            fuel=10,
            timeout=1.5,
            sha256="AB" * 32,
        ),
        allow_host_paths=True,
    )
    assert spec == WasmSpec(
        str(module.resolve()), ("-v", "3"), (("A", "1"), ("B", "x=y")), 10, 1.5, "ab" * 32
    )
    assert spec.name == "m.wasm" and not spec.is_url
    url = parse_spec(_spec(module="https://example.org/x/tool.wasm?v=2", env={"K": "V"}))
    assert url.is_url and url.name == "tool.wasm" and url.env == (("K", "V"),)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "'module' is required"),
        ({"module": ""}, "must be an absolute .wasm/.wat path or an http(s) URL"),
        ({"module": "hello.wasm"}, "must be absolute"),
        (
            {"module": "/nonexistent/hello.wasm"},
            "module file /nonexistent/hello.wasm does not exist",
        ),
        ({"module": "/etc/passwd"}, "must be a .wasm or .wat file"),
        ({"module": "ftp://example.org/m.wasm"}, "only http:// and https:// URLs"),
        ({"module": "file:///etc/passwd"}, "only http:// and https:// URLs"),
        ({"module": "https://x/m.wasm", "mounts": ["/:/host"]}, "host paths cannot be given"),
        ({"module": "https://x/m.wasm", "preopens": {"/": "/"}}, "host paths cannot be given"),
        (
            {"module": "https://x/m.wasm", "image": "x", "cmd": []},
            "unknown parameter(s) cmd, image",
        ),
        ({"module": "https://x/m.wasm", "args": "-v"}, "'args' must be a list of strings"),
        ({"module": "https://x/m.wasm", "args": [["x"]]}, "args[0] must be a string"),
        ({"module": "https://x/m.wasm", "args": ["a\0b"]}, "must not contain a NUL"),
        ({"module": "https://x/m.wasm", "env": ["NOEQUALS"]}, "env[0] must be a 'NAME=value'"),
        ({"module": "https://x/m.wasm", "env": {"A=B": "1"}}, "invalid variable name"),
        ({"module": "https://x/m.wasm", "env": {"A": True}}, "value must be a string"),
        ({"module": "https://x/m.wasm", "fuel": 0}, "'fuel' must be a positive integer"),
        ({"module": "https://x/m.wasm", "fuel": 1.5}, "'fuel' must be a positive integer"),
        ({"module": "https://x/m.wasm", "timeout": -1}, "'timeout' must be a positive number"),
        ({"module": "https://x/m.wasm", "timeout": "5s"}, "'timeout' must be a positive number"),
        ({"module": "https://x/m.wasm", "sha256": "abc"}, "'sha256' must be 64 hexadecimal"),
    ],
)
def test_invalid_specs_are_refused_in_one_line(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(_spec(**params), allow_host_paths=True)
    assert message in str(info.value)
    assert "\n" not in str(info.value) and str(info.value).startswith("wasm execution: ")


def test_wrong_type_and_module_dirs(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="cannot run a 'docker' execution"):
        parse_spec(SpecConfig("docker", {"image": "x"}))
    inside = module_file(tmp_path, "ok.wat", wat.hello())
    outside = tmp_path / "elsewhere.wat"
    outside.write_text(wat.hello())
    dirs = [tmp_path / "modules"]
    parse_spec(_spec(module=str(inside)), module_dirs=dirs, allow_host_paths=True)
    with pytest.raises(InvalidSpec, match="outside the directories"):
        parse_spec(_spec(module=str(outside)), module_dirs=dirs, allow_host_paths=True)
    # A .wasm symlink to a non-module file is judged by what it points to.
    link = tmp_path / "modules" / "passwd.wasm"
    link.symlink_to("/etc/passwd")
    with pytest.raises(InvalidSpec, match=r"must be a \.wasm or \.wat file"):
        parse_spec(_spec(module=str(link)), allow_host_paths=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", "invalid WAT: expected `(` (<anon>:1:1)"),
        (wat.NO_START, "is not a WASI command: no '_start' function"),
        (wat.FOREIGN_IMPORT, "imports env::host_fn; only WASI preview1"),
        ('(module (func (export "_start") (i32.add)))', "is not valid: "),
    ],
)
async def test_modules_that_cannot_run_are_refused_at_start(
    tmp_path: Path, text: str, message: str
) -> None:
    module = module_file(tmp_path, "bad.wat", text)
    async with make_executor(tmp_path).open() as ex:
        ex.validate(wasm_request(module).spec)  # cheap checks pass: the file exists
        with pytest.raises(InvalidSpec) as info:
            await ex.start(wasm_request(module))
        assert await ex.list_executions() == []
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "root:/root" not in str(info.value)  # a parse error never echoes file contents
    assert not (ex.executions_dir).exists()


def _context(**changes: Any) -> RunContext:
    values: dict[str, Any] = {
        "fuel": None,
        "timeout": None,
        "memory_cap": 0,
        "stop": None,
        "abandoned": False,
        "stdout": "",
        "stderr": "",
    }
    values.update(changes)
    return RunContext(**values)


def test_outcomes_become_results() -> None:
    trap = Outcome(OutcomeKind.TRAPPED, trap="UNREACHABLE", message="wasm trap: unreachable")
    big = Outcome(trap.kind, trap=trap.trap, message=trap.message, memory_bytes=40 << 20)
    small = Outcome(trap.kind, trap=trap.trap, message=trap.message, memory_bytes=1 << 20)
    cap = 64 << 20
    # Memory past half the cap, or an allocator's message, is taken as OOM evidence...
    assert result_of(big, _context(memory_cap=cap)).termination is Termination.OOM_KILLED
    said = _context(memory_cap=cap, stderr="memory allocation of 99999999 bytes failed\n")
    assert result_of(small, said).termination is Termination.OOM_KILLED
    exit1 = Outcome(OutcomeKind.EXITED, exit_code=1, memory_bytes=40 << 20)
    assert result_of(exit1, _context(memory_cap=cap)).exit_code == 1
    assert result_of(exit1, _context(memory_cap=cap)).termination is Termination.OOM_KILLED
    # ...but not without a cap, nor for a small failing program.
    assert result_of(big, _context()).termination is Termination.EXITED
    assert result_of(small, _context(memory_cap=cap)).termination is Termination.EXITED
    # An interrupt is whatever the executor stopped it for.
    interrupt = Outcome(OutcomeKind.TRAPPED, trap="INTERRUPT", message="wasm trap: interrupt")
    stopped = result_of(interrupt, _context(stop=StopReason.TIMEOUT, timeout=2))
    assert (stopped.termination, stopped.error) == (
        Termination.CPU_LIMIT,
        "wall-clock timeout of 2 s reached",
    )
    abandoned = result_of(None, _context(stop=StopReason.CANCEL, abandoned=True))
    assert abandoned.termination is Termination.CANCELLED and "abandoned" in abandoned.error
    failed = result_of(Outcome(OutcomeKind.START_FAILED, message="boom"), _context())
    assert (failed.termination, failed.exit_code) == (Termination.ERROR, -1)
    assert result_of(Outcome(OutcomeKind.EXITED, exit_code=0), _context()).exit_code == 0


@pytest.mark.parametrize(
    ("content", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 0, b""),
        (b"", 3, b""),
        (b"x" * 100_000 + b"\n" + b"y" * 100_000 + b"\n", 1, b"y" * 100_000 + b"\n"),
    ],
)
def test_tail_offset(tmp_path: Path, content: bytes, lines: int, expected: bytes) -> None:
    path = tmp_path / "log"
    path.write_bytes(content)
    with path.open("rb") as f:
        f.seek(tail_offset(f, lines))
        assert f.read() == expected
