"""Kernel, initrd and disk images named by a ``vm``/``firecracker`` spec, as files to boot.

URLs go through the WASM executor's fetcher (:func:`dms.executor._wasm_source.fetch_module`),
so the same rules hold: a size cap, one overall deadline, no loopback/private addresses unless
the node allows them (``nunet executor run`` does), the sha256 pin checked before the bytes are
used, and a content-addressed cache (``<work_dir>/vm-images/<sha256>.wasm``: the fetcher names
every entry so; the suffix means nothing here). A pinned local file is hashed before it boots.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import trio

from dms.executor._errors import ImageUnavailable
from dms.executor._vm_spec import ImageRef
from dms.executor._wasm_source import fetch_module
from dms.executor._wasm_spec import WasmSpec


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


async def image_path(
    ref: ImageRef,
    cache_dir: Path,
    *,
    limit: int,
    fetch_timeout: float,
    limiter: trio.CapacityLimiter,
    private_ok: bool,
) -> Path:
    """The local file holding ``ref`` (fetched into ``cache_dir`` when it is a URL).

    Raises :class:`ImageUnavailable` (one line) when it cannot be fetched or read, is larger
    than ``limit`` bytes, or does not match its pin.
    """
    if ref.is_url:
        try:
            module = await fetch_module(
                WasmSpec(module=ref.source, sha256=ref.sha256),
                cache_dir,
                limit=limit,
                fetch_timeout=fetch_timeout,
                limiter=limiter,
                private_ok=private_ok,
            )
        except ImageUnavailable as exc:
            raise ImageUnavailable(str(exc).replace("wasm module", f"vm {ref.param}")) from None
        return cache_dir / f"{module.sha256}.wasm"
    path = Path(ref.source)
    try:
        size = path.stat().st_size
        if size > limit:
            raise ImageUnavailable(f"vm {ref.param} {path} is larger than the {limit} byte limit")
        if ref.sha256 is not None:
            digest = await trio.to_thread.run_sync(_hash_file, path, limiter=limiter)
            if digest != ref.sha256:
                raise ImageUnavailable(
                    f"vm {ref.param} {path} has sha256 {digest}, but the spec pins {ref.sha256}; "
                    "refusing to boot it"
                )
    except OSError as exc:
        raise ImageUnavailable(f"cannot read vm {ref.param} {path}: {exc.strerror}") from None
    return path
