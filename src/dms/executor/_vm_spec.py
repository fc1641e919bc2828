"""The ``params`` of a ``vm`` or ``firecracker`` execution, checked once into a :class:`VmSpec`.

``vm`` params: ``command`` (a shell command line, or an argv list), ``env`` (mapping or
``NAME=value`` list), ``kernel``, ``initrd``, ``rootfs`` (images; each defaults to the guest
built by ``scripts/vm-guest.sh``, ``rootfs`` to none), ``kernel_args`` (appended to ours),
``timeout`` (seconds), and ``<image>_sha256`` pins.

``firecracker`` params are Go's (``executor/firecracker/types.go``): ``kernel_image``,
``initrd_path``, ``kernel_args``, ``root_file_system``, ``mmds_message``; Go requires the
kernel and the root file system, we default both (the default guest, no disk). ``command``,
``env``, ``timeout`` and the pins are accepted there too. A root file system is attached as
the first virtio disk (``/dev/vda``); the default guest mounts it on ``/mnt/rootfs`` and, given
no command, boots its ``/sbin/init``. ``mmds_message`` (Firecracker's metadata service) reaches
the guest as the file ``/nunet/mmds``: there is no network in the VM to serve it from.

Images come from an http(s) URL, which must be pinned by ``<param>_sha256`` (a node runs a
kernel only when it knows which), or from a path on this host, only when the node allows host
paths (``nunet executor run`` does; a node serving deployers does not).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dms.executor._errors import InvalidSpec
from dms.executor._types import SpecConfig

#: Image params per execution type: (kernel, initrd, rootfs).
IMAGE_PARAMS = {
    "vm": ("kernel", "initrd", "rootfs"),
    "firecracker": ("kernel_image", "initrd_path", "root_file_system"),
}
_COMMON = ("command", "env", "kernel_args", "timeout")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_KERNEL_ARGS = 1024


def known_params(kind: str) -> tuple[str, ...]:
    images = IMAGE_PARAMS[kind]
    extra = ("mmds_message",) if kind == "firecracker" else ()
    return (*_COMMON, *images, *(f"{name}_sha256" for name in images), *extra)


@dataclass(frozen=True)
class ImageRef:
    """A kernel, initrd or disk image: a host path or an http(s) URL, maybe pinned."""

    param: str
    source: str
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class VmSpec:
    """A checked ``vm``/``firecracker`` execution spec."""

    kind: str
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    kernel: ImageRef | None = None
    initrd: ImageRef | None = None
    rootfs: ImageRef | None = None
    kernel_args: str = ""
    mmds: str | None = None
    timeout: float | None = None

    def images(self) -> list[ImageRef]:
        return [ref for ref in (self.kernel, self.initrd, self.rootfs) if ref is not None]


def _fail(kind: str, message: str) -> InvalidSpec:
    return InvalidSpec(f"{kind} execution: {message}")


def _text(kind: str, value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(kind, f"{what} must be a string")
    text = str(value)
    if "\0" in text:
        raise _fail(kind, f"{what} must not contain a NUL character")
    return text


def _command(kind: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        if not value.strip():
            raise _fail(kind, "'command' is empty")
        return (_text(kind, value, "'command'"),)
    if not isinstance(value, Sequence) or not value:
        raise _fail(kind, "'command' must be a command line or a non-empty list of strings")
    return tuple(_text(kind, word, f"command[{i}]") for i, word in enumerate(value))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env(kind: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or "=" not in item:
                raise _fail(kind, f"env[{i}] must be a 'NAME=value' string")
            name, _, text = item.partition("=")
            items.append((name, text))
    else:
        raise _fail(kind, "'env' must be a mapping or a list of 'NAME=value' strings")
    pairs = []
    for name, text in items:
        if not _NAME.fullmatch(name):
            raise _fail(kind, f"env: invalid variable name {name!r}")
        pairs.append((name, _text(kind, text, f"env[{name!r}]")))
    return tuple(pairs)


def _timeout(kind: str, value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _fail(kind, "'timeout' must be a positive number of seconds")
    return float(value)


def _kernel_args(kind: str, value: Any) -> str:
    if value is None:
        return ""
    text = _text(kind, value, "'kernel_args'")
    if "\n" in text or len(text) > MAX_KERNEL_ARGS:
        raise _fail(kind, f"'kernel_args' must be one line of at most {MAX_KERNEL_ARGS} characters")
    return text


def _image(
    kind: str, params: Mapping[str, Any], name: str, allow_host_paths: bool
) -> ImageRef | None:
    value = params.get(name)
    pin = params.get(f"{name}_sha256")
    sha256 = None
    if pin is not None:
        if not isinstance(pin, str) or not _SHA256.fullmatch(pin.lower()):
            raise _fail(kind, f"'{name}_sha256' must be 64 hexadecimal digits")
        sha256 = pin.lower()
    if value is None or value == "":
        if sha256 is not None:
            raise _fail(kind, f"'{name}_sha256' given without '{name}'")
        return None
    source = _text(kind, value, f"{name!r}")
    if "://" in source:
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(kind, f"{name} {source!r}: only http:// and https:// URLs are fetched")
        if sha256 is None:
            raise _fail(kind, f"{name} {source!r} needs '{name}_sha256' (the image's hash)")
        return ImageRef(name, source, sha256)
    if not allow_host_paths:
        raise _fail(
            kind,
            f"{name} {source!r} is a path on this host, which a deployment may not name; "
            "give an http(s) URL with its sha256",
        )
    path = Path(source)
    if not path.is_absolute():
        raise _fail(kind, f"{name} path {source!r} must be absolute (or an http(s) URL)")
    try:
        real = path.resolve(strict=True)
    except OSError:
        raise _fail(kind, f"{name} file {source} does not exist") from None
    if not real.is_file():
        raise _fail(kind, f"{name} file {source} is not a regular file")
    return ImageRef(name, str(real), sha256)


def parse_spec(spec: SpecConfig, *, allow_host_paths: bool = False) -> VmSpec:
    """Check ``spec`` (type ``vm`` or ``firecracker``) and return it typed; raises
    :class:`InvalidSpec` with one line. Cheap and local: nothing is fetched or booted."""
    kind = spec.type
    if kind not in IMAGE_PARAMS:
        raise InvalidSpec(f"vm executor cannot run a {kind!r} execution")
    params = spec.params
    known = known_params(kind)
    unknown = sorted(map(str, set(params) - set(known)))
    if unknown:
        raise _fail(kind, f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(known)})")
    kernel, initrd, rootfs = (
        _image(kind, params, name, allow_host_paths) for name in IMAGE_PARAMS[kind]
    )
    mmds = params.get("mmds_message")
    parsed = VmSpec(
        kind=kind,
        command=_command(kind, params.get("command")),
        env=_env(kind, params.get("env")),
        kernel=kernel,
        initrd=initrd,
        rootfs=rootfs,
        kernel_args=_kernel_args(kind, params.get("kernel_args")),
        mmds=None if mmds is None else _text(kind, mmds, "'mmds_message'"),
        timeout=_timeout(kind, params.get("timeout")),
    )
    if not parsed.command and parsed.rootfs is None and " -- " not in f" {parsed.kernel_args} ":
        raise _fail(
            kind,
            "nothing to run: give 'command', a root file system with /sbin/init, "
            "or the workload after '--' in 'kernel_args'",
        )
    return parsed
