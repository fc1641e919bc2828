"""``nunet key``: create, import and show the keys behind identities (Go DMS names and output)."""

from __future__ import annotations

from typing import Annotated

import typer

from dms.cli._common import confirm_overwrite, passphrase_reader, print_json, user_dir
from dms.crypto import Ed25519PrivateKey, PrivateKey, unmarshal_private_key
from dms.did import (
    did_from_public_key,
    is_ledger_context,
    keystore_for,
    list_key_names,
    peer_id_from_did,
    provider_for_context,
)
from dms.errors import InvalidInput

app = typer.Typer(
    no_args_is_help=True,
    help="Manage cryptographic keys: each key is an identity (a DID).",
)

NameArg = Annotated[str, typer.Argument(help="Key name, e.g. user or dms.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing key.")]


def _store_new_key(name: str, key: PrivateKey, force: bool) -> None:
    if is_ledger_context(name):
        raise InvalidInput(f"{name!r} names a Ledger device; its key cannot be stored locally")
    keystore = keystore_for(user_dir())
    if keystore.exists(name):
        confirm_overwrite(f"a key named {name!r}", force)
    keystore.save(name, key, passphrase_reader(name)(True))
    typer.echo(did_from_public_key(key.public_key).uri)


@app.command("new")
def new(name: NameArg, force: ForceOpt = False) -> None:
    """Generate an Ed25519 key pair, store it encrypted, and print its DID."""
    _store_new_key(name, Ed25519PrivateKey.generate(), force)


@app.command("import")
def import_key(
    name: NameArg,
    private_key_hex: Annotated[
        str, typer.Argument(help="libp2p protobuf private key or raw 32-byte Ed25519 seed, hex")
    ],
    force: ForceOpt = False,
) -> None:
    """Import an existing private key into the keystore and print its DID."""
    try:
        raw = bytes.fromhex(private_key_hex.strip().removeprefix("0x"))
    except ValueError:
        raise InvalidInput("private key must be hex") from None
    key = Ed25519PrivateKey(raw) if len(raw) == 32 else unmarshal_private_key(raw)
    _store_new_key(name, key, force)


@app.command("did")
def did(name: NameArg) -> None:
    """Print the DID of a stored key (or of a Ledger: ledger, ledger:<account>)."""
    provider = provider_for_context(user_dir(), name, passphrase_reader(name), create=False)
    typer.echo(provider.did.uri)


@app.command("peer-id")
def peer_id(name: NameArg) -> None:
    """Print the libp2p peer ID of a stored key (a DMS's peer ID is its ``dms`` key's)."""
    provider = provider_for_context(user_dir(), name, passphrase_reader(name), create=False)
    typer.echo(str(peer_id_from_did(provider.did)))


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the names of the stored keys (no passphrase needed)."""
    names = list_key_names(user_dir())
    if as_json:
        print_json(names)
    else:
        for key_name in names:
            typer.echo(key_name)
