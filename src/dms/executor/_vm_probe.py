"""Can this machine run VMs, and with which accelerator? One line that says so.

``/dev/kvm`` existing is not enough: on a VM without nested virtualisation the device may accept
``KVM_CREATE_VM`` while a guest makes no progress at all (100 % system time, no boot). So KVM
counts as usable only when a probe boot of the default guest under KVM (workload ``true``)
reports its exit code within :data:`PROBE_DEADLINE` seconds; otherwise QEMU's TCG emulation is
used where the node allows it (``vm_allow_emulation``, on by default).

The probe boot costs ~0.3 s where KVM works and the deadline where it does not, so its answer
is kept in memory and in ``<guest dir>/kvm-probe.json``, keyed by the boot ID, the QEMU binary
and the guest kernel: ``nunet executor list`` pays it once per boot, not on every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dms.executor._vm_guest import BUILD_COMMAND, Guest, workload_archive, write_initrd
from dms.executor._vm_qemu import VmConfig, VmFiles, qemu_argv, qemu_binary, read_exit_report

#: Seconds a KVM probe boot may take before KVM is declared unusable here.
PROBE_DEADLINE = 3.0
_CACHE_FILE = "kvm-probe.json"


@dataclass(frozen=True)
class Availability:
    """What the probe found: ``reason`` (why VMs cannot run here) or the accelerator."""

    reason: str | None  # None: VMs can run
    accel: str = ""  # "kvm" or "tcg"
    kvm_reason: str = ""  # why KVM is not used ("" with kvm)

    def line(self, name: str = "vm") -> str:
        """The one line ``nunet executor list`` shows."""
        if self.reason is not None:
            return f"{name}: {self.reason}"
        if self.accel == "kvm":
            return f"{name}: available (kvm)"
        return f"{name}: available (emulated, slow): {self.kvm_reason}"


_memo: dict[tuple[str, str], Availability] = {}


def _file_key(path: Path) -> list[int]:
    try:
        stat = path.stat()
    except OSError:
        return [0, 0]
    return [int(stat.st_mtime_ns), stat.st_size]


def _cache_key(binary: str, guest: Guest) -> dict[str, object]:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    return {
        "boot_id": boot_id,
        "qemu": [binary, *_file_key(Path(binary))],
        "kernel": _file_key(guest.kernel),
        "initrd": _file_key(guest.initrd),
    }


def _cached(cache: Path, key: dict[str, object]) -> tuple[bool, str] | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return bool(data.get("kvm")), str(data.get("reason", ""))


def _store(cache: Path, key: dict[str, object], kvm: bool, reason: str) -> None:
    with contextlib.suppress(OSError):
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "kvm": kvm, "reason": reason}))
        os.replace(tmp, cache)


def probe_boot(binary: str, guest: Guest, deadline: float = PROBE_DEADLINE) -> tuple[bool, str]:
    """Boot ``guest`` under KVM with workload ``true``: (usable, why not). Blocking."""
    with tempfile.TemporaryDirectory(prefix="nunet-kvm-probe-") as tmp:
        files = VmFiles(Path(tmp))
        write_initrd(guest.initrd, workload_archive(["true"]), files.initrd)
        config = VmConfig("kvm", 1, 128, guest.kernel, files.initrd, name="nunet-kvm-probe")
        started = time.monotonic()
        with open(files.qemu_log, "wb") as log:
            try:
                process = subprocess.Popen(
                    qemu_argv(binary, config, files, None),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            except OSError as exc:
                return False, f"QEMU cannot be started: {exc.strerror}"
        try:
            status = process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return False, (
                f"KVM is present but does not run guests here (a probe boot made no progress "
                f"in {deadline:g} s)"
            )
        report = read_exit_report(files)
        if report is not None and report[0] == 0:
            return True, ""
        return False, (
            "KVM is present but does not run guests here (a probe boot under KVM ended with "
            f"QEMU status {status} after {time.monotonic() - started:.1f} s)"
        )


def kvm_status(binary: str, guest: Guest, cache_dir: Path | None) -> tuple[bool, str]:
    """Whether KVM runs guests here, and why not (see the module docstring)."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm (no hardware virtualisation here)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible to this user (add it to the kvm group)"
    key = _cache_key(binary, guest)
    cache = None if cache_dir is None else cache_dir / _CACHE_FILE
    if cache is not None and (found := _cached(cache, key)) is not None:
        return found
    usable, reason = probe_boot(binary, guest)
    if cache is not None:
        _store(cache, key, usable, reason)
    return usable, reason


def availability(guest_dir: Path, *, refresh: bool = False) -> Availability:
    """Whether VMs can run here with the default guest in ``guest_dir`` (blocking; memoised)."""
    binary = qemu_binary()
    memo_key = (binary or "", str(guest_dir))
    if not refresh and memo_key in _memo:
        return _memo[memo_key]
    found = _availability(binary, guest_dir)
    _memo[memo_key] = found
    return found


def _availability(binary: str | None, guest_dir: Path) -> Availability:
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return Availability(
            f"needs Linux on x86_64 (this is {platform.system()} {platform.machine()})"
        )
    if binary is None:
        return Availability(
            f"QEMU is not installed (no qemu-system-x86_64; {BUILD_COMMAND} "
            "installs it and builds the guest)"
        )
    guest = Guest.default(guest_dir)
    missing = guest.missing()
    if missing is not None:
        return Availability(missing)
    kvm, why = kvm_status(binary, guest, guest_dir)
    return Availability(None, "kvm" if kvm else "tcg", why)
