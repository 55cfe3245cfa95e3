"""Loopback servers and ports for the tests: refused ports, a real proxy (pproxy), servers that misbehave, TLS."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

_HELD_PORTS: list[socket.socket] = []


def release_held_ports() -> None:
    """Let go of the ports `closed_port` held (the `_release_held_ports` fixture calls this after each test)."""
    while _HELD_PORTS:
        _HELD_PORTS.pop().close()


def free_port() -> int:
    """A port for a server about to start (bound, then released for it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port where connections are refused, for the rest of the test run.

    The socket stays bound without listening: a connection gets ECONNREFUSED, and no other process (a simulator,
    a proxy, another test run) can be handed the port meanwhile, which a released port allows."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(s)
    return s.getsockname()[1]


@contextmanager
def pproxy(target_port: int, log: Path, auth: str | None = None, protocols: str = "socks5+http"):
    """A real pproxy (HTTP and SOCKS5 on one port, optional USER:PASSWORD) tunnelling everything to target_port."""
    port = free_port()
    listen = f"{protocols}://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
    # --auth 0: check credentials on every connection (pproxy otherwise trusts an address that once logged in)
    cmd = [str(Path(sys.executable).with_name("pproxy")), "-l", listen, "-r", f"tunnel://127.0.0.1:{target_port}",
           "-v", "--auth", "0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"pproxy did not start: {log.read_text()}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class LoopbackServer:
    """A TCP server on 127.0.0.1 for the tests: accepts in a thread, hands each connection to `handle` in a thread
    of its own and counts them (`accepted`); `close()` stops it (`stopped` is set, for handlers that wait) and closes
    every connection it accepted or was given to `hold`. Subclasses set their own attributes before calling
    `__init__`, which starts accepting at once."""

    def __init__(self, backlog: int = 128) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self.stopped = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, sock: socket.socket) -> socket.socket:
        self._held.append(sock)
        return sock

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - every server has its own
        raise NotImplementedError

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(self.hold(conn),), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            if not self.stopped.is_set():  # a connection closed by close() is the end, not a failure
                raise

    def close(self) -> None:
        self.stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
        except OSError:
            pass
        self._listener.close()
        for sock in self._held:
            try:
                sock.close()
            except OSError:
                pass


@contextmanager
def tcp_server(reply, tls: ssl.SSLContext | None = None):
    """A loopback server answering each connection with `reply(conn, stop)` (in a thread of its own; `stop` is set
    when the server shuts down, for replies that wait), then closing it; yields its port."""

    class Replies(LoopbackServer):
        def handle(self, conn: socket.socket) -> None:
            try:
                if tls is not None:
                    conn = self.hold(tls.wrap_socket(conn, server_side=True))
                reply(conn, self.stopped)
            except OSError:
                pass
            finally:
                if not self.stopped.is_set():
                    conn.close()  # the answer ends here: a body shorter than its length ends early, a linger resets

    server = Replies(backlog=64)
    try:
        yield server.port
    finally:
        server.close()


def misbehaving_server(mode: str, body: bytes = b""):
    """A loopback server that accepts TCP connections and then: `hang` (never answers), `trickle` (one byte of a
    never-ending response every 0.3 s, so no read timeout ever fires) or `portal` (a 200 HTML page for every
    request, like a captive portal). A context manager yielding its port."""

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        if mode == "portal":
            conn.recv(65536)
            page = body or b"<html><body>Please log in to use the Wi-Fi</body></html>"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(page), page))
        elif mode == "trickle":
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if stop.wait(0.3):
                    break
                conn.sendall(bytes([byte]))
        else:
            stop.wait()

    return tcp_server(reply)


def self_signed_cert(folder: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for these host names / IPs; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
