"""The CLI's HTTP client for a running DMS's REST relay (``/api/v1/actor/*``).

The server relays envelopes; it never signs. Errors come back as ``{"error": ...}`` and become
one-line :class:`~dms.errors.DMSError` messages here, so the CLI prints them as they are.

It speaks HTTP/1.1 through the standard library's :mod:`http.client`: every CLI command makes
one or two requests, and importing an async-capable HTTP stack costs more than they do (httpx
~90 ms against ~15 ms; measured in ``bench/bench_cli_startup.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from dms.actor import Envelope, Handle, InvokeTimeout
from dms.errors import DMSError, NetworkError


class DMSUnreachable(NetworkError):
    """No DMS answers at the configured REST address."""


@dataclass(frozen=True)
class _Response:
    """A whole HTTP response: the client reads every body at once (replies are small)."""

    status: int
    reason: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class _Unanswered(Exception):
    """The connection closed before the first byte of a response."""


class RestClient:
    """Talks to one DMS over its REST API (``rest.addr:rest.port``).

    One connection serves every request of this object (the CLI makes two or more per
    command); it is reopened when the server closed it while idle. ``timeout`` (seconds) bounds
    the connection and each read or write, as it did with httpx. Over plain ``http://`` (the
    DMS's REST API listens on loopback by default) no TLS context is built: loading the CA
    bundle costs ~0.1 s; an ``https://`` URL is verified (certificate and host name) against
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, else certifi's bundle, as httpx did.

    ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` are honoured for a DMS on another
    host (an ``http://`` proxy); a loopback DMS is always reached directly, as the Go CLI does.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        try:
            url = urllib.parse.urlsplit(self.base_url)
            port = url.port
        except ValueError as exc:
            raise DMSError(f"invalid DMS URL {base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise DMSError(f"invalid DMS URL {base_url!r}: expected http(s)://host:port")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = port or (443 if self._https else 80)
        self._netloc = url.netloc
        self._prefix = url.path
        self._conn: http.client.HTTPConnection | None = None
        self._absolute = False  # through a plain HTTP proxy: request targets are absolute URIs

    def close(self) -> None:
        """Close the connection (the process exiting does it too)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- transport -------------------------------------------------------------------------

    def _proxy(self) -> tuple[str, int] | None:
        """The ``http://`` proxy the environment names for this DMS, if any."""
        if self._host.lower() in _LOOPBACK or self._host.startswith("127."):
            return None
        import urllib.request  # only for a DMS on another host

        proxies = urllib.request.getproxies()
        proxy = proxies.get("https" if self._https else "http") or proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(self._host):
            return None
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise NetworkError(f"unsupported proxy {proxy!r} for {self.base_url}: use http://")
        return parsed.hostname, parsed.port or 80

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        proxy = self._proxy()
        host, port = proxy if proxy else (self._host, self._port)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=_verifying_context()
            )
            if proxy:
                conn.set_tunnel(self._host, self._port)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._absolute = bool(proxy) and not self._https
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise InvokeTimeout(
                f"the DMS at {self.base_url} did not answer in {timeout:g}s"
            ) from None
        except OSError:  # refused, no route, name not resolved, TLS handshake refused
            conn.close()
            raise DMSUnreachable(
                f"cannot reach the DMS at {self.base_url}: is `nunet run` running?"
            ) from None
        return conn

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """The connection to use and whether it already carried a request."""
        conn = self._conn
        if conn is not None and (conn.sock is None or _closed_by_peer(conn.sock)):
            self.close()
            conn = None
        if conn is None:
            self._conn = self._connect(timeout)
            return self._conn, False
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _request(self, method: str, path: str, body: bytes | None, timeout: float) -> _Response:
        target = self._prefix + path
        headers = {"content-type": "application/json"} if body is not None else {}
        while True:
            conn, reused = self._connection(timeout)
            try:
                return self._exchange(conn, method, target, body, headers)
            except _Unanswered as closed:
                self.close()
                if reused:
                    # The server closed the idle connection as it was reused: the request was
                    # not read. Again on a new connection (Go's HTTP client does the same).
                    continue
                raise NetworkError(f"request to {self.base_url}{path} failed: {closed}") from None
            except TimeoutError:
                self.close()
                raise InvokeTimeout(
                    f"the DMS at {self.base_url} did not answer in {timeout:g}s"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise NetworkError(
                    f"request to {self.base_url}{path} failed: {str(exc) or type(exc).__name__}"
                ) from None

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> _Response:
        """One request and its whole response; :class:`_Unanswered` if the connection closed
        before the first byte of a response."""
        if self._absolute:
            target = f"http://{self._netloc}{target}"
        # If the server stops reading, it may have answered already (a 400 for a body too
        # large, then closed): read what it said, as httpx does.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(method, target, body=body, headers=headers)
        try:
            answer = conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            raise _Unanswered(str(exc) or type(exc).__name__) from None
        response = _Response(answer.status, answer.reason, answer.read())
        if answer.will_close:
            self.close()
        return response

    # -- replies ---------------------------------------------------------------------------

    @staticmethod
    def _error(response: _Response) -> str:
        try:
            data: Any = json.loads(response.content)
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                return str(data["error"])
        except ValueError:
            pass
        text = response.text.strip()
        return text.splitlines()[0] if text else response.reason

    def _checked(self, response: _Response, what: str) -> _Response:
        if response.status == 408:
            raise InvokeTimeout(f"{what}: no reply before the message expired")
        if response.status >= 400:
            raise DMSError(f"{what} failed ({response.status}): {self._error(response)}")
        return response

    def handle(self) -> Handle:
        """The DMS's root actor handle."""
        response = self._checked(
            self._request("GET", "/api/v1/actor/handle", None, self._timeout), "handle"
        )
        return Handle.from_json(response.content)

    def send(self, envelope: Envelope) -> None:
        """Relay a signed envelope (no reply expected)."""
        self._checked(
            self._request(
                "POST", "/api/v1/actor/send", envelope.to_json(), self._deadline(envelope)
            ),
            f"send {envelope.behavior}",
        )

    def invoke(self, envelope: Envelope) -> Envelope:
        """Relay an invocation and return the reply envelope."""
        response = self._checked(
            self._request(
                "POST", "/api/v1/actor/invoke", envelope.to_json(), self._deadline(envelope)
            ),
            f"invoke {envelope.behavior}",
        )
        return Envelope.from_json(response.content)

    def broadcast(self, envelope: Envelope) -> list[Envelope]:
        """Relay a broadcast and return every reply collected until it expired."""
        response = self._checked(
            self._request(
                "POST", "/api/v1/actor/broadcast", envelope.to_json(), self._deadline(envelope)
            ),
            f"broadcast {envelope.behavior}",
        )
        data = json.loads(response.content)
        return [] if data is None else [Envelope.from_value(item) for item in data]

    def _deadline(self, envelope: Envelope) -> float:
        """HTTP timeout: the message's remaining lifetime plus a margin for the relay."""
        return max(1.0, (envelope.options.expire - time.time_ns()) / 1e9 + 5.0)


def _closed_by_peer(sock: Any) -> bool:
    """An idle keep-alive connection that reads as ready was closed (or spoken on) by the
    server: it cannot carry another request."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _verifying_context() -> Any:
    """A TLS context that verifies the server, with httpx's choice of CA certificates."""
    import os
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with the dependencies
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())
