"""What is wrong with an ensemble: every problem at once, each with its path and line.

Why all at once: a user fixing an ensemble one error per run would run ``nunet validate`` ten
times; a deployment refused by a peer should say everything that peer objects to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dms.errors import InvalidInput


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (a dotted path such as ``nodes.n1.ports[0]``, and the YAML line
    when the ensemble came from YAML) and what."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where = f"{where} (line {self.line})" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message


class EnsembleInvalid(InvalidInput):
    """An ensemble that cannot be deployed; ``problems`` lists every reason.

    ``str()`` is every problem, one per line (``path (line N): message``): the one place in
    the error hierarchy where a message has several lines, because each line is one error.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the ensemble")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class Problems:
    """A collector: ``add(path, message)`` looks the line up itself."""

    def __init__(self, line_of: Callable[[str], int | None] | None = None) -> None:
        self._line_of = line_of
        self.items: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        line = self._line_of(path) if self._line_of is not None else None
        self.items.append(Problem(path, line, message))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise EnsembleInvalid(sorted(self.items, key=_order))


def _order(problem: Problem) -> tuple[int, str]:
    return (problem.line if problem.line is not None else 0, problem.path)
