"""The Docker SDK behind trio: blocking calls in bounded worker threads, each with a deadline.

Why a class of its own: the SDK blocks, and a DMS may watch hundreds of containers. So

* every request/response call (:meth:`Engine.call`) runs in a worker thread under the
  executor's own :class:`trio.CapacityLimiter` (trio's default pool of 40 stays free for
  everybody else) and under a trio deadline; on expiry the thread is abandoned (its socket
  timeout ends it later) and the caller gets a one-line :class:`EngineError`, so a hung engine
  cannot hang the DMS;
* long-lived streams (the engine's event stream, ``logs --follow``) each hold one thread from a
  second limiter for as long as they run and hand items to trio through a memory channel
  (:meth:`Engine.stream`); closing the stream shuts its socket down, which wakes the thread, so
  leaving a stream early never leaves a thread blocked forever.

Nothing waits on ``container.wait()``: completion comes from the event stream (see
:mod:`dms.executor._docker_watch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import requests
import trio
from docker.types import CancellableStream
from docker.utils import parse_repository_tag

from dms.executor._errors import ExecutorError, ExecutorUnavailable
from dms.resources import format_size

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_URL = "unix:///var/run/docker.sock"
_FRAME_HEADER = struct.Struct(">BxxxL")


def engine_url() -> str:
    """The engine address the SDK will use (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_URL


def one_line(exc: BaseException) -> str:
    """A short reason for an SDK/requests failure.

    Their messages nest tuples of exceptions (``('Connection aborted.', FileNotFoundError(2,
    'No such file or directory'))``); the innermost OS error is what a user can act on.
    """
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(e for e in (current.__context__, current.__cause__) if e is not None)
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        explanation = exc.explanation
        text = (
            explanation.decode(errors="replace")
            if isinstance(explanation, bytes)
            else str(explanation)
        )
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


async def in_thread(fn: Callable[[], T], limiter: trio.CapacityLimiter) -> T:
    """``fn()`` in a worker thread that is abandoned (left to finish alone) on cancellation."""
    # trio-typing's stubs predate ``abandon_on_cancel`` (trio >= 0.23 renamed ``cancellable``).
    result: T = await trio.to_thread.run_sync(  # type: ignore[call-arg]
        fn, limiter=limiter, abandon_on_cancel=True
    )
    return result


class EngineError(ExecutorError):
    """A Docker engine call failed; ``status`` is the HTTP status when the engine answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def connect(timeout: float, pool: int = 10) -> docker.DockerClient:
    """A client for the engine at :func:`engine_url` (blocking: asks the engine its version).

    ``pool`` connections are kept: one per concurrent call plus one per open stream, else
    urllib3 opens and drops extra connections (with a warning each time).
    """
    try:
        return docker.from_env(timeout=max(1, round(timeout)), max_pool_size=pool)
    except Exception as exc:  # DockerException, requests errors, OSError
        raise ExecutorUnavailable(f"docker: no engine at {engine_url()}: {one_line(exc)}") from exc


class Engine:
    """One engine connection shared by an executor; see the module docstring."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        timeout: float,
        max_calls: int = 8,
        max_streams: int = 64,
    ) -> None:
        self.client = client
        self.api = client.api
        self.timeout = timeout
        self._calls = trio.CapacityLimiter(max_calls)
        self._streams = trio.CapacityLimiter(max_streams)
        self._open: set[CancellableStream[Any]] = set()

    @classmethod
    async def open(cls, *, timeout: float, max_calls: int = 8, max_streams: int = 64) -> Engine:
        limiter = trio.CapacityLimiter(1)
        with trio.move_on_after(timeout + 1):
            client = await in_thread(lambda: connect(timeout, max_calls + 16), limiter)
            return cls(client, timeout=timeout, max_calls=max_calls, max_streams=max_streams)
        raise ExecutorUnavailable(
            f"docker: no engine at {engine_url()}: no answer within {timeout:g} s"
        )

    async def call(self, what: str, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """``fn()`` in a worker thread; engine failures become :class:`EngineError`.

        ``docker.errors.NotFound`` passes through untouched: callers decide what a missing
        container or image means.
        """
        limit = self.timeout if timeout is None else timeout
        with trio.move_on_after(limit):
            try:
                return await in_thread(fn, self._calls)
            except docker.errors.NotFound:
                raise
            except docker.errors.APIError as exc:
                raise EngineError(f"docker: {what}: {one_line(exc)}", exc.status_code) from exc
            except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
                raise EngineError(f"docker: {what}: {one_line(exc)}") from exc
        raise EngineError(f"docker: {what}: no answer from the engine within {limit:g} s")

    async def containers(
        self,
        label: str,
        what: str = "list containers",
        *,
        stopped_too: bool = True,
        size: bool = False,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """The containers carrying ``label`` (``key=value``), narrowed by extra ``filters``.

        One engine call for all of them: the executor, its sweep and its disk watchdog never
        inspect containers one by one to find out which are theirs.
        """
        query = {"label": label, **filters}
        rows: list[dict[str, Any]] = await self.call(
            what, lambda: self.api.containers(all=stopped_too, filters=query, size=size)
        )
        return rows

    async def kill(self, container_id: str, signal: str) -> bool:
        """Send ``signal``; False when the container was not running any more."""
        try:
            await self.call("kill container", lambda: self.api.kill(container_id, signal=signal))
        except docker.errors.NotFound:
            return False
        except EngineError as exc:
            if exc.status == 409:  # not running
                return False
            raise
        return True

    @asynccontextmanager
    async def stream(
        self,
        nursery: trio.Nursery,
        what: str,
        opener: Callable[[], CancellableStream[T]],
        *,
        buffer: float = 16,
        limiter: trio.CapacityLimiter | None = None,
    ) -> AsyncIterator[trio.MemoryReceiveChannel[T]]:
        """Open a streaming call and receive its items in trio until it ends or the block exits.

        The pumping thread runs in a task of ``nursery`` (the executor's), not of the caller,
        so this can be used from an async generator. It takes a token of the shared stream
        limiter unless given its own ``limiter`` (the event stream: it must never wait behind
        log followers).
        """
        handle = await self.call(what, opener)
        send, recv = trio.open_memory_channel[T](buffer)
        self._open.add(handle)
        nursery.start_soon(self._pump, what, handle, send, limiter or self._streams)
        try:
            yield recv
        finally:
            self._open.discard(handle)
            recv.close()
            _close_quietly(handle)

    async def _pump(
        self,
        what: str,
        handle: CancellableStream[T],
        send: trio.MemorySendChannel[T],
        limiter: trio.CapacityLimiter,
    ) -> None:
        def run() -> None:
            try:
                for item in handle:
                    trio.from_thread.run(send.send, item)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError):
                pass  # the reader went away
            except trio.Cancelled:
                pass
            except Exception as exc:
                log.debug("docker: %s: stream ended: %s", what, one_line(exc))
            finally:
                _close_quietly(handle)

        async with send:
            await in_thread(run, limiter)

    def close_streams(self) -> None:
        """Wake and end every stream thread (teardown)."""
        for handle in list(self._open):
            _close_quietly(handle)
        self._open.clear()

    def close(self) -> None:
        self.close_streams()
        with contextlib.suppress(Exception):
            self.client.close()


def _close_quietly(handle: CancellableStream[Any]) -> None:
    with contextlib.suppress(Exception):
        handle.close()


# -- logs ------------------------------------------------------------------------------------------


def open_logs(
    api: docker.APIClient,
    container_id: str,
    *,
    tail: int | None,
    follow: bool,
    timeout: float,
) -> CancellableStream[tuple[str, bytes]]:
    """The container's log as ``(stream, data)`` frames, stdout and stderr kept apart.

    The SDK's ``logs()`` merges the two streams; the engine's multiplexed format (non-TTY
    containers) says which is which, so we read the frames ourselves. A followed stream has no
    socket timeout (a quiet container is not an error); it is ended by the engine when the
    container stops, or by ``close()``.
    """
    params: dict[str, str | int] = {
        "stdout": 1,
        "stderr": 1,
        "follow": int(follow),
        "timestamps": 0,
        "tail": "all" if tail is None else str(max(tail, 0)),
    }
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/logs"
    response = api.get(url, params=params, stream=True, timeout=None if follow else timeout)
    try:
        response.raise_for_status()
    except requests.HTTPError as exc:
        response.close()
        docker.errors.create_api_error_from_http_exception(exc)
    return CancellableStream(_frames(response), response)


def _read_exactly(raw: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = raw.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


def _frames(response: requests.Response) -> Iterator[tuple[str, bytes]]:
    raw = response.raw
    while True:
        header = _read_exactly(raw, _FRAME_HEADER.size)
        if len(header) < _FRAME_HEADER.size:
            return
        kind, length = _FRAME_HEADER.unpack(header)
        if not length:
            continue
        data = _read_exactly(raw, length)
        if not data:
            return
        yield ("stderr" if kind == 2 else "stdout"), data


def read_logs(
    api: docker.APIClient, container_id: str, *, tail: int, limit: int, timeout: float
) -> tuple[bytes, bytes]:
    """The last ``limit`` bytes of each stream within the last ``tail`` lines (blocking)."""
    frames = open_logs(api, container_id, tail=tail, follow=False, timeout=timeout)
    out = {"stdout": bytearray(), "stderr": bytearray()}
    try:
        for stream, data in frames:
            buf = out[stream]
            buf += data
            if len(buf) > 2 * limit:
                del buf[:-limit]
    finally:
        frames.close()
    return bytes(out["stdout"][-limit:]), bytes(out["stderr"][-limit:])


# -- images ----------------------------------------------------------------------------------------


def pull_image(api: docker.APIClient, image: str, *, deadline: float, every: float = 2.0) -> None:
    """Pull ``image`` (blocking), logging per-layer progress at most every ``every`` seconds.

    Raises ``DockerException`` with the engine's reason on failure or when ``deadline``
    (``time.monotonic()``) passes between progress messages.
    """
    repo, tag = parse_repository_tag(image)
    totals: dict[str, int] = {}
    current: dict[str, int] = {}
    done: set[str] = set()
    last = 0.0
    for event in api.pull(repo, tag=tag or "latest", stream=True, decode=True):
        if "error" in event:
            raise docker.errors.DockerException(str(event["error"]))
        layer = str(event.get("id") or "")
        status = str(event.get("status") or "")
        detail = event.get("progressDetail") or {}
        if layer and detail.get("total"):
            totals[layer] = int(detail["total"])
            current[layer] = int(detail.get("current") or 0)
        if layer and status in ("Pull complete", "Already exists", "Download complete"):
            done.add(layer)
            if layer in totals:
                current[layer] = totals[layer]
        now = time.monotonic()
        if now > deadline:
            raise docker.errors.DockerException("timed out")
        if now - last >= every:
            last = now
            total = sum(totals.values())
            percent = ""
            if total:
                percent = f", {100 * sum(current.values()) // total}% of {format_size(total)}"
            log.info("docker: pulling %s: %d layer(s) done%s", image, len(done), percent)
    log.info("docker: pulled %s", image)
