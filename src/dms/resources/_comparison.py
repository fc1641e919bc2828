"""The outcome of comparing a machine's resources (left) with required ones (right).

Why a dedicated type: the Go DMS (``types/comparison.go``) reports ``"Better"``, ``"Worse"``,
``"Equal"`` or ``"None"`` (not comparable, e.g. different CPU architectures) and folds the
per-part results with an ``And`` whose truth table we reproduce, quirks included, so Python and
Go providers accept and reject the same requests.
"""

from __future__ import annotations

from enum import StrEnum


class Comparison(StrEnum):
    """``Better``/``Worse``/``Equal``: left against right; ``None``: cannot compare."""

    BETTER = "Better"
    WORSE = "Worse"
    EQUAL = "Equal"
    NONE = "None"

    def and_(self, other: Comparison) -> Comparison:
        """Go's ``Comparison.And``.

        Equal is neutral; Worse wins over Better; None poisons, except that ``Worse.And(None)``
        is Worse (Go's ``case Worse: return Worse``), which is harmless: both mean "does not fit".
        """
        if self is other:
            return self
        if self is Comparison.EQUAL:
            return other if other is not Comparison.NONE else Comparison.NONE
        if self is Comparison.BETTER:
            if other is Comparison.WORSE:
                return Comparison.WORSE
            if other is Comparison.EQUAL:
                return Comparison.BETTER
            return Comparison.NONE
        if self is Comparison.WORSE:
            return Comparison.WORSE
        return Comparison.NONE

    @property
    def fits(self) -> bool:
        """True when the left side can satisfy the right (Better or Equal)."""
        return self in (Comparison.BETTER, Comparison.EQUAL)


def numeric(left: float, right: float) -> Comparison:
    """Go's ``NumericComparator``: larger left is Better."""
    if left == right:
        return Comparison.EQUAL
    return Comparison.BETTER if left > right else Comparison.WORSE
