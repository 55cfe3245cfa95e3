"""The network layers `hfget diagnose` tests one at a time, so it can say *which* one fails: DNS, TCP connect, TLS
handshake, the hub API, a throughput sample; and for a proxy: reachable, speaks its protocol, accepts the
credentials. Every function takes a timeout and returns a `Check`; none of them retries (a diagnosis wants the
first answer, fast) and none prints.

The API and throughput layers go through the same `Source` objects and `HttpClient` a download uses, so what
passes here is what a download will see; DNS, TCP and TLS are done by hand because a library call hides which of
them failed.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..errors import AuthError, HfgetError, NetworkError, NotFoundError
from ..net.proxy import Proxy
from ..net.urls import host_label
from ..repo import RepoRef, Snapshot
from ..sources import Source
from ..units import human_bytes, human_duration, human_rate
from .checks import FAIL, OK, WARN, Check

SAMPLE_BYTES = 8 * 1024 * 1024  # enough to see a throttled mirror, little enough to be polite
SLOW = 200_000  # bytes/s: below this a large model takes hours

_DNS_HINT = (
    "This network's resolver does not know the name (blocked or broken DNS). Use a route that works below, or a "
    "proxy that resolves names itself (socks5h:// rather than socks5://)."
)
_CERT_HINT = (
    "Something between you and the server presents a certificate your system does not trust (a firewall or proxy "
    "intercepting HTTPS, or a self-signed server). Point REQUESTS_CA_BUNDLE at the CA bundle that signs it, or use "
    "a route you trust."
)


def ms(seconds: float) -> str:
    return human_duration(seconds)


def resolve_name(host: str, port: int, timeout: float) -> tuple[list[str], Check]:
    """getaddrinfo in a helper thread: the resolver ignores socket timeouts, and a diagnosis must not hang on it."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return [host], Check("dns", "dns", OK, f"{host} is an IP address (no lookup)")
    except OSError:
        pass
    box: dict = {}

    def lookup() -> None:
        try:
            box["addrs"] = list(dict.fromkeys(a[4][0] for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
        except OSError as error:
            box["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    took = time.monotonic() - started
    if thread.is_alive():
        return [], Check("dns", "dns", FAIL, f"the resolver gave no answer for {host} within {timeout:g} s", _DNS_HINT)
    if "error" in box:
        reason = getattr(box["error"], "strerror", None) or str(box["error"])
        return [], Check("dns", "dns", FAIL, f"{host} does not resolve here ({reason})", _DNS_HINT)
    addrs = box["addrs"]
    shown = ", ".join(addrs[:3]) + (" …" if len(addrs) > 3 else "")
    return addrs, Check("dns", "dns", OK, f"{host} → {shown} ({ms(took)})")


def connect(addrs: list[str], port: int, timeout: float, what: str) -> tuple[socket.socket | None, Check]:
    """A TCP connection to the first address that takes one; the failure of the last one otherwise."""
    failure = Check("tcp", "tcp", FAIL, f"no address to connect to for {what}")
    for addr in addrs[:3]:
        started = time.monotonic()
        try:
            sock = socket.create_connection((addr, port), timeout=timeout)
        except ConnectionRefusedError:
            failure = Check("tcp", "tcp", FAIL, f"{what}: connection refused (nothing listens on {addr}:{port})",
                            "Check the host and port; if it is a local service, start it.")
        except (socket.timeout, TimeoutError):
            failure = Check("tcp", "tcp", FAIL, f"{what}: no answer to the TCP connect within {timeout:g} s "
                            f"({addr}:{port} is filtered or unreachable from here)",
                            "The address is blocked from this network; use a mirror or a proxy.")
        except OSError as error:
            failure = Check("tcp", "tcp", FAIL, f"{what}: {error.strerror or error} ({addr}:{port})",
                            "This network cannot route there; use a mirror or a proxy.")
        else:
            return sock, Check("tcp", "tcp", OK, f"connected to {addr}:{port} in {ms(time.monotonic() - started)}")
    return None, failure


def tls_handshake(sock: socket.socket, host: str, timeout: float, cafile: str | None) -> Check:
    """Verify the certificate as requests would (certifi, or REQUESTS_CA_BUNDLE); name certificate problems."""
    import requests.certs

    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        context = ssl.create_default_context(cafile=cafile or requests.certs.where())
    except (OSError, ssl.SSLError) as error:
        return Check("tls", "tls", FAIL, f"the CA bundle {cafile} cannot be loaded ({error})",
                     "Point REQUESTS_CA_BUNDLE at a readable .pem file, or remove it.")
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as error:
        return Check("tls", "tls", FAIL, f"certificate problem with {host}: {error.verify_message or error.reason}",
                     _CERT_HINT)
    except (socket.timeout, TimeoutError):
        return Check("tls", "tls", FAIL, f"{host} accepted the connection but never finished the TLS handshake "
                     f"(within {timeout:g} s)", "The connection is filtered after it opens; use a mirror or a proxy.")
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
        return Check("tls", "tls", FAIL, f"the TLS handshake with {host} failed ({reason})",
                     "The server does not speak HTTPS on this port, or the connection is tampered with; use a "
                     "mirror or a proxy.")
    return Check("tls", "tls", OK, f"{version}, certificate for {_name(cert, 'subject')} issued by "
                 f"{_name(cert, 'issuer')}, verified ({ms(time.monotonic() - started)})")


def _name(cert: dict, field: str) -> str:
    parts = dict(item for rdn in cert.get(field, ()) for item in rdn)
    return parts.get("commonName") or parts.get("organizationName") or "?"


LAYER_OF_KIND = {"dns": "dns", "connect": "tcp", "tls": "tls", "proxy": "proxy"}


def api_check(source: Source, repo: RepoRef) -> tuple[Check, Snapshot | None]:
    """One real API call (the revision info and file listing a download starts with) for `repo`."""
    started = time.monotonic()
    try:
        snapshot = source.resolve(repo, "main")
    except NotFoundError as error:
        took = ms(time.monotonic() - started)
        return Check("http", "http", WARN, f"answers the API ({took}); {error.message}",
                     "Pass a repo this source has: hfget diagnose OWNER/NAME"), None
    except AuthError as error:  # gated, or the token is refused: the route works, the token is token-check's job
        return Check("http", "http", WARN, f"answers the API; {error.message}", error.hint), None
    except NetworkError as error:
        layer = LAYER_OF_KIND.get(error.kind, "http")
        return Check(layer, layer, FAIL, error.message, error.hint), None
    except HfgetError as error:  # 5xx, or something that is not a hub (a captive portal, a web page)
        return Check("http", "http", FAIL, error.message, error.hint), None
    took = ms(time.monotonic() - started)
    return Check("http", "http", OK, f"answers the API: {repo} at {snapshot.commit[:10]}, {len(snapshot.files)} "
                 f"files ({took})"), snapshot


def throughput(source: Source, snapshot: Snapshot, seconds: float) -> Check:
    """Download the first bytes of the largest file for up to `seconds`: the speed a download would get."""
    if not snapshot.files:
        return Check("speed", "speed", WARN, f"{snapshot.repo} has no file to sample")
    file = max(snapshot.files, key=lambda f: f.size)
    url, grant = source.file_location(snapshot, file)
    wanted = min(SAMPLE_BYTES, file.size)
    client = source.client
    started = time.monotonic()
    got = 0
    try:
        response = client.request("GET", url, grant=grant, stream=True, retry=False,
                                  headers={"Range": f"bytes=0-{max(wanted - 1, 0)}", "Accept-Encoding": "identity"})
        try:
            if response.status_code >= 400:
                error = source.error_for(response, snapshot.repo, snapshot.revision)
                return Check("speed", "speed", WARN, f"could not sample {file.path}: {error.message}", error.hint)
            for block in client.iter_body(response, 256 * 1024):
                got += len(block)
                if got >= wanted or time.monotonic() - started >= seconds:
                    break
        finally:
            response.close()
    except HfgetError as error:
        if not got:
            return Check("speed", "speed", FAIL, f"could not fetch {file.path}: {error.message}", error.hint)
    took = max(time.monotonic() - started, 1e-3)
    rate = got / took
    where = host_label(response.url) if getattr(response, "url", None) else host_label(url)
    detail = f"{human_rate(rate)} ({human_bytes(got)} of {file.path} from {where} in {ms(took)})"
    if rate < SLOW and got < wanted:
        return Check("speed", "speed", WARN, "slow: " + detail, "A large model will take hours this way; compare "
                     "the other routes' speed.")
    return Check("speed", "speed", OK, detail)


# --- proxies ----------------------------------------------------------------------------------------------------


def proxy_checks(proxy: Proxy, target: str, timeout: float) -> list[Check]:
    """Is the proxy there, does it speak the protocol its URL says, does it take the credentials (or need some)."""
    parts = urlsplit(proxy.url)
    host, port = parts.hostname or "", parts.port or (1080 if proxy.scheme.startswith("socks") else 8080)
    name = f"proxy {proxy.masked}"
    addrs, dns = resolve_name(host, port, timeout)
    if not addrs:
        return [Check("proxy", f"{name}: reachable", FAIL, f"the proxy's host name: {dns.detail}",
                      f"Fix the proxy's host name (it is set in {proxy.origin}).", proxy.masked)]
    sock, tcp = connect(addrs, port, timeout, f"the proxy {host}:{port}")
    if sock is None:
        return [Check("proxy", f"{name}: reachable", FAIL, tcp.detail,
                      f"Start the proxy, or fix its address (from {proxy.origin}).", proxy.masked)]
    checks = [Check("proxy", f"{name}: reachable", OK, tcp.detail)]
    with sock:
        sock.settimeout(timeout)
        try:
            if proxy.scheme in ("socks5", "socks5h"):
                checks += _socks5(sock, parts, name)
            elif proxy.scheme in ("http", "https"):
                checks += _http_connect(sock, parts, name, target, host, proxy.scheme == "https")
            else:
                checks.append(Check("proxy", f"{name}: protocol", WARN, f"{proxy.scheme} is not checked by diagnose; "
                                    "the routes through it below show whether it works"))
        except (socket.timeout, TimeoutError):
            checks.append(Check("proxy", f"{name}: protocol", FAIL, f"accepts connections but does not answer as a "
                                f"{proxy.scheme} proxy within {timeout:g} s",
                                "Check the port and the scheme (http:// vs socks5h://) of the proxy URL."))
        except ssl.SSLError as error:
            if isinstance(error, ssl.SSLCertVerificationError):
                checks.append(Check("proxy", f"{name}: protocol", FAIL, f"the proxy's TLS certificate could not be "
                                    f"verified ({error.verify_message or error.reason})",
                                    f"Most local proxies speak plain HTTP: use http://{_plain(proxy)}"))
            else:
                checks.append(Check("proxy", f"{name}: protocol", FAIL, "the TLS handshake with the proxy failed: this "
                                    "proxy speaks plain HTTP", f"Use http://{_plain(proxy)} (https:// in front of a "
                                    "proxy means TLS to the proxy itself)."))
        except OSError as error:
            checks.append(Check("proxy", f"{name}: protocol", FAIL, f"the connection broke during the {proxy.scheme} "
                                f"handshake ({error})", "Check the port and the scheme of the proxy URL."))
    for check in checks:
        check.subject = proxy.masked
    return checks


def _plain(proxy: Proxy) -> str:
    """The proxy's address after `http://`, its password masked."""
    return proxy.masked.split("://", 1)[1]


def _socks5(sock: socket.socket, parts, name: str) -> list[Check]:
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    # Offer both "none" and "user/password" even without credentials: the proxy's choice says whether it needs them
    # (some hang up, instead of answering "no acceptable method", when offered only "none").
    sock.sendall(b"\x05\x02\x00\x02")
    reply = sock.recv(2)
    if len(reply) < 2 or reply[0] != 5:
        return [Check("proxy", f"{name}: protocol", FAIL, f"does not answer as a SOCKS5 proxy ({_what(reply)})",
                      "Check the scheme: an HTTP proxy needs http://, not socks5://.")]
    checks = [Check("proxy", f"{name}: protocol", OK, "speaks SOCKS5")]
    if reply[1] == 0:
        return checks + [Check("proxy", f"{name}: authentication", OK, "none required")]
    if reply[1] == 0xFF or reply[1] != 2 or not user:
        return checks + [Check("proxy", f"{name}: authentication", FAIL, "requires a user name and password",
                               "Put them in the proxy URL: socks5h://USER:PASSWORD@host:port.")]
    raw_user, raw_password = user.encode(), password.encode()
    sock.sendall(b"\x01" + bytes([len(raw_user)]) + raw_user + bytes([len(raw_password)]) + raw_password)
    status = sock.recv(2)
    if len(status) == 2 and status[1] == 0:
        return checks + [Check("proxy", f"{name}: authentication", OK, "user and password accepted")]
    # RFC 1929 says the proxy answers with a status; many (pproxy, ssh) simply hang up on bad credentials.
    return checks + [Check("proxy", f"{name}: authentication", FAIL, "the user name or password was rejected",
                           "Fix the credentials in the proxy URL: socks5h://USER:PASSWORD@host:port.")]


def _http_connect(sock: socket.socket, parts, name: str, target: str, proxy_host: str, tls: bool) -> list[Check]:
    """A CONNECT to the first endpoint: the request an https download makes through an HTTP proxy."""
    if tls:
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=proxy_host)
    goal = urlsplit(target)
    authority = f"{goal.hostname}:{goal.port or (443 if goal.scheme == 'https' else 80)}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if parts.username:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(secret).decode())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    reply = sock.recv(256)
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if not status_line.startswith("HTTP/") or len(fields) < 2 or not fields[1].isdigit():
        return [Check("proxy", f"{name}: protocol", FAIL, f"does not answer as an HTTP proxy ({_what(reply)})",
                      "Check the scheme: a SOCKS proxy needs socks5h://, not http://.")]
    checks = [Check("proxy", f"{name}: protocol", OK, "speaks HTTP (CONNECT)")]
    status = int(fields[1])
    if status == 407:
        what = "rejected the user name or password" if parts.username else "requires a user name and password"
        return checks + [Check("proxy", f"{name}: authentication", FAIL, f"{what} (HTTP 407)",
                               "Put the right ones in the proxy URL: http://USER:PASSWORD@host:port.")]
    auth = Check("proxy", f"{name}: authentication", OK,
                 "user and password accepted" if parts.username else "none required")
    if status >= 300:
        return checks + [auth, Check("proxy", f"{name}: tunnel", WARN,
                                     f"refused to open a tunnel to {authority}: {status_line}",
                                     "The proxy may block that host; see the routes through it below.")]
    return checks + [auth]


def _what(reply: bytes) -> str:
    if not reply:
        return "it closed the connection"
    if reply.startswith(b"HTTP/"):
        return "it answered in HTTP"
    if reply[:1] == b"\x05":
        return "it answered in SOCKS5"
    return f"it answered {reply[:8]!r}"


@dataclass
class RouteReport:
    kind: str  # hub | mirror | modelscope
    endpoint: str
    proxy: str | None  # masked proxy URL, None for direct
    reason: str  # why the download would try it (from route.plan)
    layers: list[Check] = field(default_factory=list)
    works: bool = False  # the API answered like a hub: a download can go this way
    serves_repo: bool = False  # and it has the probe repo

    @property
    def label(self) -> str:
        return f"{self.kind} {self.endpoint}" + (f" via proxy {self.proxy}" if self.proxy else "")

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.layers if c.status == FAIL), None)
