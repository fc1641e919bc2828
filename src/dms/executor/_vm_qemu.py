"""QEMU processes of the ``vm`` executor: the command line, and finding them again.

One QEMU per execution, ``-M microvm`` with virtio-mmio devices only: a virtio-serial port
(``org.nunet.exit``) whose host side is the file ``exit`` (the guest's exit report survives a
crash of the DMS), an optional virtio-blk root disk (writes go to a throw-away overlay,
``snapshot=on``, in the execution directory), the 8250 serial console into ``console.log`` (the
allocation's log), QMP on ``qmp.sock``. No PCI, no firmware devices, and a network card only for
a VM on its ensemble's subnet: virtio-net whose frames go over unix datagram sockets
(``-netdev dgram``) to the DMS's subnet router (:class:`VmNet`; QEMU runs in the execution
directory, so the sockets are named relative to it and stay short).

Ownership: QEMU writes its pid to ``qemu.pid`` in the execution directory, whose marker names the
executor; a pid is only trusted when ``/proc/<pid>/cmdline`` is a QEMU naming that very pidfile,
so a recycled pid is never signalled. Signals go through a pidfd (no race with pid reuse either).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import trio

from dms.executor._vm_guest import EXIT_PORT

BINARY = "qemu-system-x86_64"
#: Our part of the guest kernel's command line: serial console, no kernel chatter in the log
#: (``loglevel=0``, ``edd=off``; add ``loglevel=7`` to ``kernel_args`` to see the boot), a panic
#: resets at once (and ``-no-reboot`` turns a reset into an exit).
BASE_KERNEL_ARGS = "console=ttyS0 loglevel=0 edd=off panic=-1 pci=off i8042.noaux i8042.nokbd"
MiB = 1024 * 1024


@functools.cache
def host_tsc_khz() -> int | None:
    """The host CPU's clock in kHz (``/proc/cpuinfo``), or ``None``.

    Under TCG the guest's TSC ticks at the host's rate, and the guest kernel's own calibration
    against the emulated PIT is timing-sensitive: on a busy host it fails now and then, and the
    boot hangs right after "tsc: Marking TSC unstable". Telling the kernel the rate
    (``tsc_early_khz``) skips that calibration; 20 boots in a row then all came up.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        return None
    return None


def qemu_binary() -> str | None:
    return shutil.which(BINARY)


@dataclass(frozen=True)
class VmFiles:
    """The files of one VM in its execution directory."""

    directory: Path

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    @property
    def exit(self) -> Path:
        return self.directory / "exit"

    @property
    def qemu_log(self) -> Path:
        return self.directory / "qemu.log"

    @property
    def qmp(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / "qemu.pid"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd"


def _opt(value: str | Path) -> str:
    """A value inside a QEMU ``a=b,c=d`` option list (commas doubled)."""
    return str(value).replace(",", ",,")


def _tag(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:48]


@dataclass(frozen=True)
class VmNet:
    """The VM's card on the subnet: QEMU binds ``guest_socket`` and sends frames to
    ``host_socket`` (paths as QEMU opens them, relative to the execution directory)."""

    guest_socket: str
    host_socket: str
    mac: str
    mtu: int


@dataclass(frozen=True)
class VmConfig:
    """What one QEMU is started with."""

    accel: str  # "kvm" or "tcg"
    vcpus: int
    memory_mib: int
    kernel: Path
    initrd: Path
    kernel_args: str = ""
    rootfs: Path | None = None
    name: str = "nunet-vm"
    net: VmNet | None = None


def qemu_argv(binary: str, config: VmConfig, files: VmFiles, qmp_fd: int | None) -> list[str]:
    """The QEMU command line (see the module docstring); ``qmp_fd`` is an inherited listening
    socket (``None``: no monitor, for the probe)."""
    machine = "microvm,pit=on,pic=on,rtc=on,isa-serial=on"
    accel = ["-accel", "kvm", "-cpu", "host"] if config.accel == "kvm" else ["-accel", "tcg"]
    append = BASE_KERNEL_ARGS
    khz = host_tsc_khz() if config.accel == "tcg" else None
    if khz:
        append += f" tsc_early_khz={khz} tsc=reliable"
    if config.kernel_args:
        append += f" {config.kernel_args}"
    argv = [
        binary,
        "-name", f"guest={_opt(_tag(config.name))},process=nunet-vm",
        "-M", machine,
        *accel,
        "-smp", str(config.vcpus),
        "-m", f"{config.memory_mib}M",
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-kernel", str(config.kernel),
        "-initrd", str(config.initrd),
        "-append", append,
        "-chardev", f"file,id=console,path={_opt(files.console)}",
        "-serial", "chardev:console",
        "-device", "virtio-serial-device",
        "-chardev", f"file,id=exit,path={_opt(files.exit)}",
        "-device", f"virtserialport,chardev=exit,name={EXIT_PORT}",
        "-pidfile", str(files.pidfile),
    ]  # fmt: skip
    if config.rootfs is not None:
        argv += [
            "-drive", f"id=root,file={_opt(config.rootfs)},format=raw,if=none,snapshot=on",
            "-device", "virtio-blk-device,drive=root",
        ]  # fmt: skip
    if config.net is not None:
        net = config.net
        argv += [
            "-netdev",
            f"dgram,id=net0,local.type=unix,local.path={_opt(net.guest_socket)},"
            f"remote.type=unix,remote.path={_opt(net.host_socket)}",
            "-device", f"virtio-net-device,netdev=net0,mac={net.mac},host_mtu={net.mtu}",
        ]  # fmt: skip
    if qmp_fd is not None:
        argv += [
            "-chardev", f"socket,id=qmp,fd={qmp_fd},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-S",  # paused until the executor says ``cont`` over QMP
        ]  # fmt: skip
    return argv


def qemu_env(files: VmFiles) -> dict[str, str]:
    """QEMU's environment: the ``snapshot=on`` overlay goes in the execution directory."""
    return {**os.environ, "TMPDIR": str(files.directory)}


def owned_pid(files: VmFiles) -> int | None:
    """The pid of the QEMU running for ``files``, or ``None`` (no pidfile, or that pid is not a
    QEMU naming this pidfile: it exited and the number may belong to someone else now)."""
    try:
        pid = int(files.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not argv or not os.path.basename(argv[0]).startswith(b"qemu-system"):
        return None
    return pid if os.fsencode(files.pidfile) in argv else None


def kill(pid: int) -> None:
    """SIGKILL ``pid`` through a pidfd (a no-op when it is already gone)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


async def wait_exit(pid: int) -> None:
    """Return when process ``pid`` (not necessarily our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


def read_exit_report(files: VmFiles) -> tuple[int, int] | None:
    """``(exit code, oom kills)`` the guest reported, or ``None`` when it reported nothing."""
    try:
        text = files.exit.read_text(errors="replace")
    except OSError:
        return None
    fields = dict(
        part.split("=", 1) for line in text.splitlines() for part in line.split() if "=" in part
    )
    try:
        return int(fields["exit"]), int(fields.get("oom", "0"))
    except (KeyError, ValueError):
        return None
