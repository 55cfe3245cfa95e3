"""The real olah (PyPI `olah`, a self-hosted caching Hugging Face mirror) as a process on 127.0.0.1, for tests.

Two modes, as teams run it:
* online  — olah proxies and caches an upstream hub (here the hub simulator): `OlahServer(dir, upstream=sim.url)`.
  olah asks the upstream `POST /api/{type}s/{repo}/paths-info/{rev}` for every file it resolves; the simulator must
  answer it.
* offline — olah serves local git repos and never contacts an upstream: `OlahServer(dir, mirrors=[root],
  offline=True)`, a repo at `{root}/{models|datasets|spaces}/{org}/{name}`: a non-bare git repo whose LFS files are
  committed as pointers, the objects under `.git/lfs/objects/aa/bb/<sha256>` (what `git lfs` writes;
  `make_mirror_repo` writes it without the git-lfs binary).

olah runs from its own venv (its dependencies are not hfget's), built once by `interop_envs.interop_venv`. Nothing
here imports olah. Use the `olah_factory` fixture: `olah = olah_factory(upstream=sim.url)`; every server it started
is stopped (by its own pid) at teardown. Facts about olah these tests rely on (checked against olah 0.5.4):
* with `--config`, olah ignores its `--hf-*`/`--mirror-*` flags: everything is in the TOML file;
* at start-up (and every 5 min) it HEADs a Salesforce/wikitext file upstream: clear the simulator's log after start;
* it logs every upstream request as an httpx line `HTTP Request: METHOD URL "HTTP/1.1 CODE"` (`upstream_calls()`);
* httpx honours `*_proxy` variables, so they are removed from olah's environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from interop_envs import interop_venv
from support import free_port

OLAH_REQUIREMENTS = ["olah==0.5.4"]
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
               "NO_PROXY")
_UPSTREAM_LINE = re.compile(r'HTTP Request: (?P<method>[A-Z]+) (?P<url>\S+) "HTTP/[\d.]+ (?P<status>\d{3})')
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def olah_python() -> str:
    """The interpreter of the venv olah is installed in ($OLAH_PYTHON, else built once under .venv/interop)."""
    return os.environ.get("OLAH_PYTHON") or str(interop_venv("olah", OLAH_REQUIREMENTS) / "python")


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # a URL (upstream calls) or a path (client requests)
    status: int


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class OlahServer:
    """One olah process. `start()` returns once it answers HTTP; `stop()` ends it."""

    def __init__(self, workdir: Path, *, python: str, upstream: str | None = None, mirrors: list[Path] = (),
                 offline: bool = False, block_size: str | None = None, metadata_cache_ttl: int | None = None) -> None:
        if upstream is None and not offline:
            raise ValueError("an online olah needs an upstream URL")
        self.workdir, self.python = Path(workdir), python
        self.upstream, self.offline = upstream, offline
        self.mirrors = [str(Path(m).resolve()) for m in mirrors]
        self.block_size, self.metadata_cache_ttl = block_size, metadata_cache_ttl
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "olah.out"  # uvicorn's access log and httpx's upstream lines

    def config_text(self) -> str:
        """olah's TOML config, as a lab would write it (see the README's "For teams")."""
        hub = urlsplit(self.upstream or "http://hub.invalid")  # offline: any upstream call fails at once
        basic = {
            "host": "127.0.0.1", "port": self.port, "repos-path": str(self.workdir / "repos"),
            "hf-scheme": hub.scheme, "hf-netloc": hub.netloc, "hf-lfs-netloc": hub.netloc,
            "mirror-scheme": "http", "mirror-netloc": f"127.0.0.1:{self.port}",
            "mirror-lfs-netloc": f"127.0.0.1:{self.port}",
        }
        if self.mirrors:
            basic["mirrors-path"] = self.mirrors
        if self.block_size is not None:
            basic["cache-block-size"] = self.block_size
        if self.metadata_cache_ttl is not None:
            basic["metadata-cache-ttl"] = self.metadata_cache_ttl
        lines = ["[basic]"] + [f"{k} = {_toml(v)}" for k, v in basic.items()]
        return "\n".join(lines + ["", "[accessibility]", f"offline = {_toml(self.offline)}", ""])

    def start(self, timeout: float = 60.0) -> OlahServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a free port can be taken between the probe and olah's bind: try another
            self.port = free_port()
            config = self.workdir / "olah.toml"
            config.write_text(self.config_text())
            env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
            env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
            began = time.monotonic()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.python, "-m", "olah.server", "--config", str(config), "--log-path",
                     str(self.workdir / "logs")],
                    cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True,  # a Ctrl-C meant for the test run is not olah's
                )
            if self._wait_ready(began + timeout):
                self.startup_seconds = time.monotonic() - began
                return self
            tail = self.log_tail()
            self.stop()
            if "address already in use" not in tail.lower():
                raise RuntimeError(f"olah did not start:\n{tail}")
        raise RuntimeError(f"olah did not start:\n{self.log_tail()}")

    def _wait_ready(self, deadline: float) -> bool:
        # uvicorn binds only after olah's start-up hook ran, so any HTTP answer (a 404 here) means ready.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                opener.open(f"{self.url}/__ready__", timeout=2).close()
                return True
            except urllib.error.HTTPError:
                return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT is uvicorn's graceful shutdown; a second one forces it (open streams); then SIGKILL.
        for sig, wait in ((signal.SIGINT, timeout / 2), (signal.SIGINT, timeout / 2), (signal.SIGKILL, 5)):
            try:
                os.kill(proc.pid, sig)
                proc.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def upstream_calls(self) -> list[Request]:
        """Every request olah sent upstream so far."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [Request(m["method"], m["url"], int(m["status"])) for m in _UPSTREAM_LINE.finditer(text)]

    def client_requests(self) -> list[Request]:
        """Every request olah answered (uvicorn's access log)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [Request(m["method"], m["path"], int(m["status"])) for m in _ACCESS_LINE.finditer(text)]


@pytest.fixture
def olah_factory(tmp_path_factory):
    """`olah_factory(**OlahServer keywords)` -> a started olah; all are stopped at teardown."""
    python = olah_python()
    servers: list[OlahServer] = []

    def make(**kwargs) -> OlahServer:
        server = OlahServer(tmp_path_factory.mktemp("olah"), python=python, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


# --- offline mirrors --------------------------------------------------------------------------------------------


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


def make_mirror_repo(root: Path, repo_id: str, files: dict[str, bytes], *, lfs: set[str] = frozenset(),
                     repo_type: str = "model", tag: str | None = None, message: str = "commit") -> str:
    """Commit `files` to `{root}/{repo_type}s/{repo_id}` (made on first use) in the form olah's offline mirror reads,
    tag the commit if asked, and return its sha. LFS files are committed as pointers (olah recognises a pointer only
    if it is 121..149 bytes: real pointers are) with the object where git-lfs would store it. The working tree holds
    exactly `files` after each call, so a commit is a whole snapshot."""
    repo = Path(root) / f"{repo_type}s" / repo_id
    git = ["git", "-C", str(repo), "-c", "user.name=lab", "-c", "user.email=lab@example.invalid",
           "-c", "commit.gpgsign=false"]
    if not (repo / ".git").exists():
        repo.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["rm", "-rq", "--ignore-unmatch", "."], check=True)
    for path, data in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in lfs:
            sha = hashlib.sha256(data).hexdigest()
            obj = repo / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            data = lfs_pointer(data)
        target.write_bytes(data)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", message], check=True)
    if tag:
        subprocess.run(git + ["tag", tag], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
