"""Go's case-insensitive comparison of JSON keys with struct field names (``bytes.EqualFold``).

Go's decoder matches a key to a field name when the two are equal under Unicode *simple* case
folding: rune by rune, each rune may be replaced by any rune of its fold orbit
(``unicode.SimpleFold``), so ``K`` (U+212A KELVIN SIGN) matches ``k``, ``ſ`` (U+017F LONG S)
matches ``s``, ``ẞ`` matches ``ß`` and ``Ω`` (U+2126 OHM SIGN) matches ``ω``, while ``ß`` never
matches ``ss`` and ``İ`` (U+0130) never matches ``i`` (those are *full* or Turkic foldings, which
Go leaves out). Go ≥ 1.21 implements this as ``foldName`` (each rune replaced by the smallest rune
of its orbit); Go ≤ 1.20 as ``bytes.EqualFold`` and its ASCII short cuts (``foldFunc``); both give
the same answer, and :func:`fold` gives it too.

Go's orbits are the classes of Unicode's simple case folding (CaseFolding.txt statuses C and S),
which Python does not expose directly: ``str.casefold`` is the *full* folding (C and F). Where a
rune has a full folding of several runes, its simple folding is its simple lowercase when that is
one rune in the same class (``ẞ`` → ``ß``, ``ᾈ`` → ``ᾀ``) and the rune itself otherwise
(``ß``, ``İ``, ``ŉ``). ``tests/gocompat`` checks the resulting classes against Go's
``unicode.SimpleFold`` over every code point. The Unicode version is the Python runtime's
(14.0 for 3.11), Go's is its own (13.0 for Go 1.19, 15.0 for Go 1.21): they differ only for
letters added to Unicode since, none of which appears in a DMS field name.

Invalid UTF-8 and unpaired surrogates compare as U+FFFD, as in Go.
"""

from __future__ import annotations

import functools
import re

_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lower = char.lower()  # a full folding of several runes: the simple one is the lowercase
    if len(lower) == 1 and len(lower.casefold()) > 1:
        return lower
    return char


def fold(key: str) -> str:
    """A canonical form of ``key`` such that ``fold(a) == fold(b)`` iff Go's ``EqualFold(a, b)``.

    ASCII keys (nearly all) are simply lower-cased, so ``fold("allocationID") ==
    "allocationid"``; other runes go to their simple case folding (see the module doc).
    """
    if key.isascii():
        return key.lower()
    key = _SURROGATE.sub("\ufffd", key)
    return "".join(map(_fold_char, key))


def equal_fold(a: str, b: str) -> bool:
    """Go's ``bytes.EqualFold(a, b)``: equal under Unicode simple case folding."""
    return a == b or fold(a) == fold(b)
