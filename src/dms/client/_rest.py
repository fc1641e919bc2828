"""The CLI's HTTP client for a running DMS's REST relay (``/api/v1/actor/*``).

The server relays envelopes; it never signs. Errors come back as ``{"error": ...}`` and become
one-line :class:`~dms.errors.DMSError` messages here, so the CLI prints them as they are.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from dms.actor import Envelope, Handle, InvokeTimeout
from dms.errors import DMSError, NetworkError


class DMSUnreachable(NetworkError):
    """No DMS answers at the configured REST address."""


class RestClient:
    """Talks to one DMS over its REST API (``rest.addr:rest.port``).

    One HTTP client serves every request of this object (the CLI makes two or more per
    command). Over plain ``http://`` (the DMS's REST API listens on loopback by default) no
    TLS context is built: loading the CA bundle for one costs ~0.1 s per client, more than
    the request itself; an ``https://`` URL keeps httpx's verification.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            plain = self.base_url.startswith("http://")
            self._client = httpx.Client(base_url=self.base_url, verify=not plain)
        return self._client

    def close(self) -> None:
        """Close the connection pool (the process exiting does it too)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(
        self, method: str, path: str, body: bytes | None, timeout: float
    ) -> httpx.Response:
        try:
            return self._http().request(
                method,
                path,
                content=body,
                headers={"content-type": "application/json"} if body is not None else None,
                timeout=timeout,
            )
        except httpx.ConnectError:
            raise DMSUnreachable(
                f"cannot reach the DMS at {self.base_url}: is `nunet run` running?"
            ) from None
        except httpx.TimeoutException:
            raise InvokeTimeout(
                f"the DMS at {self.base_url} did not answer in {timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"request to {self.base_url}{path} failed: {exc}") from None

    @staticmethod
    def _error(response: httpx.Response) -> str:
        try:
            data: Any = response.json()
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                return str(data["error"])
        except ValueError:
            pass
        return (
            response.text.strip().splitlines()[0]
            if response.text.strip()
            else response.reason_phrase
        )

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code == 408:
            raise InvokeTimeout(f"{what}: no reply before the message expired")
        if response.status_code >= 400:
            raise DMSError(f"{what} failed ({response.status_code}): {self._error(response)}")
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
