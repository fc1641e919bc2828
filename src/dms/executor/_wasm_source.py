"""Getting a module's bytes: inline in the spec, a local ``.wasm``/``.wat`` file, or an
http(s) URL.

Fetched modules land in a content-addressed cache (``<cache>/<sha256>.wasm``), so a spec that
pins ``sha256`` runs from the cache without touching the network once the module has been
seen; a spec without ``sha256`` is fetched every time (the URL may now serve something else).
Every source is size-capped, fetches have one overall deadline, and a pinned ``sha256`` is
checked before the bytes go anywhere near the compiler.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import trio

from dms.executor._errors import ImageUnavailable
from dms.executor._wasm_spec import WasmSpec


@dataclass(frozen=True)
class ModuleBytes:
    """A module as read: binary WebAssembly or WAT text, with the SHA-256 of those bytes."""

    data: bytes
    sha256: str


def _size_error(source: str, limit: int) -> ImageUnavailable:
    return ImageUnavailable(f"wasm module {source} is larger than the {limit} byte limit")


def _read_file(path: Path, limit: int, source: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ImageUnavailable(f"cannot read wasm module {source}: {exc.strerror}") from None
    if len(data) > limit:
        raise _size_error(source, limit)
    return data


def _checked(data: bytes, spec: WasmSpec) -> ModuleBytes:
    digest = hashlib.sha256(data).hexdigest()
    if spec.sha256 is not None and digest != spec.sha256:
        raise ImageUnavailable(
            f"wasm module {spec.module} has sha256 {digest}, but the spec pins {spec.sha256}; "
            "refusing to run it"
        )
    return ModuleBytes(data, digest)


def _store(cache_dir: Path, module: ModuleBytes) -> None:
    """Write ``module`` into the cache atomically (a crash leaves a temp file, never half a
    module under its hash)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".fetch-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(module.data)
        os.replace(tmp, cache_dir / f"{module.sha256}.wasm")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: Redirects followed (each hop is checked against the address policy like the first URL).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def check_public_host(url: str) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or reserved address.

    A deployment names the module URL and the provider's node fetches it: without this, any
    deployer could make a node probe its own LAN or a cloud metadata endpoint (SSRF). Checked
    for the first URL and every redirect. A DNS answer that changes between this check and the
    connection (rebinding) is not covered; nodes on hostile networks should pin ``sha256``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError as exc:
        raise ImageUnavailable(f"cannot fetch wasm module {url}: {host}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise ImageUnavailable(
                f"wasm module {url}: {host} is a non-public address ({address}); not fetched "
                "(a node fetches deployers' URLs only from public addresses)"
            )


async def _fetch(url: str, *, limit: int, timeout: float, private_ok: bool = False) -> bytes:
    import httpx  # costs start-up time only when a URL module is actually run

    chunks: list[bytes] = []
    size = 0
    try:
        with trio.fail_after(timeout):
            async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    if not private_ok:
                        await check_public_host(url)
                    async with client.stream("GET", url) as response:
                        location = response.headers.get("location")
                        if response.status_code in _REDIRECTS and location:
                            url = urljoin(url, location)
                            continue
                        if response.status_code != 200:
                            raise ImageUnavailable(
                                f"cannot fetch wasm module {url}: HTTP {response.status_code}"
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > limit:
                            raise _size_error(url, limit)
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > limit:
                                raise _size_error(url, limit)
                            chunks.append(chunk)
                        break
                else:
                    raise ImageUnavailable(
                        f"cannot fetch wasm module {url}: more than {MAX_REDIRECTS} redirects"
                    )
    except trio.TooSlowError:
        raise ImageUnavailable(
            f"cannot fetch wasm module {url}: no answer in {timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ImageUnavailable(f"cannot fetch wasm module {url}: {reason}") from None
    return b"".join(chunks)


def inline_module(spec: WasmSpec, *, limit: int) -> ModuleBytes:
    """The module carried in the spec (``module_data``), checked against its ``sha256`` again
    (``parse_spec`` did already; this is the last look before the compiler)."""
    if spec.data is None:
        raise ImageUnavailable(f"wasm module {spec.module} has no inline data")
    if len(spec.data) > limit:
        raise _size_error(f"{spec.module} (inline)", limit)
    if spec.sha256 is None:
        raise ImageUnavailable(f"wasm module {spec.module}: inline data without a sha256 pin")
    return _checked(spec.data, spec)


def read_module_file(spec: WasmSpec, *, limit: int) -> ModuleBytes:
    """The bytes of a local ``spec.module`` (blocking), checked against a pinned ``sha256``.

    Raises :class:`ImageUnavailable` when the file cannot be read, is larger than ``limit``
    bytes, or does not match its pinned hash.
    """
    return _checked(_read_file(Path(spec.module), limit, spec.module), spec)


async def fetch_module(
    spec: WasmSpec,
    cache_dir: Path,
    *,
    limit: int,
    fetch_timeout: float,
    limiter: trio.CapacityLimiter,
    private_ok: bool = False,
) -> ModuleBytes:
    """The bytes of the URL ``spec.module``: from the cache when its pinned ``sha256`` is
    there, else fetched (then cached). Raises :class:`ImageUnavailable` when it cannot be
    fetched, is larger than ``limit`` bytes, or does not match its pinned hash. Cache I/O runs
    in worker threads under ``limiter``. Hosts on non-public addresses are refused unless
    ``private_ok`` (see :func:`check_public_host`).
    """
    if spec.sha256 is not None:
        cached = cache_dir / f"{spec.sha256}.wasm"
        if cached.is_file():
            data = await trio.to_thread.run_sync(
                _read_file, cached, limit, spec.module, limiter=limiter
            )
            if hashlib.sha256(data).hexdigest() == spec.sha256:
                return ModuleBytes(data, spec.sha256)
            # A damaged cache entry: fetch again, which overwrites it.
    data = await _fetch(spec.module, limit=limit, timeout=fetch_timeout, private_ok=private_ok)
    module = _checked(data, spec)
    await trio.to_thread.run_sync(_store, cache_dir, module, limiter=limiter)
    return module
