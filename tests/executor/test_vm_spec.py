"""The vm executor without booting anything: spec rules (``vm`` and Go's ``firecracker``
params), the workload archive the guest unpacks, how results are read, the registry entries,
ensemble validation of both executor names, and the availability line."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trio

from dms.executor import (
    ExecutorRegistry,
    ImageUnavailable,
    InvalidSpec,
    SpecConfig,
    Termination,
)
from dms.executor._vm_guest import Guest, newc_archive, workload_archive
from dms.executor._vm_images import image_path
from dms.executor._vm_probe import Availability, availability, probe_boot
from dms.executor._vm_qemu import VmFiles, read_exit_report
from dms.executor._vm_result import StopReason, VmEnd, result_of
from dms.executor._vm_spec import ImageRef, parse_spec
from dms.jobs import load_ensemble

PIN = "ab" * 32


def vm(**params: object) -> SpecConfig:
    return SpecConfig("vm", params)


def test_vm_params_are_typed() -> None:
    spec = parse_spec(
        vm(command=["echo", "a b"], env={"A": "1"}, timeout=5, kernel_args="loglevel=7"),
    )
    assert spec.command == ("echo", "a b")
    assert spec.env == (("A", "1"),)
    assert spec.timeout == 5.0
    assert spec.kernel_args == "loglevel=7"
    assert spec.images() == []  # the default guest
    assert parse_spec(vm(command="echo hi; exit 3")).command == ("echo hi; exit 3",)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"command": "true", "image": "x"}, "unknown parameter(s) image"),
        ({}, "nothing to run"),
        ({"command": []}, "'command' must be"),
        ({"command": "true", "timeout": 0}, "'timeout' must be a positive number"),
        ({"command": "true", "env": {"1A": "x"}}, "invalid variable name"),
        ({"command": "true", "kernel": "http://example.com/vmlinuz"}, "needs 'kernel_sha256'"),
        ({"command": "true", "kernel": "ftp://example.com/k", "kernel_sha256": PIN}, "only http"),
        ({"command": "true", "kernel_sha256": PIN}, "without 'kernel'"),
        ({"command": "true", "rootfs_sha256": "xyz"}, "64 hexadecimal digits"),
        ({"command": "true", "kernel_args": "a\nb"}, "one line"),
    ],
)
def test_bad_vm_params_are_refused_in_one_line(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_spec(vm(**params), allow_host_paths=True)
    assert "\n" not in str(err.value) and str(err.value).startswith("vm execution: ")


def test_host_paths_only_when_the_node_allows_them(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k")
    spec = vm(command="true", kernel=str(kernel))
    with pytest.raises(InvalidSpec, match="a path on this host, which a deployment may not name"):
        parse_spec(spec)
    assert parse_spec(spec, allow_host_paths=True).kernel.source == str(kernel)  # type: ignore[union-attr]
    with pytest.raises(InvalidSpec, match="does not exist"):
        parse_spec(vm(command="true", kernel=str(tmp_path / "nope")), allow_host_paths=True)
    with pytest.raises(InvalidSpec, match="must be absolute"):
        parse_spec(vm(command="true", kernel="vmlinuz"), allow_host_paths=True)


def test_go_firecracker_params_are_accepted() -> None:
    url = "https://example.com/rootfs.ext4"
    spec = parse_spec(
        SpecConfig(
            "firecracker",
            {
                "kernel_image": "https://example.com/vmlinux",
                "kernel_image_sha256": PIN,
                "root_file_system": url,
                "root_file_system_sha256": PIN,
                "kernel_args": "console=ttyS0 reboot=k",
                "mmds_message": '{"hello": "world"}',
            },
        )
    )
    assert spec.rootfs is not None and spec.rootfs.source == url and spec.rootfs.is_url
    assert spec.mmds == '{"hello": "world"}'
    assert spec.command == ()  # the root file system's own init runs
    with pytest.raises(InvalidSpec, match="firecracker execution: unknown parameter"):
        parse_spec(SpecConfig("firecracker", {"kernel": "x", "command": "true"}))


def test_workload_archive_is_a_newc_cpio_busybox_reads(tmp_path: Path) -> None:
    archive = workload_archive(
        ["echo", "it's"],
        env=[("GREETING", "hello 'you'")],
        provision_scripts=[("setup.sh", b"echo provisioned\n")],
        mmds='{"a": 1}',
    )
    assert len(archive) % 512 == 0
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["busybox", "cpio", "-id"], input=archive, cwd=out, check=True)
    run = (out / "nunet/run").read_text()
    assert run.splitlines() == [
        "#!/bin/sh",
        "sh /nunet/provision/0 || exit $?",
        "exec echo 'it'\"'\"'s'",
    ]
    assert (out / "nunet/provision/0").read_text() == "echo provisioned\n"
    assert (out / "nunet/mmds").read_text() == '{"a": 1}'
    env = (out / "nunet/env").read_text()
    shell = subprocess.run(
        ["busybox", "sh", "-c", f'{env}\nprintf %s "$GREETING"'],
        check=True,
        capture_output=True,
        text=True,
    )
    assert shell.stdout == "hello 'you'"
    assert newc_archive([]).startswith(b"070701")


def test_exit_report_and_results(tmp_path: Path) -> None:
    files = VmFiles(tmp_path)
    assert read_exit_report(files) is None
    files.exit.write_text("exit=137 oom=1\n")
    assert read_exit_report(files) == (137, 1)

    def end(**kw: object) -> VmEnd:
        base: dict[str, object] = {
            "report": None,
            "stop": None,
            "shutdown_reason": None,
            "qemu_status": 0,
            "qemu_last_words": "",
            "console": "out",
            "memory_mib": 96,
            "timeout": 2.0,
        }
        return VmEnd(**{**base, **kw})  # type: ignore[arg-type]

    oom = result_of(end(report=(137, 1)))
    assert oom.termination is Termination.OOM_KILLED and "96 MiB" in oom.error
    assert result_of(end(report=(137, 0))).termination is Termination.EXITED  # killed, not OOM
    assert result_of(end(report=(3, 0))).exit_code == 3
    assert result_of(end(stop=StopReason.TIMEOUT)).termination is Termination.CPU_LIMIT
    assert result_of(end(stop=StopReason.CANCEL)).termination is Termination.CANCELLED
    assert result_of(end(shutdown_reason="guest-shutdown")).exit_code == 0  # a foreign init
    panic = result_of(end(shutdown_reason="guest-reset"))
    assert panic.termination is Termination.ERROR and "kernel panic" in panic.error
    crash = result_of(end(qemu_status=1, qemu_last_words="qemu: cannot load kernel"))
    assert "cannot load kernel" in crash.error


def test_availability_lines() -> None:
    assert Availability(None, "kvm").line() == "vm: available (kvm)"
    line = Availability(None, "tcg", "KVM is present but does not run guests here").line()
    assert line.startswith("vm: available (emulated, slow): KVM is present")
    assert Availability("QEMU is not installed").line("firecracker") == (
        "firecracker: QEMU is not installed"
    )


def test_registry_lists_vm_and_firecracker() -> None:
    registry = ExecutorRegistry()
    assert {"vm", "firecracker"} <= set(registry.names())
    fc = registry.executor_class("firecracker")
    assert fc.name == "firecracker" and issubclass(fc, registry.executor_class("vm"))


ENSEMBLE = """\
version: "V1"
allocations:
  a:
    executor: vm
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 128MiB}, disk: {size: 1}}
    execution: {type: vm, command: "echo hi"}
  b:
    executor: firecracker
    type: task
    resources: {cpu: {cores: 1}, ram: {size: 128MiB}, disk: {size: 1}}
    execution:
      type: firecracker
      kernel_image: https://example.com/vmlinux
      root_file_system: https://example.com/rootfs.ext4
