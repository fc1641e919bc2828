"""Running one allocation's health check now (Go's ``types.NewHealthCheck`` and the allocation's
``RegisterHealthcheck`` closure), bounded in time, with a one-line reason when unhealthy.

Semantics, matched to the Go DMS where that makes sense:

* ``command``: run ``exec`` inside the execution (:meth:`Executor.exec`). Healthy iff the exit
  code is 0 and, when a ``response.value`` is given, the output (stdout and stderr, as Go reads
  them) contains it. Executors that cannot run commands (null, WASM) make the check unhealthy
  with their ``Unsupported`` message.
* ``http``: a GET against the allocation's *published* port on 127.0.0.1, never another host
  (fail closed: a health check must not become a way to make the provider fetch arbitrary URLs).
  The endpoint is a URL (``http://localhost:8080/health``, Go's form) or a bare path
  (``/health``, allowed when the allocation publishes exactly one port). Its port names the
  allocation's *private* port (what the ensemble author knows), mapped to the public one the
  provider leased; a public port of the allocation is accepted as is. Go compares the body with
  ``response.value`` exactly and ignores the status; ours: with a value, the body (trailing
  whitespace ignored) must equal it; without one, the status must be 2xx (Go would demand an
  empty body, which no real endpoint answers).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from dms.errors import DMSError
from dms.executor import Executor
from dms.jobs._model import HealthCheck

#: How long one check may take before it counts as unhealthy (seconds).
HEALTH_TIMEOUT = 10.0
#: The most of an HTTP body or command output a check reads / quotes.
_READ_CAP = 64 * 1024
_QUOTE_CAP = 200


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one check: ``message`` says why not (one line) when unhealthy."""

    healthy: bool
    message: str
    checked_ns: int
    check_type: str


def check_problem(check: HealthCheck) -> str | None:
    """Why ``check`` cannot be registered (one line), or None."""
    if check.type == "command":
        return None if check.exec else "a command health check needs 'exec'"
    if check.type == "http":
        return None if check.endpoint else "an http health check needs 'endpoint'"
    return f"unknown health check type {check.type!r} (known: command, http)"


def _one_line(text: str, cap: int = _QUOTE_CAP) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= cap else flat[: cap - 3] + "..."


def http_target(endpoint: str, ports: Mapping[int, int]) -> str:
    """The loopback URL a health check's ``endpoint`` becomes; raises with a one-line reason.

    ``ports`` maps the allocation's public ports to its private ones.
    """
    if "://" not in endpoint:
        if len(ports) != 1:
            raise DMSError(
                f"health check endpoint {endpoint!r} names no port and the allocation "
                f"publishes {len(ports)} ports"
            )
        (only,) = ports
        path = endpoint if endpoint.startswith("/") else "/" + endpoint
        return f"http://127.0.0.1:{only}{path}"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise DMSError(f"health check endpoint {endpoint!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise DMSError(f"health check endpoint {endpoint!r}: only http and https are supported")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    public: int | None = next((pub for pub, priv in sorted(ports.items()) if priv == port), None)
    if public is None and port in ports:
        public = port
    if public is None:
        raise DMSError(f"health check endpoint port {port} is not published by the allocation")
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://127.0.0.1:{public}{path}{query}"


async def _command(check: HealthCheck, executor: Executor, execution_id: str) -> str | None:
    result = await executor.exec(execution_id, check.exec)
    if result.exit_code != 0:
        detail = _one_line(result.output)
        return f"health check command exited with code {result.exit_code}" + (
            f": {detail}" if detail else ""
        )
    if check.response_value and check.response_value not in result.output:
        return f"unexpected health check command output: {_one_line(result.output)!r}"
    return None


async def _http(check: HealthCheck, ports: Mapping[int, int]) -> str | None:
    import httpx  # loaded on the first HTTP check only

    url = http_target(check.endpoint, ports)
    try:
        async with (
            httpx.AsyncClient(trust_env=False, follow_redirects=False, verify=False) as client,
            client.stream("GET", url) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _READ_CAP:
                    break
            status = response.status_code
    except httpx.HTTPError as exc:
        return f"health check request to {url} failed: {_one_line(str(exc)) or type(exc).__name__}"
    text = bytes(body).decode(errors="replace")
    if check.response_value:
        if text.rstrip() != check.response_value.rstrip():
            return f"unexpected health check response (HTTP {status}): {_one_line(text)!r}"
        return None
    if not 200 <= status < 300:
        return f"health check request to {url} answered HTTP {status}"
    return None


async def run_health_check(
    check: HealthCheck,
    executor: Executor,
    execution_id: str,
    ports: Mapping[int, int],
    *,
    timeout: float = HEALTH_TIMEOUT,
) -> HealthResult:
    """Run ``check`` against the running ``execution_id`` now; never raises a DMS error."""
    problem: str | None = None
    with trio.move_on_after(timeout) as scope:
        try:
            if check.type == "command":
                problem = await _command(check, executor, execution_id)
            elif check.type == "http":
                problem = await _http(check, ports)
            else:
                problem = check_problem(check) or f"unknown health check type {check.type!r}"
        except DMSError as exc:
            problem = str(exc)
    if scope.cancelled_caught:
        problem = f"health check did not finish within {timeout:g} s"
    return HealthResult(problem is None, problem or "", time.time_ns(), check.type)
