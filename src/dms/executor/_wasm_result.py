"""How a module's run ended (:class:`Outcome`, filled in by the worker thread) and what that
means for the user (:func:`result_of`, an :class:`ExecutionResult` with its ``Termination``).

Kept apart from wasmtime so the rules are plain data in, plain data out, and testable alone.

Memory: the cap (``resources.ram.size``) is a store limit on linear memory, so the engine
never kills anything; ``memory.grow`` past the cap just returns -1 and the program decides what
to do, usually abort (Rust traps on ``unreachable``; C prints and exits non-zero). The engine
does not tell us a grow was refused, so a failure is reported as ``OOM_KILLED`` only when the
evidence points that way:

* the module could not even start: its declared initial memory is above the cap (certain);
* it failed (trap, or non-zero exit) with a cap set and either its linear memory past half the
  cap (a doubling allocator could not grow again) or a well-known allocation-failure message
  at the end of its stderr (probable; the error says what was seen).

Anything else is an ordinary failure whose error still states the memory in use, so a user can
judge. A trap is reported like a crashed process: exit code 134 (as the wasmtime CLI does,
128 + SIGABRT), ``Termination.EXITED``, the trap's reason in ``error``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dms.executor._types import ExecutionResult, Termination
from dms.resources import format_size

TRAP_EXIT_CODE = 134

_ALLOCATION_FAILURES = ("memory allocation of", "out of memory", "cannot allocate memory")


class OutcomeKind(enum.Enum):
    RETURNED = "returned"  # _start returned: exit code 0
    EXITED = "exited"  # proc_exit(code)
    TRAPPED = "trapped"  # a trap, including fuel exhaustion and epoch interruption
    NOT_STARTED = "not_started"  # stopped before the module was entered
    START_FAILED = "start_failed"  # instantiation failed (limits, linking, WASI set-up)
    ERROR = "error"  # anything unexpected in the worker thread


@dataclass(frozen=True)
class Outcome:
    """What the worker thread saw. ``trap`` is the wasmtime ``TrapCode`` name when known."""

    kind: OutcomeKind
    exit_code: int = 0
    trap: str = ""
    message: str = ""
    memory_bytes: int = 0  # the exported linear memory at the end; 0 when unknown


class StopReason(enum.Enum):
    """Why the executor interrupted a module."""

    CANCEL = "cancel"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class RunContext:
    """What :func:`result_of` needs besides the outcome."""

    fuel: int | None
    timeout: float | None
    memory_cap: int  # bytes; 0 = no cap
    stop: StopReason | None  # set when the executor asked the module to stop
    abandoned: bool  # the worker thread was left behind (blocked in a host call)
    stdout: str
    stderr: str


def _result(
    ctx: RunContext, exit_code: int, error: str = "", termination: Termination = Termination.EXITED
) -> ExecutionResult:
    return ExecutionResult(exit_code, ctx.stdout, ctx.stderr, error, termination)


def _stopped(ctx: RunContext) -> ExecutionResult:
    note = " (it was blocked in a host call and was abandoned)" if ctx.abandoned else ""
    if ctx.stop is StopReason.TIMEOUT:
        message = f"wall-clock timeout of {ctx.timeout:g} s reached{note}"
        return _result(ctx, -1, message, Termination.CPU_LIMIT)
    if ctx.stop is StopReason.SHUTDOWN:
        return _result(ctx, -1, f"cancelled: the executor shut down{note}", Termination.CANCELLED)
    return _result(ctx, -1, f"cancelled{note}", Termination.CANCELLED)


def _oom_evidence(outcome: Outcome, ctx: RunContext) -> str:
    """Why a failure looks like memory exhaustion, or ``""``."""
    if ctx.memory_cap <= 0:
        return ""
    used, cap = outcome.memory_bytes, ctx.memory_cap
    if used * 2 > cap:
        return f"its linear memory reached {format_size(used)} of its {format_size(cap)} cap"
    tail = ctx.stderr[-4096:].lower()
    for phrase in _ALLOCATION_FAILURES:
        if phrase in tail:
            return f"it reported an allocation failure under its {format_size(cap)} memory cap"
    return ""


def _memory_note(outcome: Outcome, ctx: RunContext) -> str:
    if ctx.memory_cap <= 0 or not outcome.memory_bytes:
        return ""
    return f" (linear memory {format_size(outcome.memory_bytes)} of {format_size(ctx.memory_cap)})"


def result_of(outcome: Outcome | None, ctx: RunContext) -> ExecutionResult:
    """The result of a run; ``outcome`` is ``None`` when the worker thread was abandoned."""
    if outcome is None or outcome.kind is OutcomeKind.NOT_STARTED:
        return _stopped(ctx)
    if outcome.kind is OutcomeKind.TRAPPED and outcome.trap == "INTERRUPT" and ctx.stop:
        return _stopped(ctx)
    if outcome.kind is OutcomeKind.TRAPPED and outcome.trap == "OUT_OF_FUEL":
        message = f"fuel budget of {ctx.fuel} instructions spent"
        return _result(ctx, -1, message, Termination.CPU_LIMIT)
    if outcome.kind is OutcomeKind.RETURNED:
        return _result(ctx, 0)
    if outcome.kind is OutcomeKind.START_FAILED:
        if ctx.memory_cap > 0 and "exceeds memory limits" in outcome.message:
            message = (
                f"out of memory: the module's initial linear memory is above its "
                f"{format_size(ctx.memory_cap)} cap ({outcome.message})"
            )
            return _result(ctx, -1, message, Termination.OOM_KILLED)
        message = f"cannot start the module: {outcome.message}"
        return _result(ctx, -1, message, Termination.ERROR)
    if outcome.kind is OutcomeKind.ERROR:
        return _result(ctx, -1, outcome.message, Termination.ERROR)
    # A program that exited by itself, or crashed (trapped).
    trapped = outcome.kind is OutcomeKind.TRAPPED
    code = TRAP_EXIT_CODE if trapped else outcome.exit_code
    if code == 0:
        return _result(ctx, 0)
    failure = outcome.message if trapped else f"exit code {code}"
    evidence = _oom_evidence(outcome, ctx)
    if evidence:
        message = f"out of memory (probably): {evidence} when it failed: {failure}"
        return _result(ctx, code, message, Termination.OOM_KILLED)
    return _result(ctx, code, f"{outcome.message}{_memory_note(outcome, ctx)}" if trapped else "")
