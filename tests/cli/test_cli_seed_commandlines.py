"""Every ``nunet ...`` command line in the seed documents and the Go reference parses with ours.

The lines are collected from the files here, not copied by hand, so a document that gains a
command gains a test. Each is parsed the way ``nunet`` would parse it, without running it and
without a daemon: the root's ``make_context``, then each group's ``resolve_command`` and the
next command's ``make_context`` (typer's own option parsing and type conversion, including
the persistent flags moved past a group, see ``dms.cli._persistent``), down to the leaf.

What the collector does with what the documents contain, and what it skips (and why):

* ``nunet`` followed by a word that is none of Go's top-level commands is prose ("the nunet
  daemon", "nunet authorized users"): skipped.
* Go commands this DMS does not have (``translate``): skipped, listed in :data:`NOT_OURS`,
  and each must still occur in the documents so the list cannot hide anything.
* A command quoted in a sentence (``from 'nunet gpu list' command``) ends at its closing quote.
* Usage synopses: ``[flags]``, ``[<param> ...]``, ``COMMAND`` and ``...`` are markers, dropped;
  ``[--timeout|--expiry]`` (alternative flags without their values) is a synopsis, dropped.
  Other ``[optional]`` parts give two lines, without and with them; ``(a | b)`` groups and
  ``a|b`` words give one line per alternative; ``<placeholder>`` and capitalised values
  (``DATE``, ``N``...) are replaced by a sample from :data:`SAMPLES`.
* A line that names a command and nothing else ("nunet cap new", in a sentence) names it:
  it must resolve to that command, but its required arguments are not demanded.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from dms.cli.main import app

SHARED = Path(__file__).resolve().parents[3] / "shared"
SOURCES = [*sorted((SHARED / "seeds").glob("*.txt")), SHARED / "spec" / "go-dms-reference.md"]

#: Go's top-level ``nunet`` commands (``cmd/``, spec §1); any other word after ``nunet`` is prose.
GO_COMMANDS = frozenset(
    {
        "actor", "cap", "key", "config", "run", "deploy", "get", "gpu", "translate",
        "validate", "contracts", "tap", "version", "autocomplete", "deployment",
    }
)  # fmt: skip
#: Pieces of the documents that name something this DMS does not have, and why.
NOT_OURS = {
    "nunet translate": "docker-compose translation: not implemented",
}
DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
#: Values for placeholders (``<name>``, lower-cased) and capitalised sample values.
SAMPLES = {
    "<behavior>": "/public/status",
    "<subjectdid>": DID,
    "<user-did>": DID,
    "<ctx>": "user",
    "<context>": "user",
    "<key-name>": "user",
    "<key>": "user",
    "<name>": "user",
    "<value>": "9999",
    "<tokenlist json>": '{"tok":[]}',
    "DATE": "2030-12-31",
    "N": "2",
    "D": "720h",
    "DID": DID,
    "TOKENS_JSON": '{"tok":[]}',
}
MARKERS = ("[flags]", "[<param> ...]", "COMMAND", "...")
SYNOPSIS_FLAGS = re.compile(r"\[--?[\w-]+(?:\|--?[\w-]+)+\]")
OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
GROUP = re.compile(r"\(([^()]*\|[^()]*)\)")


@dataclass(frozen=True)
class Found:
    source: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


def collect() -> list[Found]:
    """Every ``nunet <word> ...`` in the sources: backtick spans in Markdown, else the rest of
    the line (the seed texts lost their code blocks' formatting)."""
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if path.suffix == ".md":
                pieces = re.findall(r"`(nunet [^`]*)`", line)
            else:
                pieces = []
                for match in re.finditer(r"(?<![\w./$-])(['\"]?)(nunet [^`]*)$", line):
                    quote, piece = match.groups()
                    pieces.append(piece.split(quote, 1)[0] if quote else piece)
            found += [Found(path.name, number, piece.strip()) for piece in pieces]
    return found


def skip_reason(text: str) -> str | None:
    word = text.split()[1] if len(text.split()) > 1 else ""
    if word not in GO_COMMANDS:
        return "prose"
    return next((why for piece, why in NOT_OURS.items() if piece in text), None)


def variants(text: str) -> list[str]:
    """The concrete command lines a documented line stands for (see the module docstring)."""
    for marker in MARKERS:
        text = text.replace(marker, " ")
    text = SYNOPSIS_FLAGS.sub(" ", text)
    lines = {OPTIONAL.sub(" ", text), OPTIONAL.sub(r" \1 ", text)}
    expanded: set[str] = set()
    for line in lines:
        groups = GROUP.findall(line)
        choices = [[alt.strip() for alt in group.split("|")] for group in groups]
        for picked in itertools.product(*choices) if choices else [()]:
            out = line
            for group, alternative in zip(groups, picked, strict=True):
                out = out.replace(f"({group})", alternative, 1)
            expanded.add(out)
    concrete = set()
    for line in expanded:
        words = shlex.split(line)
        widest = max((len(w.split("|")) for w in words if "|" in w), default=1)
        for k in range(widest):
            chosen = [w.split("|")[min(k, len(w.split("|")) - 1)] if "|" in w else w for w in words]
            concrete.add(shlex.join(SAMPLES.get(w.lower() if w.startswith("<") else w, w)
                                    for w in chosen))  # fmt: skip
    return sorted(concrete)


def parse(argv: list[str]) -> tuple[Any, bool]:
    """Parse ``argv`` (after ``nunet``) as ``nunet`` would, without invoking anything.

    Returns the innermost context and whether the line only named a command (nothing left
    after the command names)."""
    command: Any = typer.main.get_command(app)
    if not argv:
        return None, True
    ctx = command.make_context("nunet", list(argv))
    while hasattr(command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return ctx, True
        name, command, rest = command.resolve_command(ctx, rest)
        only_names = not rest and all(not a.startswith("-") for a in argv)
        if only_names:
            return ctx, True
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx, False


#: The collected lines, kept in the repository so that a machine without the documents (a CI
#: runner with only the clone) still parses every one; regenerate with
#: ``.venv/bin/python -m tests.cli.test_cli_seed_commandlines``.
COLLECTED = Path(__file__).parent / "data" / "seed_commandlines.txt"


def _render(found: list[Found]) -> str:
    return "".join(f"{f.source}\t{f.line}\t{f.text}\n" for f in found)


def _read_collected() -> list[Found]:
    out = []
    for row in COLLECTED.read_text().splitlines():
        source, line, text = row.split("\t", 2)
        out.append(Found(source, int(line), text))
    return out


FOUND = collect() if SHARED.is_dir() else _read_collected()
LINES = [f for f in FOUND if skip_reason(f.text) is None]


def test_the_kept_lines_are_the_documents_lines() -> None:
    """The repository's copy of the collected lines is what the documents say today."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not on this machine: the kept copy is parsed instead")
    assert COLLECTED.read_text() == _render(FOUND), (
        "the documents changed: regenerate with "
        "`.venv/bin/python -m tests.cli.test_cli_seed_commandlines`"
    )


def test_the_documents_name_commands() -> None:
    assert len(LINES) >= 40, [str(f) for f in FOUND]
    texts = " ".join(f.text for f in LINES)
    assert "nunet actor cmd --context user /dms/node/peers/list" in texts  # the example
    for piece in NOT_OURS:  # every skip still matches something, so none hides a new line
        assert any(piece in f.text for f in FOUND), piece


@pytest.mark.parametrize("found", LINES, ids=str)
def test_a_documented_command_line_parses(found: Found) -> None:
    for line in variants(found.text):
        argv = shlex.split(line)[1:]
        try:
            parse(argv)
        except Exception as exc:
            pytest.fail(f"{found}\n  as {line!r}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    "argv",
    [
        "actor cmd --context user /dms/node/peers/list",
        "actor cmd /dms/node/peers/list --context user",
        "actor cmd -c user -t 10s --json /public/status",
        "actor cmd --context=user -t10s /public/status",
        "actor -c user cmd -d " + DID + " /public/hello",
        "actor cmd -e 2030-01-01T00:00:00Z /public/status -c user",
        "-c user deploy -f ens.yaml -t 5m",
        "get -c user --json deployments",
        "--config x.json deployment -c user --json status 4f2a",
    ],
)
def test_persistent_flags_before_or_after_the_command(argv: str) -> None:
    ctx, named = parse(shlex.split(argv))
    assert not named
    assert ctx.params["context"] == "user"


def test_before_and_after_give_the_same_values() -> None:
    before, _ = parse(shlex.split("actor cmd -c ctx -d peer -t 5s --json /public/status"))
    after, _ = parse(shlex.split("actor cmd /public/status -c ctx -d peer -t 5s --json"))
    assert before.params == after.params
    assert before.params["dest"] == "peer" and before.params["as_json"] is True


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ("actor cmd -x /public/status", "No such option: -x"),
        ("actor cmd --context", "--context"),  # no value and no behaviour
        ("-c user key did user", "No such option: -c"),  # only commands that sign take it
        ("actor send -c user {}", "No such option: -c"),  # the sub-command must have it
    ],
)
def test_what_is_still_refused(argv: str, error: str) -> None:
    with pytest.raises(Exception, match=error):
        parse(shlex.split(argv))


if __name__ == "__main__":
    COLLECTED.parent.mkdir(exist_ok=True)
    COLLECTED.write_text(_render(collect()))
    print(f"wrote {COLLECTED}")
