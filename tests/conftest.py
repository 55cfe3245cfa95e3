"""Shared fixtures: an isolated environment for every test, and a hub simulator on 127.0.0.1."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfget.cli import app
from hfget.testing.hubsim import HubSimulator, SimUser
from hfget.testing.simrepo import demo_repos

# Every variable hfget, huggingface_hub, modelscope or requests would read from the environment.
_ISOLATE_PREFIXES = ("HF_", "HUGGINGFACE_", "HFGET_", "MODELSCOPE_", "XDG_")
_ISOLATE_NAMES = {
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "USE_MODELSCOPE", "DEFAULT_MODEL",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
}

# The same suite runs on Windows and macOS runners (.github/workflows/ci.yml). What only some platforms have:
POSIX = os.name == "posix"
LINUX = sys.platform.startswith("linux")
needs_posix_signals = pytest.mark.skipif(
    not POSIX, reason="sends SIGKILL / SIGINT / SIGTERM to one process: Windows has no such signals (only termination)")
needs_linux = pytest.mark.skipif(
    not LINUX, reason="the non-POSIX stand-in (tests/nonposix_site) builds msvcrt's locks from Linux OFD locks")
# kill -9: on Windows, Popen.send_signal(SIGTERM) is TerminateProcess, which is just as abrupt.
SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)

VALID_TOKEN = "hf_simTokenAliceAAAABBBBCCCCDDDDEEEE1234"
GATED_TOKEN = "hf_simTokenBobGatedAAAABBBBCCCCDDDD5678"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point HOME, every cache and the working directory into tmp_path; clear every setting from the env."""
    for name in list(os.environ):
        if name.startswith(_ISOLATE_PREFIXES) or name.upper() in _ISOLATE_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # The default sources must never reach the internet from a test: the official hub and ModelScope become closed
    # loopback ports (connection refused at once) and there are no known public mirrors. Tests that need them up
    # point these settings at the simulator.
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", "")
    monkeypatch.chdir(work)
    for parent in work.parents:
        assert not (parent / ".env").exists(), f"a stray {parent / '.env'} would leak into the tests"
    return tmp_path


def hfget_process(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """`hfget ARGS...` as a real process, in the environment the `isolated` fixture left (no user settings; the
    default sources are closed loopback ports, so nothing leaves this machine), with text stdout and stderr pipes.

    Ctrl-C reaches it as from a terminal: a test run started in the background (nohup, `cmd &` in a script) inherits
    SIGINT *ignored*, and Python then never turns it into KeyboardInterrupt."""
    full_env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "hfget", *map(str, args)], env=full_env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **popen,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if POSIX else None,
    )


