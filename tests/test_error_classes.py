"""Error classification, as a table: exception type x status x proxy / no proxy -> hfget error class, message, fix.

The rows above the line are real failures: each is produced by a real loopback server (a closed port, a name under
`.invalid`, a server that hangs, resets or cuts a body short, TLS servers, a real pproxy with and without
credentials, a proxy that answers CONNECT with an error status) and goes through hfget's own HTTP client, so the
exceptions are exactly what requests, urllib3 and PySocks raise. The rows below are traps: exceptions whose *text*
says "407", "refused" or "Name or service not known" while their *types* say otherwise; classification reads types
and statuses only, so the text changes nothing.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest

from hfget.errors import ConnectError, DnsError, NetworkTimeout, ProxyError, TlsError
from hfget.net.http import HttpClient, RetryPolicy
from hfget.net.net_errors import classify_exception
from hfget.net.proxy import ProxyConfig, parse

from support import MODEL, closed_port, pproxy, self_signed_cert, tcp_server, tls_context


def _hang(conn, stop):
    conn.recv(65536)
    stop.wait(5)


def _close_at_once(conn, stop):
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST, not FIN


def _short_body(conn, stop):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)


def _ok(conn, stop):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def _connect_answer(status: bytes):
    def reply(conn, stop):
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
    return reply


def _fetch(url: str, proxy_url: str | None = None, body: bool = False):
    """One request through hfget's client (one attempt, short timeouts); the hfget error it raised."""
    proxy = parse(proxy_url, "HFGET_PROXY", "flag") if proxy_url else None
    client = HttpClient(proxy=ProxyConfig(http=proxy, https=proxy) if proxy else None, connect_timeout=3,
                        read_timeout=1, retry=RetryPolicy(attempts=1))
    try:
        response = client.request("GET", url, stream=body, retry=False)
        if body:
            for _ in client.iter_body(response):
                pass
    except Exception as error:  # noqa: BLE001 - the error is what the row checks
        return error
    finally:
        client.close()
    raise AssertionError(f"{url} did not fail")


@contextmanager
def scenario(name: str, tmp_path):
    """(url, proxy URL or None, expected port to appear in the fix) for a real failure called `name`."""
    if name == "dns":
        yield "http://hub.invalid/api/x", None
    elif name == "refused":
        yield f"http://127.0.0.1:{closed_port()}/api/x", None
    elif name == "read timeout":
        with tcp_server(_hang) as port:
            yield f"http://127.0.0.1:{port}/api/x", None
    elif name == "reset":
        with tcp_server(_close_at_once) as port:
            yield f"http://127.0.0.1:{port}/api/x", None
    elif name == "short body":
        with tcp_server(_short_body) as port:
            yield f"http://127.0.0.1:{port}/file", None
    elif name in ("tls to plain http", "tls certificate"):
        cert, key = self_signed_cert(tmp_path)
        context = tls_context(cert, key) if name == "tls certificate" else None
        with tcp_server(_ok, tls=context) as port:
            yield f"https://127.0.0.1:{port}/api/x", None
    elif name.startswith("proxy refused"):
        yield "http://hub.invalid/api/x", f"{name.split()[-1]}://127.0.0.1:{closed_port()}"
    elif name == "proxy 407":
        with tcp_server(_ok) as target, pproxy(target, tmp_path / "p.log", auth="alice:right") as port:
            yield "https://hub.invalid/api/x", f"http://127.0.0.1:{port}"
    elif name == "socks wrong password":
        with tcp_server(_ok) as target, pproxy(target, tmp_path / "p.log", auth="alice:right") as port:
            yield "http://hub.invalid/api/x", f"socks5h://alice:wrong@127.0.0.1:{port}"
    elif name == "https proxy speaking http":
        with tcp_server(_ok) as target, pproxy(target, tmp_path / "p.log", protocols="http") as port:
            yield "https://hub.invalid/api/x", f"https://127.0.0.1:{port}"
    elif name.startswith("proxy CONNECT"):
        with tcp_server(_connect_answer(name.split(maxsplit=2)[2].encode())) as port:
            yield "https://hub.invalid/api/x", f"http://127.0.0.1:{port}"
    elif name == "socks5 local dns":
        with tcp_server(_ok) as target, pproxy(target, tmp_path / "p.log", protocols="socks5") as port:
            yield "http://hub.invalid/api/x", f"socks5://127.0.0.1:{port}"
    else:
        raise KeyError(name)


