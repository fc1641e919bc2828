"""What a VM boots: the default guest built by ``scripts/vm-guest.sh``, and the per-execution
workload archive appended to its initramfs.

The default guest is a Debian cloud kernel (``vmlinuz``) and a busybox initramfs
(``initramfs.cpio.gz``) in one directory: ``settings.extra["vm_guest_dir"]``, else
``$NUNET_VM_GUEST_DIR``, else ``~/.cache/nunet/vm-guest``.

The workload travels inside the initrd: Linux unpacks concatenated cpio archives one after the
other, so the executor writes ``<execution dir>/initrd`` = a small
uncompressed ``newc`` archive, put *before* the guest's compressed one (the layout of Debian's
early-microcode initrds: the kernel reads an uncompressed archive up to its trailer, then
decompresses the next), holding ``/nunet/run`` (a shell script: the provision scripts, then
the command), ``/nunet/env`` (exported variables), ``/nunet/mmds`` (a Go-style
``mmds_message``) and, for a VM on its ensemble's subnet, ``/nunet/net`` (:func:`net_script`:
the address the guest's init gives ``eth0``, the gateway its resolver is at, the MTU).
The guest's ``/init`` runs ``/nunet/run`` with its output on the serial
console and reports the exit status over virtio-serial. Nothing rides on the kernel command
line, so a command is not limited to its 2 KiB nor split by the kernel's tokenizer.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The virtio-serial port the guest reports ``exit=<code> oom=<kills>`` on.
EXIT_PORT = "org.nunet.exit"
#: The command that builds the default guest (said when it is missing).
BUILD_COMMAND = "scripts/vm-guest.sh"


def default_guest_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """Where the default guest lives (see the module docstring)."""
    if configured:
        return Path(configured)
    env = os.environ.get("NUNET_VM_GUEST_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "nunet" / "vm-guest"


@dataclass(frozen=True)
class Guest:
    """A kernel and an initramfs to boot."""

    kernel: Path
    initrd: Path

    @classmethod
    def default(cls, directory: Path) -> Guest:
        return cls(directory / "vmlinuz", directory / "initramfs.cpio.gz")

    def missing(self) -> str | None:
        """Which file is absent (one line), or ``None`` when both are there."""
        for path in (self.kernel, self.initrd):
            if not path.is_file():
                return f"guest image {path} is missing (build it with {BUILD_COMMAND})"
        return None


def _newc_entry(name: str, data: bytes, mode: int, ino: int) -> bytes:
    """One ``newc`` cpio record (header, NUL-terminated name, data, each padded to 4 bytes)."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    out = header + encoded
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def newc_archive(files: Iterable[tuple[str, bytes]], directories: Sequence[str] = ()) -> bytes:
    """An uncompressed ``newc`` cpio archive of ``directories`` (0755) and ``files`` (0755)."""
    records = []
    ino = 1
    for directory in directories:
        records.append(_newc_entry(directory, b"", 0o040755, ino))
        ino += 1
    for name, data in files:
        records.append(_newc_entry(name, data, 0o100755, ino))
        ino += 1
    records.append(_newc_entry("TRAILER!!!", b"", 0, 0))
    archive = b"".join(records)
    return archive + b"\0" * (-len(archive) % 512)


def run_script(
    command: Sequence[str], provision_scripts: Sequence[tuple[str, bytes]] = ()
) -> bytes:
    """``/nunet/run``: each provision script in order (stopping at the first failure, as the
    docker executor does), then ``command`` (one element: a shell command line; several: an
    argv, quoted word by word)."""
    lines = ["#!/bin/sh"]
    for index, _ in enumerate(provision_scripts):
        lines.append(f"sh /nunet/provision/{index} || exit $?")
    if len(command) == 1:
        lines.append(command[0])
    elif command:
        lines.append("exec " + " ".join(shlex.quote(word) for word in command))
    return ("\n".join(lines) + "\n").encode()


def env_script(env: Sequence[tuple[str, str]]) -> bytes:
    """``/nunet/env``: ``export NAME='value'`` lines, sourced by init before the workload."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env).encode()


def net_script(address: str, gateway: str, mtu: int) -> bytes:
    """``/nunet/net``: the subnet settings the guest's init reads (``NUNET_NET_ADDRESS`` =
    ``ip/prefix``, ``NUNET_NET_GATEWAY``, ``NUNET_NET_MTU``; see ``scripts/vm-guest.sh``)."""
    settings = (
        ("NUNET_NET_ADDRESS", address),
        ("NUNET_NET_GATEWAY", gateway),
        ("NUNET_NET_MTU", str(mtu)),
    )
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in settings).encode()


def workload_archive(
    command: Sequence[str],
    env: Sequence[tuple[str, str]] = (),
    provision_scripts: Sequence[tuple[str, bytes]] = (),
    mmds: str | None = None,
    net: bytes | None = None,
) -> bytes:
    """The per-execution archive appended to the initramfs (see the module docstring)."""
    files: list[tuple[str, bytes]] = []
    directories = ["nunet"]
    if net is not None:
        files.append(("nunet/net", net))
    if command or provision_scripts:
        files.append(("nunet/run", run_script(command, provision_scripts)))
    if env:
        files.append(("nunet/env", env_script(env)))
    if mmds is not None:
        files.append(("nunet/mmds", mmds.encode()))
    if provision_scripts:
        directories.append("nunet/provision")
        files.extend(
            (f"nunet/provision/{i}", body) for i, (_, body) in enumerate(provision_scripts)
        )
    return newc_archive(files, directories)


def write_initrd(base: Path, archive: bytes, target: Path) -> None:
    """``target`` = ``archive`` followed by ``base`` (blocking; about a megabyte of copying)."""
    with base.open("rb") as src, target.open("wb") as dst:
        dst.write(archive)
        shutil.copyfileobj(src, dst, 1024 * 1024)
