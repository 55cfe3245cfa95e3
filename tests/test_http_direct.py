"""The lean HTTP/1.1 client behind every direct (no proxy) request: framing, keep-alive, and failures classified.

A scripted server on 127.0.0.1 answers each request with raw bytes chosen by the test (chunked bodies, gzip, a
connection closed while idle, a body cut short, a hostile header flood): the client is exercised through
`HttpClient`, exactly as the engine and the hub source use it. No timing is asserted.
"""

from __future__ import annotations

import gzip
import os
import socket

import pytest

from hfget.errors import NetworkError, ProtocolError, TlsError
from hfget.net.http import HttpClient, RetryPolicy
from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import demo_repos

from support import MODEL, LoopbackServer, self_signed_cert, tls_context


class ScriptedServer(LoopbackServer):
    """Answers request number i (counted over all connections) with `script[i]` (bytes, or a callable that gets
    the connection), then keeps the connection open for the next request unless the answer says `close`."""

    def __init__(self, script: list) -> None:
        self.script = script
        self.requests: list[bytes] = []
        super().__init__()

    @property
    def connections(self) -> int:
        return self.accepted

    def handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(head)
                answer = self.script[min(len(self.requests), len(self.script)) - 1]
                if callable(answer):
                    if answer(conn) == "close":
                        return
                    continue
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*chunks: bytes) -> bytes:
    body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body


def get(client: HttpClient, url: str) -> bytes:
    response = client.request("GET", url, stream=True)
    return client.read_body(response, 1 << 20)


@pytest.fixture
def client():
    c = HttpClient(connect_timeout=2, read_timeout=5, retry=RetryPolicy(attempts=1))
    yield c
    c.close()


def test_bodies_framed_by_length_by_chunks_and_by_the_close_are_read_whole_and_kept_alive(client):
    server = ScriptedServer([ok(b"a" * 70000), chunked(b"hello ", b"x" * 40000, b"!"),
                             b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"])
    try:
        assert get(client, server.url + "/one") == b"a" * 70000
        assert get(client, server.url + "/two") == b"hello " + b"x" * 40000 + b"!"
        assert get(client, server.url + "/three") == b"until the end"
        assert server.connections == 1  # the first two left the connection for the next request
        assert server.requests[0].startswith(b"GET /one HTTP/1.1\r\nHost: 127.0.0.1:")
    finally:
        server.close()


def test_a_gzip_body_is_decoded_and_odd_paths_are_percent_encoded(client):
    server = ScriptedServer([ok(gzip.compress(b"{}" * 1000), "Content-Encoding: gzip")])
    try:
        assert get(client, server.url + "/a b/\u00e9.json?x=1") == b"{}" * 1000
        assert server.requests[0].split(b"\r\n")[0] == b"GET /a%20b/%C3%A9.json?x=1 HTTP/1.1"
    finally:
        server.close()


def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_a_failure(client):
    def answer_then_hang_up(conn: socket.socket) -> str:
        conn.sendall(ok(b"first"))
        return "close"  # the server closes the idle connection after answering

    server = ScriptedServer([answer_then_hang_up, ok(b"second")])
    try:
        assert get(client, server.url + "/1") == b"first"
        assert get(client, server.url + "/2") == b"second"
        assert server.connections == 2
    finally:
        server.close()


def test_a_body_cut_short_is_a_network_error_not_a_short_file(client):
    def short(conn: socket.socket) -> str:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"z" * 10)
        return "close"

    server = ScriptedServer([short])
    try:
        with pytest.raises(NetworkError):
            get(client, server.url + "/short")
    finally:
        server.close()


def test_a_flood_of_headers_is_refused(client):
    flood = "".join(f"X-{i}: {i}\r\n" for i in range(500))
    server = ScriptedServer([f"HTTP/1.1 200 OK\r\n{flood}Content-Length: 0\r\n\r\n".encode()])
    try:
        with pytest.raises((NetworkError, ProtocolError)):
            get(client, server.url + "/flood")
    finally:
        server.close()


def test_headers_are_case_insensitive_and_a_redirect_is_followed_on_the_same_connection(client):
    server = ScriptedServer([
        b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /there\r\nContent-Length: 5\r\n\r\nmoved",
        ok(b"here", "x-repo-commit: abc"),
    ])
    try:
        response = client.request("GET", server.url + "/here", stream=True)
        assert response.headers.get("X-Repo-Commit") == "abc" and "X-REPO-COMMIT" in response.headers
        assert client.read_body(response, 100) == b"here"
        assert server.connections == 1
        assert server.requests[1].startswith(b"GET /there ")
    finally:
        server.close()


def test_a_closed_port_is_a_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once this closes
    c = HttpClient(connect_timeout=2, read_timeout=2, retry=RetryPolicy(attempts=1))
    try:
        with pytest.raises(NetworkError) as caught:
            c.request("GET", f"http://127.0.0.1:{port}/x", stream=True)
        assert getattr(caught.value, "refused", False)
    finally:
        c.close()


def test_https_is_verified_against_the_bundle_given_and_refused_without_it(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with HubSimulator(demo_repos(large_mb=1), tls=tls_context(cert, key)) as hub:
        trusting = HttpClient(verify=str(cert), retry=RetryPolicy(attempts=1))
        untrusting = HttpClient(retry=RetryPolicy(attempts=1))
        try:
            ok_, data = trusting.json_body(trusting.request("GET", f"{hub.url}/api/models/{MODEL}",
                                                            stream=True))
            with pytest.raises(TlsError):
                untrusting.request("GET", f"{hub.url}/api/models/{MODEL}", stream=True)
        finally:
            trusting.close()
            untrusting.close()
    assert ok_ and isinstance(data, dict)


def test_connections_are_kept_alive_when_the_process_has_more_than_1024_descriptors_open(client, tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(tmp_path / "held", os.O_RDONLY | os.O_CREAT) for _ in range(1100)]  # sockets above 1024
    server = ScriptedServer([ok(b"one"), ok(b"two")])
    try:
        assert get(client, server.url + "/1") == b"one"
        assert get(client, server.url + "/2") == b"two"
        assert server.connections == 1
    finally:
        server.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
