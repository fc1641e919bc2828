"""``RestClient`` over real sockets: replies, one-line errors, timeouts, reconnects and TLS.

Each test runs a real HTTP server (the standard library's, in a thread) or a bare listening
socket, so what is checked is what the CLI sees from a DMS that answers, refuses, hangs or goes
away. The relay itself (a running DMS) is covered by the CLI and integration tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import dms.client._rest as rest_module
from dms.actor import Handle, InvokeTimeout
from dms.client import DMSUnreachable, RestClient, build_message, parse_destination
from dms.crypto import Ed25519PrivateKey
from dms.did import KeyProvider, did_from_public_key
from dms.errors import DMSError, NetworkError
from dms.ucan import CapabilityContext

HANDLE = parse_destination(did_from_public_key(Ed25519PrivateKey.generate().public_key).uri)


class Handler(BaseHTTPRequestHandler):
    """Answers from ``server.routes``: path -> (status, body, close the connection after)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the DMS's server does
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        if length > self.server.max_body:  # answer at once and hang up, the body unread
            self.server.routes[self.path] = (400, b'{"error": "message too large"}', True)
        else:
            self.server.bodies.append((self.headers.get("content-type"), self.rfile.read(length)))
        self.answer()

    def answer(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.close_connection = True  # go away without a word
            return
        status, body, close = route
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if close:
            self.close_connection = True

    def finish(self) -> None:
        super().finish()
        self.server.closed.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, tuple[int, bytes, bool]] = {}
        self.bodies: list[tuple[str | None, bytes]] = []
        self.connections = 0
        self.max_body = 1 << 20
        self.closed = threading.Event()
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serving(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(tls)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serving()


def test_requests_share_one_connection(server: Server) -> None:
    server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), False)
    client = RestClient(f"http://127.0.0.1:{server.port}/")
    assert client.base_url == f"http://127.0.0.1:{server.port}"
    assert client.handle() == HANDLE
    assert client.handle() == HANDLE
    assert server.connections == 1
    client.close()


def test_a_connection_the_server_closed_is_reopened(server: Server) -> None:
    server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), True)
    client = RestClient(f"http://127.0.0.1:{server.port}")
    assert client.handle() == HANDLE
    assert server.closed.wait(10)
    assert client.handle() == HANDLE
    assert server.connections == 2


def test_a_connection_closed_as_it_is_reused_is_reopened(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server closes an idle connection just as the client reuses it (here: the client
    does not notice the close beforehand): the request goes again on a new connection."""
    server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), True)
    client = RestClient(f"http://127.0.0.1:{server.port}")
    assert client.handle() == HANDLE
    assert server.closed.wait(10)
    monkeypatch.setattr(rest_module, "_closed_by_peer", lambda sock: False)
    assert client.handle() == HANDLE
    assert server.connections == 2


def test_an_answer_before_the_whole_body_is_read(server: Server) -> None:
    """A DMS refusing a message too large answers before reading it, then hangs up; the
    client reports that answer, not the broken pipe."""
    client = RestClient(f"http://127.0.0.1:{server.port}")
    envelope = build_message(
        CapabilityContext(KeyProvider(Ed25519PrivateKey.generate())),
        HANDLE,
        "/public/hello",
        "x" * (8 << 20),
    ).envelope
    with pytest.raises(DMSError, match=r"^send /public/hello failed \(400\): message too large$"):
        client.send(envelope)


def test_error_replies_become_one_line(server: Server) -> None:
    client = RestClient(f"http://127.0.0.1:{server.port}")
    path = "/api/v1/actor/handle"
    server.routes[path] = (500, json.dumps({"error": "boom"}).encode(), False)
    with pytest.raises(DMSError, match=r"^handle failed \(500\): boom$"):
        client.handle()
    server.routes[path] = (502, b"bad gateway\nsecond line", False)
    with pytest.raises(DMSError, match=r"^handle failed \(502\): bad gateway$"):
        client.handle()
    server.routes[path] = (404, b"", False)
    with pytest.raises(DMSError, match=r"^handle failed \(404\): Not Found$"):
        client.handle()
    server.routes[path] = (408, b"{}", False)
    with pytest.raises(InvokeTimeout, match=r"^handle: no reply before the message expired$"):
        client.handle()


def test_envelopes_are_posted_as_json(server: Server) -> None:
    server.routes["/api/v1/actor/send"] = (200, b"{}", False)
    server.routes["/api/v1/actor/broadcast"] = (200, b"null", False)
    client = RestClient(f"http://127.0.0.1:{server.port}")
    context = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()))
    message = build_message(context, HANDLE, "/public/status", None)
    client.send(message.envelope)
    assert server.bodies == [("application/json", message.envelope.to_json())]
    topic = build_message(context, HANDLE, "/public/hello", None, topic="/nunet")
    assert client.broadcast(topic.envelope) == []


def test_no_dms_listening_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RestClient(f"http://127.0.0.1:{port}")
    with pytest.raises(DMSUnreachable) as caught:
        client.handle()
    assert str(caught.value) == (
        f"cannot reach the DMS at http://127.0.0.1:{port}: is `nunet run` running?"
    )


def test_a_dms_that_does_not_answer_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        client = RestClient(f"http://127.0.0.1:{port}", timeout=0.3)
        with pytest.raises(InvokeTimeout) as caught:
            client.handle()
    assert str(caught.value) == f"the DMS at http://127.0.0.1:{port} did not answer in 0.3s"


def test_a_dms_that_hangs_up_is_a_network_error(server: Server) -> None:
    client = RestClient(f"http://127.0.0.1:{server.port}")
    with pytest.raises(NetworkError, match=r"^request to .*/api/v1/actor/handle failed: ") as e:
        client.handle()  # no route: the server closes without a reply
    assert not isinstance(e.value, DMSUnreachable)
    assert "\n" not in str(e.value)


def test_a_proxy_is_used_for_a_remote_dms_only(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    remote = "http://dms.invalid:9999"  # resolvable by the proxy only
    server.routes[f"{remote}/api/v1/actor/handle"] = (200, HANDLE.to_json(), False)
    assert RestClient(remote).handle() == HANDLE  # the proxy got the absolute URI
    server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing there
    assert RestClient(f"http://127.0.0.1:{server.port}").handle() == HANDLE  # loopback: direct
    monkeypatch.setenv("NO_PROXY", "dms.invalid")
    with pytest.raises(DMSUnreachable):  # direct, and the name does not resolve
        RestClient(remote).handle()


# -- https ---------------------------------------------------------------------------------------


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and 127.0.0.1), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert, key = certificate(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for server in serving(context):
        server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), False)
        yield server, cert


def test_https_is_verified(
    tls_server: tuple[Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    url = f"https://localhost:{server.port}"
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(DMSUnreachable):  # a self-signed certificate is not trusted
        RestClient(url).handle()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted, as httpx would take it
    assert RestClient(url).handle() == HANDLE
    other, _ = certificate(tmp_path, "other.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))  # trusted CA, but not this server's
    with pytest.raises(DMSUnreachable):
        RestClient(url).handle()


def test_plain_http_builds_no_tls_context(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/api/v1/actor/handle"] = (200, HANDLE.to_json(), False)

    def refuse(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise AssertionError("a TLS context was built for http://")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    assert RestClient(f"http://127.0.0.1:{server.port}").handle() == HANDLE


def test_handles_compare_by_value() -> None:  # what the assertions above rely on
    assert Handle.from_json(HANDLE.to_json()) == HANDLE
