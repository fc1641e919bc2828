"""Named capability contexts on disk: the key in ``key/<name>.json`` plus ``cap/<name>.cap``.

``nunet cap ...`` and ``nunet run`` both open contexts by name (``user``, ``dms``, ``ledger``);
this is the one place that pairs a context's signer with its saved anchors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dms.did import Provider, is_ledger_context, provider_for_context
from dms.ucan import CapabilityContext, cap_path, load_context, new_context, save_context

PassphraseReader = Callable[[bool], str]


def context_file_name(name: str) -> str:
    """The ``.cap`` file stem for a context: Ledger contexts all store as ``ledger``, as in Go."""
    return "ledger" if is_ledger_context(name) else name


def open_context(user_dir: Path, name: str, passphrase: PassphraseReader) -> CapabilityContext:
    """Load context ``name`` with its signer (NotFound with a hint when it does not exist)."""
    provider = provider_for_context(user_dir, name, passphrase, create=False)
    return load_context(user_dir, context_file_name(name), provider)


def create_context(
    user_dir: Path, name: str, passphrase: PassphraseReader, *, overwrite: bool = False
) -> tuple[CapabilityContext, Provider]:
    """Create context ``name``: its key when absent (as ``nunet cap new`` does) and an empty
    ``.cap`` file anchored on that key. ``overwrite`` replaces an existing ``.cap`` file (the old
    one is kept as a timestamped backup by the store)."""
    provider = provider_for_context(user_dir, name, passphrase, create=True)
    file_name = context_file_name(name)
    path = cap_path(user_dir, file_name)
    if overwrite and path.exists():
        ctx = CapabilityContext(provider, name=file_name)
        save_context(user_dir, ctx)
        return ctx, provider
    return new_context(user_dir, file_name, provider), provider


def context_exists(user_dir: Path, name: str) -> bool:
    """True if context ``name`` has a ``.cap`` file."""
    return cap_path(user_dir, context_file_name(name)).exists()
