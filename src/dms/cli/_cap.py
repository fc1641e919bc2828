"""``nunet cap``: capability contexts and tokens, with the Go DMS's commands and flags.

new / anchor / grant / delegate / list / remove / revoke. Token arguments are JSON as the Go CLI
prints them (a TokenList ``{"tok":[...]}`` or a single ``{"dms":...}``); ``@FILE`` reads the JSON
from a file and ``-`` from standard input, since real token chains are long.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from dms.cli._common import (
    confirm_overwrite,
    info,
    passphrase_reader,
    print_json,
    read_json_arg,
    user_dir,
)
from dms.cli._timeparse import expiry_from_flags
from dms.contexts import context_exists, create_context, open_context
from dms.did import DID
from dms.errors import InvalidInput
from dms.ucan import (
    CapabilityContext,
    Token,
    TokenJSONError,
    TokenList,
    capabilities,
    parse_tokens,
    save_context,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Manage capability contexts: trust anchors and capability tokens.",
)

ContextOpt = Annotated[
    str, typer.Option("--context", "-c", help="Capability context to use (user, dms, ledger...).")
]
CapOpt = Annotated[
    list[str] | None, typer.Option("--cap", help="Capability, e.g. /public (repeatable).")
]
TopicOpt = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Broadcast topic (repeatable).")
]
AudienceOpt = Annotated[
    str | None, typer.Option("--audience", "-a", help="DID the token is restricted to.")
]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", "-e", help="Expiry as an ISO date, e.g. 2025-12-31.")
]
DurationOpt = Annotated[
    str | None, typer.Option("--duration", help="Lifetime from now, e.g. 720h, 30m, 7d.")
]
DepthOpt = Annotated[
    int, typer.Option("--depth", "-d", min=0, help="Max further delegation depth (0 = no limit).")
]
SubjectArg = Annotated[str, typer.Argument(help="DID that receives the capability.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open(context: str) -> CapabilityContext:
    return open_context(user_dir(), context, passphrase_reader(context))


def _save(ctx: CapabilityContext) -> None:
    path = save_context(user_dir(), ctx)
    info(f"saved {path}")


def _tokens_arg(text: str) -> list[Token]:
    """Tokens from a TokenList or a single Token, as either Go command prints them."""
    data = read_json_arg(text).strip().encode()
    try:
        tokens = list(parse_tokens(data).tokens)
    except TokenJSONError as exc:
        raise InvalidInput(f"tokens must be JSON: {exc.reason}") from None
    if not tokens:
        raise InvalidInput("the token list is empty")
    return tokens


def _did_arg(text: str, what: str) -> DID:
    try:
        return DID.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid {what}: {exc}") from None


def _one_of(**flags: str | None) -> tuple[str, str]:
    given = [(name, value) for name, value in flags.items() if value]
    if len(given) != 1:
        names = ", ".join(f"--{name}" for name in flags)
        raise InvalidInput(f"give exactly one of {names}")
    return given[0][0], str(given[0][1])


def _caps(cap: list[str] | None) -> list[str]:
    if not cap:
        raise InvalidInput("give at least one --cap, e.g. --cap /public")
    return list(capabilities(cap))


def _print_token_list(tokens: TokenList) -> None:
    typer.echo(tokens.to_json().decode())


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="Context name, e.g. user or dms.")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing context.")
    ] = False,
) -> None:
    """Create a capability context (and its key, when it has none yet); print its DID."""
    root = user_dir()
    exists = context_exists(root, name)
    if exists:
        confirm_overwrite(f"capability context {name!r}", force)
    ctx, _ = create_context(root, name, passphrase_reader(name), overwrite=exists)
    info(f"created capability context {name!r}")
    typer.echo(ctx.did.uri)


@app.command("anchor")
def anchor(
    context: ContextOpt = "user",
    root: Annotated[str | None, typer.Option("--root", help="DID to trust absolutely.")] = None,
    require: Annotated[
        str | None, typer.Option("--require", help="Tokens JSON accepted as side chains.")
    ] = None,
    provide: Annotated[
        str | None, typer.Option("--provide", help="Tokens JSON this context may present.")
    ] = None,
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="Revoke tokens JSON (from nunet cap revoke).")
    ] = None,
) -> None:
    """Add a trust anchor: a root DID, or require / provide / revoke tokens."""
    kind, value = _one_of(root=root, require=require, provide=provide, revoke=revoke)
    ctx = _open(context)
    if kind == "root":
        ctx.add_roots([_did_arg(value, "root DID")])
    elif kind == "require":
        ctx.add_require(_tokens_arg(value))
    elif kind == "provide":
        ctx.add_provide(_tokens_arg(value))
    else:
        ctx.add_revoke(_tokens_arg(value))
    _save(ctx)


@app.command("remove")
def remove(
    context: ContextOpt = "user",
    root: Annotated[str | None, typer.Option("--root", help="Root DID to remove.")] = None,
    require: Annotated[str | None, typer.Option("--require", help="Token JSON.")] = None,
    provide: Annotated[str | None, typer.Option("--provide", help="Token JSON.")] = None,
    revoke: Annotated[str | None, typer.Option("--revoke", help="Token JSON.")] = None,
) -> None:
    """Remove a trust anchor (one at a time)."""
    kind, value = _one_of(root=root, require=require, provide=provide, revoke=revoke)
    ctx = _open(context)
    if kind == "root":
        removed = ctx.remove(roots=[_did_arg(value, "root DID")])
    elif kind == "require":
        removed = ctx.remove(require=_tokens_arg(value))
    elif kind == "provide":
        removed = ctx.remove(provide=_tokens_arg(value))
    else:
        removed = ctx.remove(revoke=_tokens_arg(value))
    if not removed:
        raise InvalidInput(f"no such {kind} anchor in context {context!r}")
    _save(ctx)


@app.command("grant")
def grant(
    subject: SubjectArg,
    context: ContextOpt = "user",
    cap: CapOpt = None,
    topic: TopicOpt = None,
    audience: AudienceOpt = None,
    expiry: ExpiryOpt = None,
    duration: DurationOpt = None,
    depth: DepthOpt = 0,
) -> None:
    """Grant capabilities to SUBJECT with a self-signed root delegate token; print it."""
    caps = _caps(cap)
    expire_ns = expiry_from_flags(expiry, duration)
    if not expire_ns:
        raise InvalidInput("give --expiry or --duration: a grant must expire")
    ctx = _open(context)
    tokens = ctx.grant(
        "delegate",
        _did_arg(subject, "subject DID"),
        audience=_did_arg(audience, "audience DID") if audience else DID(),
        topics=topic or [],
        expire_ns=expire_ns,
        depth=depth,
        caps=caps,
    )
    _print_token_list(tokens)


@app.command("delegate")
def delegate(
    subject: SubjectArg,
    context: ContextOpt = "user",
    cap: CapOpt = None,
    topic: TopicOpt = None,
    audience: AudienceOpt = None,
    expiry: ExpiryOpt = None,
    duration: DurationOpt = None,
    depth: DepthOpt = 0,
    self_sign: Annotated[
        str, typer.Option("--self-sign", help="Add a self-signed grant: no, also or only.")
    ] = "no",
    auto_expire: Annotated[
        bool, typer.Option("--auto-expire", help="Expire with the parent token (the default).")
    ] = False,
) -> None:
    """Re-delegate capabilities held through provide anchors to SUBJECT; print the tokens."""
    caps = _caps(cap)
    if self_sign not in ("no", "also", "only"):
        raise InvalidInput(f"--self-sign must be no, also or only, not {self_sign!r}")
    expire_ns = 0 if auto_expire else expiry_from_flags(expiry, duration)
    if auto_expire and (expiry or duration):
        raise InvalidInput("--auto-expire cannot be combined with --expiry or --duration")
    ctx = _open(context)
    tokens = ctx.delegate(
        "delegate",
        _did_arg(subject, "subject DID"),
        audience=_did_arg(audience, "audience DID") if audience else DID(),
        topics=topic or [],
        expire_ns=expire_ns,
        depth=depth,
        caps=caps,
        self_sign=self_sign,
    )
    _print_token_list(tokens)  # never empty: delegate raises when no anchor allows it


@app.command("revoke")
def revoke(
    tokens: Annotated[str, typer.Argument(help="Tokens JSON to revoke (@FILE or - for stdin).")],
    context: ContextOpt = "user",
) -> None:
    """Issue revocation tokens for tokens this context issued; print one per line.

    Anchor them where they must take effect with
    ``nunet cap anchor --context C --revoke '{"tok":[<line>,...]}'``.
    """
    ctx = _open(context)
    for token in _tokens_arg(tokens):
        typer.echo(ctx.revoke(token).to_json().decode())


def _when(expire_ns: int) -> str:
    moment = datetime.fromtimestamp(expire_ns / 1e9, tz=UTC)
    left = expire_ns - time.time_ns()
    hours = left / 3.6e12
    rel = f"in {hours / 24:.1f}d" if hours >= 48 else f"in {hours:.1f}h"
    return f"{moment:%Y-%m-%d %H:%M} UTC ({rel})"


def _token_lines(kind: str, tokens: TokenList) -> list[str]:
    lines = []
    for number, token in enumerate(tokens.tokens, 1):
        t = token.dms
        links = len(list(t.links()))
        lines += [
            f"{kind} #{number}: {t.action}, expires {_when(t.expire)}",
            f"  issuer    {t.issuer.uri}",
            f"  subject   {t.subject.uri}",
            f"  audience  {t.audience.uri or '(anyone)'}",
            f"  caps      {' '.join(t.capability or []) or '(none)'}",
        ]
        if t.topic:
            lines.append(f"  topics    {' '.join(t.topic)}")
        lines.append(
            f"  depth     {t.depth or 'unlimited'}; chain of {links} token{'s' * (links > 1)}"
        )
    return lines


@app.command("list")
def list_anchors(context: ContextOpt = "user", as_json: JsonOpt = False) -> None:
    """List the context's DID, root DIDs, and require / provide / revoke tokens."""
    view = _open(context).list()
    if as_json:
        print_json(
            {
                "did": view.did.uri,
                "roots": [r.uri for r in view.roots],
                "require": _json_obj(view.require),
                "provide": _json_obj(view.provide),
                "revoke": _json_obj(view.revoke),
            }
        )
        return
    lines = [f"context {context}: {view.did.uri}", "roots:"]
    lines += [f"  {root.uri}" for root in view.roots] or ["  (none)"]
    for kind, tokens in (
        ("require", view.require),
        ("provide", view.provide),
        ("revoke", view.revoke),
    ):
        lines += _token_lines(kind, tokens) or [f"{kind}: (none)"]
    typer.echo("\n".join(lines))


def _json_obj(tokens: TokenList) -> object:
    parsed: object = json.loads(tokens.to_json())
    return parsed
