"""Capability chain verification rate next to the raw Ed25519 verify rate of the same run.

Run: ``python bench/bench_token_verify.py``. A chain of depth d holds d+1 signatures, so the ideal
ratio (raw verifies/s ÷ chains/s) is d+1; anything above that is parsing, JSON re-encoding and
rule-checking overhead. Tokens are parsed fresh for every verification, as a receiver does with
each envelope, so cached encodings do not flatter the numbers.

"chains/s" is cold (the verified-signature cache cleared before each chain: links never seen);
"warm chains/s" is the same chain again, as when a node's grant recurs in every message: each
link is then matched field by field against the cached one instead of re-marshalled and checked.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from dms.crypto import Ed25519PrivateKey
from dms.did import KeyProvider
from dms.ucan import Token, TokenList, new_token, parse_token_list, verify_token
from dms.ucan._chain import VERIFIED

HOUR = 3600 * 10**9
BUDGET_S = 2.0  # per measurement


def rate(fn: Callable[[], object], budget_s: float = BUDGET_S) -> float:
    """Calls per second of ``fn`` over about ``budget_s`` seconds."""
    fn()  # warm up
    count, start = 0, time.perf_counter()
    deadline = start + budget_s
    while True:
        for _ in range(20):
            fn()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def chain(depth: int, now: int) -> Token:
    """A chain of ``depth`` delegate links under one invoke leaf (depth+1 signatures)."""
    keys = [
        KeyProvider(Ed25519PrivateKey(hashlib.sha256(f"bench-{i}".encode()).digest()))
        for i in range(depth + 2)
    ]
    token: Token | None = None
    for i in range(depth):
        token = new_token(
            keys[i],
            "delegate",
            keys[i + 1].did,
            audience=keys[-1].did,
            topics=["/nunet"],
            expire_ns=now + (depth - i + 1) * HOUR,
            depth=0,
            caps=["/dms"],
            chain=token,
        )
    return new_token(
        keys[depth],
        "invoke",
        keys[-1].did,
        audience=keys[-1].did,
        topics=["/nunet"],
        expire_ns=now + HOUR,
        depth=0,
        caps=["/dms/deployment"],
        chain=token,
    )


def main() -> None:
    now = time.time_ns()
    key = Ed25519PrivateKey(b"\x07" * 32)
    message = b"dms:token:" + b"x" * 400
    signature = key.sign(message)
    public = key.public_key
    raw = rate(lambda: public.verify(message, signature))
    print(f"raw Ed25519 verify: {raw:10.0f} /s")
    print(
        f"{'depth':>5} {'sigs':>4} {'chains/s':>10} {'ratio':>7} {'ideal':>5} {'warm chains/s':>13}"
    )
    for depth in (1, 3, 8):
        wire = TokenList((chain(depth, now),)).to_json()

        def verify_cold(wire: bytes = wire) -> None:
            VERIFIED.clear()  # every link checked: a chain never seen before
            verify_token(parse_token_list(wire).tokens[0], now)

        def verify_warm(wire: bytes = wire) -> None:
            verify_token(parse_token_list(wire).tokens[0], now)  # links seen before: cached

        chains = rate(verify_cold)
        warm = rate(verify_warm)
        print(
            f"{depth:>5} {depth + 1:>4} {chains:10.0f} {raw / chains:7.2f} {depth + 1:>5}"
            f" {warm:13.0f}"
        )


if __name__ == "__main__":
    main()
