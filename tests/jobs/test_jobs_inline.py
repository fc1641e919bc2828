"""Local WASM modules travel inline with the deployment, sha256-pinned and size-capped; a
provider's wasm executor refuses host paths by default and checks inline modules' hashes."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from dms.executor import ExecutionRequest, ExecutorSettings, InvalidSpec, SpecConfig
from dms.executor._wasm import WasmExecutor
from dms.executor._wasm_spec import parse_spec
from dms.jobs import EnsembleInvalid, inline_local_modules, load_ensemble

REPO = Path(__file__).resolve().parents[2]
HELLO = (REPO / "examples" / "hello.wat").read_bytes()

ENSEMBLE = """\
allocations:
  hello:
    executor: wasm
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 64MiB}}
    execution: {type: wasm, module: %(module)s%(pin)s}
nodes:
  n1: {allocations: [hello]}
"""


def _ensemble(tmp_path: Path, module: str = "hello.wat", pin: str = "") -> str:
    (tmp_path / "hello.wat").write_bytes(HELLO)
    return ENSEMBLE % {"module": module, "pin": f", sha256: '{pin}'" if pin else ""}


def _provider(tmp_path: Path) -> WasmExecutor:
    """A wasm executor as a node serving deployers has it: default settings."""
    return WasmExecutor(ExecutorSettings("provider", tmp_path / "work"))


async def test_an_inlined_module_runs_on_a_provider_that_refuses_host_paths(
    tmp_path: Path,
) -> None:
    e = inline_local_modules(load_ensemble(_ensemble(tmp_path), base_dir=tmp_path), tmp_path)
    params = e.allocations["hello"].execution.params
    assert params["module"] == "hello.wat"  # only the name travels, never the path
    assert base64.b64decode(params["module_data"]) == HELLO
    assert params["sha256"] == hashlib.sha256(HELLO).hexdigest()
    # The bytes survive the Go JSON a deployment carries.
    assert e.to_json() and type(e).from_json(e.to_json()) == e
    provider = _provider(tmp_path)
    async with provider.open():
        result = await provider.run(ExecutionRequest("j", "e1", e.allocations["hello"].execution))
    assert (result.exit_code, result.stdout) == (0, "hello from a WASM allocation on nunet\n")


async def test_a_host_path_is_refused_by_default(tmp_path: Path) -> None:
    module = tmp_path / "hello.wat"
    module.write_bytes(HELLO)
    spec = SpecConfig("wasm", {"module": str(module)})
    provider = _provider(tmp_path)
    with pytest.raises(InvalidSpec) as info:
        provider.validate(spec)
    assert "a path on this host, which a deployment may not name" in str(info.value)
    assert "\n" not in str(info.value)
    async with provider.open():
        with pytest.raises(InvalidSpec, match="path on this host"):
            await provider.start(ExecutionRequest("j", "e1", spec))
    # The node setting (nunet executor run sets it) allows them.
    allowed = WasmExecutor(
        ExecutorSettings("cli", tmp_path / "w2", extra={"wasm_allow_host_paths": True})
    )
    allowed.validate(spec)


def test_a_wrong_pin_is_refused_by_the_deployer(tmp_path: Path) -> None:
    e = load_ensemble(_ensemble(tmp_path, pin="0" * 64), base_dir=tmp_path)
    with pytest.raises(EnsembleInvalid) as info:
        inline_local_modules(e, tmp_path)
    (problem,) = info.value.problems
    assert problem.path == "allocations.hello.execution.module"
    assert (
        f"has sha256 {hashlib.sha256(HELLO).hexdigest()}, but the ensemble pins" in problem.message
    )


def test_inline_data_that_does_not_match_its_hash_is_refused_by_the_provider(
    tmp_path: Path,
) -> None:
    good = {"module": "m.wat", "module_data": base64.b64encode(HELLO).decode()}
    digest = hashlib.sha256(HELLO).hexdigest()
    parsed = parse_spec(SpecConfig("wasm", {**good, "sha256": digest}))
    assert parsed.data == HELLO and parsed.is_inline and not parsed.is_url
    tampered = {**good, "module_data": base64.b64encode(HELLO + b" ").decode(), "sha256": digest}
    with pytest.raises(InvalidSpec, match=r"but the spec pins .*; refusing it"):
        parse_spec(SpecConfig("wasm", tampered))
    with pytest.raises(InvalidSpec, match="needs 'sha256'"):
        parse_spec(SpecConfig("wasm", good))
    with pytest.raises(InvalidSpec, match="only the module's file name"):
        parse_spec(SpecConfig("wasm", {**good, "sha256": digest, "module": "/etc/x.wasm"}))
    with pytest.raises(InvalidSpec, match="must be base64"):
        parse_spec(SpecConfig("wasm", {**good, "module_data": "not base64!", "sha256": digest}))
    with pytest.raises(InvalidSpec, match="larger than the 10 byte limit"):
        parse_spec(SpecConfig("wasm", {**good, "sha256": digest}), max_module_bytes=10)


def test_size_cap_and_unreadable_modules(tmp_path: Path) -> None:
    e = load_ensemble(_ensemble(tmp_path), base_dir=tmp_path)
    with pytest.raises(EnsembleInvalid, match=f"larger than {len(HELLO) - 1} bytes"):
        inline_local_modules(e, tmp_path, max_bytes=len(HELLO) - 1)
    assert inline_local_modules(e, tmp_path, max_bytes=len(HELLO))  # exactly at the cap
    (tmp_path / "hello.wat").unlink()
    with pytest.raises(EnsembleInvalid, match="cannot read module"):
        inline_local_modules(e, tmp_path)


def test_only_module_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("password")
    text = _ensemble(tmp_path, module="secret.txt")
    e = load_ensemble(text)  # no base_dir: not resolved, not checked
    with pytest.raises(EnsembleInvalid, match=r"must be a \.wasm or \.wat file"):
        inline_local_modules(e, tmp_path)


def test_urls_and_inline_modules_are_left_alone(tmp_path: Path) -> None:
    text = _ensemble(tmp_path, module='"https://example.org/m.wasm"')
    e = load_ensemble(text, base_dir=tmp_path)
    assert inline_local_modules(e, tmp_path) == e
