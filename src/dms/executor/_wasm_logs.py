"""An execution's stdout/stderr files: bounded tails for results, and ``logs`` (tail/follow).

The module writes straight into the files (WASI ``stdout_file``), so output survives the
execution, the DMS, and can be followed while it is written. Following polls the files (every
50 ms, or at once when the execution ends): no inotify dependency, and 20 idle followers cost
nothing measurable. Reads are small and bounded, so they run in the trio thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO, Literal

import trio

from dms.executor._types import LogChunk

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
CHUNK = 64 * 1024
POLL_S = 0.05


def read_tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of ``path`` as text (``""`` when it does not exist).

    Plain ``os`` calls: this runs twice at the end of every execution.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return ""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(limit, size), max(0, size - limit)) if size else b""
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def tail_offset(f: BinaryIO, lines: int) -> int:
    """Where the last ``lines`` lines of ``f`` start (a final unterminated line counts)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos = end
    wanted = lines + 1  # the newline that ends the line *before* the first one we keep
    last_byte_newline: bool | None = None
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        if last_byte_newline is None:
            last_byte_newline = block.endswith(b"\n")
            if not last_byte_newline:
                wanted -= 1  # the unterminated last line has no newline of its own
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            wanted -= 1
            if wanted == 0:
                return pos + index + 1
    return 0


async def follow_logs(
    paths: Mapping[Stream, Path],
    done: trio.Event,
    *,
    tail: int | None,
    follow: bool,
) -> AsyncIterator[LogChunk]:
    """Chunks of each stream: the last ``tail`` lines (all when ``None``), then, with
    ``follow``, new output until ``done`` is set and everything written before is read."""
    with contextlib.ExitStack() as stack:
        files: dict[Stream, BinaryIO] = {}
        for stream in STREAMS:
            with contextlib.suppress(FileNotFoundError):
                files[stream] = stack.enter_context(paths[stream].open("rb"))
        for stream, f in files.items():
            f.seek(0 if tail is None else tail_offset(f, tail))
            while data := f.read(CHUNK):
                yield LogChunk(stream, data)
                await trio.lowlevel.checkpoint()
        if not follow:
            return
        while True:
            ended = done.is_set()  # before reading: output written before the end is not lost
            for stream, f in files.items():
                while data := f.read(CHUNK):
                    yield LogChunk(stream, data)
                    await trio.lowlevel.checkpoint()
            if ended:
                return
            with trio.move_on_after(POLL_S):
                await done.wait()
