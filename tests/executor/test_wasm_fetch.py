"""URL modules: fetched from a local HTTP server into the work dir's cache, pinned by sha256
(a mismatch refuses to run anything), size-capped, and served from the cache once pinned."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from dms.executor import ExecutionStatus, ImageUnavailable
from dms.executor._wasm_source import check_public_host
from tests.executor import wasm_fixtures as wat
from tests.executor.wasm_fixtures.support import make_executor, wasm_request


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path.startswith("/moved/"):
                    self.send_response(302)
                    self.send_header("Location", "/" + self.path.removeprefix("/moved/"))
                    self.end_headers()
                    return
                if self.path == "/loop":
                    self.send_response(307)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.wasm").write_bytes(wasmtime.wat2wasm(wat.hello()))
    (root / "hello.wat").write_text(wat.hello(4))
    srv = _Server(root)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_url_module_pinned_by_sha256_runs_then_comes_from_the_cache(
    tmp_path: Path, server: _Server
) -> None:
    digest = _sha(tmp_path / "www" / "hello.wasm")
    async with make_executor(tmp_path, wasm_fetch_private_addresses=True).open() as ex:
        first = await ex.run(wasm_request(server.url("hello.wasm"), sha256=digest))
        assert (first.status, first.stdout) == (ExecutionStatus.SUCCESS, "hello\n")
        assert (ex.module_cache_dir / f"{digest}.wasm").is_file()
        again = await ex.run(wasm_request(server.url("hello.wasm"), "e2", sha256=digest))
        assert again.stdout == "hello\n"
        assert server.requests == ["/hello.wasm"]  # the second run did not fetch
        # Unpinned: fetched each time (the URL may serve something new); WAT works too.
        text = await ex.run(wasm_request(server.url("hello.wat"), "e3", args=["x"]))
        assert (text.exit_code, text.stdout) == (4, "hello\n")
        await ex.run(wasm_request(server.url("hello.wat"), "e4"))
        assert server.requests.count("/hello.wat") == 2


async def test_sha256_mismatch_refuses_and_runs_nothing(tmp_path: Path, server: _Server) -> None:
    async with make_executor(tmp_path, wasm_fetch_private_addresses=True).open() as ex:
        with pytest.raises(ImageUnavailable) as info:
            await ex.start(wasm_request(server.url("hello.wasm"), sha256="0" * 64))
        assert await ex.list_executions() == []
    message = str(info.value)
    assert f"has sha256 {_sha(tmp_path / 'www' / 'hello.wasm')}" in message
    assert f"the spec pins {'0' * 64}" in message and "\n" not in message
    assert not ex.executions_dir.exists()
    assert not list(ex.module_cache_dir.glob("*.wasm"))  # nothing unverified is cached


async def test_fetch_failures_are_clear(tmp_path: Path, server: _Server) -> None:
    async with make_executor(
        tmp_path, wasm_max_module_bytes=100, wasm_fetch_private_addresses=True
    ).open() as ex:
        with pytest.raises(ImageUnavailable, match="larger than the 100 byte limit"):
            await ex.start(wasm_request(server.url("hello.wat")))
        with pytest.raises(ImageUnavailable, match=r"cannot fetch wasm module .*: HTTP 404"):
            await ex.start(wasm_request(server.url("missing.wasm")))
        with pytest.raises(ImageUnavailable, match="more than 5 redirects"):
            await ex.start(wasm_request(server.url("loop")))
        port = server.httpd.server_address[1]
        server.httpd.shutdown()
        server.httpd.server_close()
        with pytest.raises(ImageUnavailable, match="cannot fetch wasm module"):
            await ex.start(wasm_request(f"http://127.0.0.1:{port}/hello.wasm"))
        assert await ex.list_executions() == []


async def test_redirects_are_followed(tmp_path: Path, server: _Server) -> None:
    async with make_executor(tmp_path, wasm_fetch_private_addresses=True).open() as ex:
        result = await ex.run(wasm_request(server.url("moved/hello.wasm")))
        assert result.stdout == "hello\n"
    assert server.requests == ["/moved/hello.wasm", "/hello.wasm"]


async def test_a_node_does_not_fetch_from_private_addresses_by_default(
    tmp_path: Path, server: _Server
) -> None:
    async with make_executor(tmp_path).open() as ex:
        with pytest.raises(ImageUnavailable, match=r"non-public address \(127\.0\.0\.1\)"):
            await ex.start(wasm_request(server.url("hello.wasm")))
        assert await ex.list_executions() == []
    assert server.requests == []  # refused before any connection


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/m.wasm",
        "http://10.1.2.3/m.wasm",
        "http://192.168.0.9:8080/m.wasm",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/m.wasm",
        "http://[fd00::1]/m.wasm",
        "http://0.0.0.0/m.wasm",
        "http://localhost/m.wasm",
    ],
)
async def test_non_public_hosts_are_refused(url: str) -> None:
    with pytest.raises(ImageUnavailable, match="non-public address"):
        await check_public_host(url)


async def test_public_addresses_pass_the_check() -> None:
    await check_public_host("https://8.8.8.8/m.wasm")
    await check_public_host("http://[2001:4860:4860::8888]:8080/m.wasm")