# scenario (the exception it raises) | proxy? | class | message | fix
REAL = [
    ("dns", DnsError, "The host name of hub.invalid does not resolve here", "use a mirror"),
    ("refused", ConnectError, "was refused: nothing is listening there", "Check the endpoint URL and port"),
    ("read timeout", NetworkTimeout, "stopped answering (read timed out)", "Run the same command again"),
    ("reset", ConnectError, "was reset by the other side", "Run the same command again"),
    ("short body", ConnectError, "closed the connection before the end of the body", "Run the same command again"),
    ("tls to plain http", TlsError, "The TLS handshake with 127.0.0.1:", "does not speak HTTPS here"),
    ("tls certificate", TlsError, "The TLS certificate of 127.0.0.1:", "REQUESTS_CA_BUNDLE"),
    ("proxy refused http", ProxyError, "cannot be reached: connection refused", "Start the proxy"),
    ("proxy refused socks5h", ProxyError, "cannot be reached: connection refused", "Start the proxy"),
    ("proxy 407", ProxyError, "requires authentication (HTTP 407), and the proxy URL has none", "USER:PASSWORD@"),
    ("socks wrong password", ProxyError, "requires authentication, and the user and password in the proxy URL were "
     "rejected", "USER:PASSWORD@"),
    ("https proxy speaking http", ProxyError, "does not speak TLS: the TLS handshake with it failed. This proxy "
     "speaks plain HTTP.", "Use http://127.0.0.1:"),
    ("proxy CONNECT 502 Bad Gateway", ProxyError, "refused to open a connection to hub.invalid (HTTP 502)",
     "The proxy cannot reach that host"),
    ("proxy CONNECT 403 Forbidden", ProxyError, "refused to open a connection to hub.invalid (HTTP 403)",
     "The proxy cannot reach that host"),
    ("socks5 local dns", DnsError, "The host name of hub.invalid does not resolve here", "write the proxy as socks5h://"),
]


@pytest.mark.parametrize(("name", "cls", "message", "fix"), REAL, ids=[row[0] for row in REAL])
def test_real_failures_are_classified_by_type_and_status(tmp_path, name, cls, message, fix):
    with scenario(name, tmp_path) as (url, proxy_url):
        error = _fetch(url, proxy_url, body=name == "short body")
    assert type(error) is cls, (type(error), getattr(error, "message", error))
    assert message in error.message, error.message
    assert fix in error.hint, error.hint
    if proxy_url and "@" in proxy_url:
        assert "wrong" not in error.message + error.hint  # the password, even a wrong one, is masked
    if cls is not ProxyError and proxy_url:
        assert error.message.endswith(f"(through the proxy {proxy_url}).")


def test_the_fix_for_an_https_proxy_speaking_http_works(sim, cli, cache, tmp_path):
    """"Use http://HOST:PORT" is the fix: with it, the same download goes through."""
    sim.cdn_base = "http://cdn.invalid"
    with pproxy(sim.port, tmp_path / "p.log", protocols="http") as port:
        bad = cli("download", MODEL, "config.json", "--endpoint", "http://hub.invalid",
                  "--cache-dir", cache, "--proxy", f"https://127.0.0.1:{port}")
        assert bad.exit_code == 1 and f"Fix: Use http://127.0.0.1:{port}: https:// in front of a proxy" in bad.stderr
        good = cli("download", MODEL, "config.json", "--endpoint", "http://hub.invalid",
                   "--cache-dir", cache, "--proxy", f"http://127.0.0.1:{port}")
    assert good.exit_code == 0, good.output


# --- traps: the text lies, the types do not ------------------------------------------------------------------


def _trap(kind: str) -> BaseException:
    import requests
    import urllib3.exceptions as u3

    signed = "https://cdn.invalid/blob?Expires=1714077407&Signature=refused407"
    if kind == "reset with 407 in its text":
        inner = ConnectionResetError(104, f"Connection reset by peer while reading {signed} (407 Proxy Authentication "
                                          "Required)")
        return requests.exceptions.ConnectionError(u3.ProtocolError("Connection aborted.", inner))
    if kind == "read timeout with 'refused' in its text":
        return requests.exceptions.ReadTimeout(u3.ReadTimeoutError(None, signed, "Read timed out: connection refused"))
    if kind == "unknown error naming DNS in its text":
        return requests.exceptions.ConnectionError("Name or service not known, Connection refused, IncompleteRead")
    raise KeyError(kind)


TRAPS = [
    # exception (type and text) | proxy | class | message | fix
    ("reset with 407 in its text", "http://127.0.0.1:7890", ConnectError, "was reset by the other side",
     "Run the same command again"),
    ("reset with 407 in its text", None, ConnectError, "was reset by the other side", "Run the same command again"),
    ("read timeout with 'refused' in its text", "socks5h://127.0.0.1:1080", NetworkTimeout, "stopped answering",
     "Run the same command again"),
    ("read timeout with 'refused' in its text", None, NetworkTimeout, "stopped answering", "Run the same command again"),
    ("unknown error naming DNS in its text", None, ConnectError, "The connection to cdn.invalid failed",
     "Run the same command again"),
]


@pytest.mark.parametrize(("kind", "proxy_url", "cls", "message", "fix"), TRAPS,
                         ids=[f"{row[0]}, {'proxy' if row[1] else 'direct'}" for row in TRAPS])
def test_what_an_exception_says_in_its_text_does_not_classify_it(kind, proxy_url, cls, message, fix):
    import requests  # noqa: F401  (loaded, as on the proxy path: its exception classes take part)

    proxy = parse(proxy_url, "HTTPS_PROXY", "env") if proxy_url else None
    error = classify_exception(_trap(kind), "https://cdn.invalid/blob?Expires=1714077407", proxy)
    assert type(error) is cls and message in error.message and fix in error.hint, (type(error), error.message)
    assert not isinstance(error, ProxyError)
