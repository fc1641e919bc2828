"""``<user_dir>/cap/<context>.cap`` files, in the Go DMS's format, so either can read the other's.

One JSON object, newline-terminated (Go's ``json.Encoder``)::

    {"did":{"uri":...},"roots":[...],"require":{"tok":[...]},"provide":{...},"revoke":{...}}

Older Go versions wrote ``DID/Roots/Require/Provide`` (Go-default keys, no revoke); keys match
case-insensitively so both load. On load expired tokens are dropped and every other token must
verify, or the load fails: a tampered file must not silently widen or narrow trust. Revocations are
not applied at load time (a revoked anchor stays listed but is never used), so revoking one of
our own anchors cannot make the context unloadable. Saving keeps the previous file as
``<context>.cap.<unix-seconds>`` and writes the new one atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dms import gojson
from dms._files import atomic_write
from dms.did import Provider
from dms.errors import CapabilityError, DMSError, NotFound, TokenError
from dms.ucan._chain import verify_token
from dms.ucan._context import CapabilityContext, Clock, ContextView
from dms.ucan._parse import did_from_value, fields, loads, token_list_from_value
from dms.ucan._token import TokenList

CAP_DIR = "cap"
CAP_SUFFIX = ".cap"


def cap_path(user_dir: str | os.PathLike[str], name: str) -> Path:
    """Where context ``name`` is stored."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise CapabilityError(f"invalid capability context name {name!r}")
    return Path(user_dir) / CAP_DIR / f"{name}{CAP_SUFFIX}"


def new_context(
    user_dir: str | os.PathLike[str], name: str, provider: Provider, *, clock: Clock = time.time_ns
) -> CapabilityContext:
    """Create and save an empty context for ``provider`` (``nunet cap new``); never overwrite."""
    path = cap_path(user_dir, name)
    if path.exists():
        raise CapabilityError(f"capability context {name!r} already exists: {path}")
    ctx = CapabilityContext(provider, name=name, clock=clock)
    save_context(user_dir, ctx)
    return ctx


def load_context(
    user_dir: str | os.PathLike[str], name: str, provider: Provider, *, clock: Clock = time.time_ns
) -> CapabilityContext:
    """Load context ``name``; ``provider`` must sign as the DID the file was made for."""
    path = cap_path(user_dir, name)
    view = _read_view(path, clock, name=name)
    if view.did != provider.did:
        raise CapabilityError(
            f"{path} belongs to {view.did.uri or '<no DID>'}, not to {provider.did.uri}"
        )
    return CapabilityContext(
        provider,
        name=name,
        roots=view.roots,
        require=view.require.tokens,
        provide=view.provide.tokens,
        revoke=view.revoke.tokens,
        clock=clock,
    )


def reload_context(user_dir: str | os.PathLike[str], ctx: CapabilityContext) -> None:
    """Re-read ``ctx``'s file and swap its anchors in (see ``replace_anchors``).

    The file is verified exactly as on load; on any error the context keeps its anchors.
    """
    ctx.replace_anchors(_read_view(cap_path(user_dir, ctx.name), ctx.clock))


def _read_view(path: Path, clock: Clock, *, name: str | None = None) -> ContextView:
    """Read and decode (verify) the ``.cap`` file at ``path``, as of ``clock()`` after reading.

    With ``name`` (a load), a missing file is :class:`NotFound`; any other read error is a
    :class:`CapabilityError` and a bad file a :class:`TokenError` naming ``path``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        if name is not None and isinstance(exc, FileNotFoundError):
            raise NotFound(f"capability context {name!r} not found: {path}") from None
        raise CapabilityError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return decode_context(data, clock())
    except DMSError as exc:
        raise TokenError(f"{path}: {exc}") from None


def save_context(user_dir: str | os.PathLike[str], ctx: CapabilityContext) -> Path:
    """Write ``ctx`` to its file (named ``ctx.name``), keeping the old file as a backup."""
    path = cap_path(user_dir, ctx.name)
    data = encode_context(ctx.list())
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        if path.exists():
            # Go renames the old file away before writing, so a crash in between leaves no
            # context at all; a hard link keeps the backup while the atomic replace runs.
            backup = path.with_name(f"{path.name}.{int(time.time())}")
            backup.unlink(missing_ok=True)
            os.link(path, backup)
        atomic_write(path, data, tmp_name=f".{path.name}.tmp-{os.getpid()}")
    except OSError as exc:
        raise CapabilityError(f"cannot save {path}: {exc.strerror or exc}") from None
    return path


def encode_context(view: ContextView) -> bytes:
    """The ``.cap`` file bytes for ``view``."""
    body = gojson.Struct(
        did=gojson.Struct(uri=view.did.uri) if view.did.uri else gojson.Struct(),
        roots=[gojson.Struct(uri=r.uri) if r.uri else gojson.Struct() for r in view.roots],
    )
    head = gojson.marshal(body)[:-1]
    lists = b",".join(
        b'"' + key + b'":' + tokens.to_json()
        for key, tokens in (
            (b"require", view.require),
            (b"provide", view.provide),
            (b"revoke", view.revoke),
        )
    )
    return head + b"," + lists + b"}\n"


def decode_context(data: bytes, now_ns: int) -> ContextView:
    """Parse ``.cap`` bytes, drop expired tokens and verify the rest (raises on any failure)."""
    f = fields(loads(data), ("did", "roots", "require", "provide", "revoke"), "capability file")
    roots_raw = f.get("roots")
    if roots_raw is not None and type(roots_raw) is not list:
        raise TokenError("invalid capability file: 'roots' must be an array")
    roots = tuple(did_from_value(r, "root") for r in roots_raw or ())
    lists = [_token_list(f.get(key), key, now_ns) for key in ("require", "provide", "revoke")]
    for key, tokens in zip(("require", "provide", "revoke"), lists, strict=True):
        for token in tokens.tokens:
            try:
                verify_token(token, now_ns)
            except TokenError as exc:
                raise TokenError(f"{key} token: {exc}") from None
    return ContextView(did_from_value(f.get("did"), "DID"), roots, *lists)


def _token_list(value: Any, key: str, now_ns: int) -> TokenList:
    tokens = token_list_from_value(value, f"{key} list").tokens
    return TokenList(
        tuple(t for t in tokens if not any(link.expired(now_ns) for link in t.dms.links()))
    )