nodes:
  n: {allocations: [a, b]}
"""


def test_ensembles_naming_vm_and_firecracker_validate() -> None:
    ensemble = load_ensemble(ENSEMBLE)
    assert {a.executor for a in ensemble.allocations.values()} == {"vm", "firecracker"}


def test_the_example_validates() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "hello-vm.yaml"
    ensemble = load_ensemble(path.read_text(), base_dir=path.parent)
    (alloc,) = ensemble.allocations.values()
    parse_spec(alloc.execution)


def test_a_kvm_probe_that_hangs_is_cut_at_its_deadline(tmp_path: Path) -> None:
    hanging = tmp_path / "qemu-that-hangs"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    guest = Guest(tmp_path / "vmlinuz", tmp_path / "initramfs.cpio.gz")
    guest.kernel.write_bytes(b"k")
    guest.initrd.write_bytes(b"i")
    started = time.monotonic()
    usable, why = probe_boot(str(hanging), guest, deadline=0.5)
    assert time.monotonic() - started < 5
    assert not usable
    assert why == (
        "KVM is present but does not run guests here (a probe boot made no progress in 0.5 s)"
    )


def test_unavailable_says_what_is_missing_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = availability(tmp_path / "no-guest", refresh=True)
    assert found.reason is not None and "scripts/vm-guest.sh" in found.reason
    monkeypatch.setattr("dms.executor._vm_probe.qemu_binary", lambda: None)
    found = availability(tmp_path / "no-guest", refresh=True)
    assert found.line() == (
        "vm: QEMU is not installed (no qemu-system-x86_64; scripts/vm-guest.sh installs it and "
        "builds the guest)"
    )


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Callable[[str], str]]:
    """A loopback HTTP server for ``root``; yields name -> URL."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield lambda name: f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    finally:
        httpd.shutdown()
        thread.join()


async def test_image_urls_follow_the_wasm_fetch_rules(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(50_000)
    (www / "vmlinuz").write_bytes(data)
    pin = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    limiter = trio.CapacityLimiter(2)
    fetch = partial(image_path, limit=1 << 20, fetch_timeout=10, limiter=limiter)
    with serving(www) as url:
        ref = ImageRef("kernel", url("vmlinuz"), pin)
        with pytest.raises(ImageUnavailable, match="non-public address"):
            await fetch(ref, cache, private_ok=False)  # a deployer cannot make us probe the LAN
        path = await fetch(ref, cache, private_ok=True)
        assert path.read_bytes() == data and path.parent == cache
        with pytest.raises(ImageUnavailable, match=r"^vm kernel .* but the spec pins"):
            await fetch(ImageRef("kernel", url("vmlinuz"), "0" * 64), cache, private_ok=True)
        with pytest.raises(ImageUnavailable, match="larger than the 1000 byte limit"):
            await image_path(
                ImageRef("kernel", url("vmlinuz"), "1" * 64),
                cache,
                limit=1000,
                fetch_timeout=10,
                limiter=limiter,
                private_ok=True,
            )
    # Pinned and cached: served without the server.
    assert await fetch(ref, cache, private_ok=True) == path
    local = ImageRef("kernel", str(www / "vmlinuz"), "0" * 64)
    with pytest.raises(ImageUnavailable, match="refusing to boot it"):
        await fetch(local, cache, private_ok=False)
