"""Every error the REST API returns is ``{"error": "<one line>"}``, never a traceback.

The Go DMS answers its CLI with gin's ``{"error": ...}`` bodies and the Python CLI prints that
line as is, so the shape is part of the contract. FastAPI's defaults (``{"detail": ...}``,
a plain-text 500 from Starlette's error middleware) are replaced here: expected failures raise
:class:`ApiError` with the status the spec gives, framework errors are reshaped, and anything
unexpected is logged with its traceback on the server and answered with a JSON 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dms.errors import DMSError, InvalidInput, NetworkError

log = logging.getLogger("dms.api")


def one_line(message: str) -> str:
    """Collapse whitespace so a message always prints as a single line."""
    return " ".join(message.split()) or "error"


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error body the Go DMS (gin) sends: ``{"error": message}``."""
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


class ApiError(Exception):
    """An expected failure of a request, answered with ``status`` and a one-line message."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(one_line(message))
        self.status = status
        self.message = one_line(message)
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """This error as the JSON response to send."""
        return error_response(self.status, self.message, self.headers)


def status_of(exc: DMSError) -> int:
    """HTTP status of a DMS error that escaped a route: bad input is the client's fault."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, NetworkError):
        return 500
    return 500


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _dms_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DMSError)
    return error_response(status_of(exc), str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: Any = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return error_response(400, f"invalid request: {where}: {first.get('msg', 'invalid')}")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` a JSON ``{"error": ...}``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DMSError, _dms_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Answer an unexpected exception with a JSON 500 and log it, instead of re-raising.

    Starlette's own error middleware re-raises after responding, which makes the server log
    "Error in ASGI Framework" and, with a debug flag, would send a traceback page; catching here
    (inside it) keeps both the response and the log in our hands. Exception groups from trio
    nurseries are caught too: they are ``Exception`` unless they only hold cancellations.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, "internal server error")(scope, receive, send)