@pytest.fixture(scope="session")
def _session_sim():
    sim = HubSimulator(
        demo_repos(large_mb=6),
        users=[
            SimUser(VALID_TOKEN, "alice", orgs=("hfget-demo",)),
            SimUser(GATED_TOKEN, "bob", gated_access=frozenset({"hfget-demo/gated-model"})),
        ],
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(_session_sim):
    """The shared simulator, with faults and the request log cleared for each test."""
    _session_sim.clear_faults()
    _session_sim.clear_log()
    _session_sim.tree_page_size = 1000
    _session_sim.rate_limit = 0
    _session_sim.cdn_base = None
    _session_sim.link_ttl = None
    _session_sim.link_per_range = False
    _session_sim.block_cache = None
    yield _session_sim
    _session_sim.clear_faults()


@contextmanager
def cdn_on_another_host(sim: HubSimulator):
    """Point the simulator's LFS redirects at `localhost` instead of its own 127.0.0.1 while an official
    huggingface_hub client downloads: another host name, as the real hub's CDN is.

    huggingface_hub before 2.2 took a redirect to another port of the same host for the hub itself (it compared host
    names; 2.2 compares origins), followed it, and found no X-Repo-Commit on the CDN's answer. Against the real hub its
    CDN is another host and every 2.x works, so the tests that use it to build caches name the CDN as the hub does."""
    saved = sim.cdn_base
    sim.cdn_base = f"http://localhost:{sim.cdn_port}"
    try:
        yield sim
    finally:
        sim.cdn_base = saved


@pytest.fixture
def sim_cdn_elsewhere(sim):
    """The simulator with its CDN named as another host (cdn_on_another_host), for a test that runs huggingface_hub."""
    with cdn_on_another_host(sim):
        yield sim


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hub-cache"


@pytest.fixture
def cli():
    """Run `hfget ARGS...` in-process; returns click's Result (stdout, stderr, exit_code)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)

    return run


_HELD_PORTS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _release_held_ports():
    """The ports `closed_port` held for a test are let go when it ends."""
    yield
    while _HELD_PORTS:
        _HELD_PORTS.pop().close()


def _free_port() -> int:
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


def tree_state(root: Path) -> dict[str, str]:
    """Everything under root: paths, symlink targets and content hashes. Equal states = nothing changed."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def leftovers(folder: Path) -> list[Path]:
    """Every unfinished download under `folder`, of any client (hfget's partials and state files, huggingface_hub
    0.x's `{etag}.incomplete`, 2.x's `{etag}.{id}.incomplete`)."""
    from hfget.store.partials import is_leftover_name

    return sorted(p for p in folder.rglob("*") if is_leftover_name(p.name)) if folder.exists() else []


def hfget_partials(blobs: Path, etag: str = "*") -> list[Path]:
    """hfget's own partials (`{etag}.hfget-{owner}.partial`, not their state files) in a `blobs/` folder."""
    return sorted(blobs.glob(f"{etag}.hfget-*.partial"))


def hfget_partial_bytes(blobs: Path, etag: str = "*") -> int:
    """The bytes in hfget's partials in `blobs/` right now. A partial that is finished between the listing and its
    stat (renamed into place) counts as nothing."""
    total = 0
    for partial in hfget_partials(blobs, etag):
        try:
            total += partial.stat().st_size
        except FileNotFoundError:
            pass
    return total


def dead_hfget_partial(blobs: Path, etag: str) -> Path:
    """A name for a partial left by an hfget download that is gone: this host, this (test) process's pid, and an
    owner tail no live download of this process has (fs/locks.py owner_alive: such an owner is dead)."""
    from hfget.fs.locks import host_id

    blobs.mkdir(parents=True, exist_ok=True)
    return blobs / f"{etag}.hfget-{host_id()}-{os.getpid()}-dead00.partial"


def official_offline_load(
    cache: Path, repo_id: str, revision: str = "main", repo_type: str = "model", files: list[str] | None = None
) -> dict:
    """Load a snapshot (or only `files`) with the official client, offline, in a fresh process.

    Returns {"path": snapshot folder, "files": {path: sha256}}.
    """
    code = f"""
import hashlib, json, os
from huggingface_hub import snapshot_download
p = snapshot_download({repo_id!r}, revision={revision!r}, repo_type={repo_type!r}, local_files_only=True,
                      allow_patterns={files!r})
out = {{}}
for root, _, files in os.walk(p):
    for f in files:
        full = os.path.join(root, f)
        out[os.path.relpath(full, p)] = hashlib.sha256(open(full, 'rb').read()).hexdigest()
print(json.dumps({{"path": p, "files": out}}))
"""
    env = {k: v for k, v in os.environ.items()}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected_files(sim: HubSimulator, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict:
    repo = sim.repo(repo_id, repo_type)
    files = repo.commits[repo.resolve(revision)]
    return {path: f.content.sha256 for path, f in files.items()}


# --- servers that misbehave, and a real proxy -------------------------------------------------------------------


@contextmanager
def pproxy(target_port: int, log: Path, auth: str | None = None, protocols: str = "socks5+http"):
    """A real pproxy (HTTP and SOCKS5 on one port, optional USER:PASSWORD) tunnelling everything to target_port."""
    port = _free_port()
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


@contextmanager
def misbehaving_server(mode: str, body: bytes = b""):
    """A loopback server that accepts TCP connections and then: `hang` (never answers), `trickle` (one byte of a
    never-ending response every 0.3 s, so no read timeout ever fires) or `portal` (a 200 HTML page for every
    request, like a captive portal). Yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        try:
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
        except OSError:
            pass

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            held.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


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
