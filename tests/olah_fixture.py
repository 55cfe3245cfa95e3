"""The real olah (PyPI `olah`, the self-hosted caching Hugging Face mirror teams run) as a process on 127.0.0.1.

Online mode: olah proxies and caches an upstream hub, here the hub simulator (which answers the `POST .../paths-info`
olah asks upstream for every resolve). olah runs from its own venv (`interop_venv`: its dependencies must not enter
hfget's), built on first use. Facts about it that tests rely on (measured; see DESIGN §13):

- it fetches a file upstream in 64 MiB blocks, each once (a lock file per block), and holds every other request on a
  block until the block is saved: response headers after up to 5 s, then silence; the leader's own client also
  waits for the whole block for its last bytes, unless it asked for the rest of the file;
- a client that hangs up on the leader's request cancels that block's upstream fetch, so the next request fetches
  it again from the start;
- it answers LFS files itself (206 with Content-Range, ETag = sha256), never with a redirect;
- at start-up it HEADs a dataset upstream (`Salesforce/wikitext`): clear the simulator's log after `start()`;
- its log (`olah.out`) has one httpx line per upstream request (`upstream_calls()`).

Usage: the `olah_factory` fixture (conftest) returns started servers, stopped at teardown:

    olah = olah_factory(upstream=sim.url)
    sim.clear_log()
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from interop_envs import interop_venv

OLAH_REQUIREMENTS = ["olah==0.5.4"]
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
               "NO_PROXY")
_UPSTREAM_LINE = re.compile(r'HTTP Request: (?P<method>[A-Z]+) (?P<url>\S+) "HTTP/[\d.]+ (?P<status>\d{3})')


def olah_python() -> Path:
    """The interpreter of olah's venv (built once, under .venv/interop/olah)."""
    return interop_venv("olah", OLAH_REQUIREMENTS) / "python"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class UpstreamCall:
    method: str
    url: str
    status: int


class OlahServer:
    """One olah process in online mode. `start()` returns once it answers HTTP; `stop()` ends it (by its pid)."""

    def __init__(self, workdir: Path, *, upstream: str, block_size: str | None = None,
                 metadata_cache_ttl: int | None = None, python: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.upstream = upstream
        self.block_size = block_size  # e.g. "1MB" (a multiple of 1 MiB); default 64 MiB
        self.metadata_cache_ttl = metadata_cache_ttl  # default 600 s: set 0 when a test moves a ref
        self.python = python or olah_python()
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "olah.out"  # olah's stdout and stderr: uvicorn's access log, httpx's upstream lines

    def config_text(self) -> str:
        hub = urlsplit(self.upstream)
        basic = {
            "host": "127.0.0.1", "port": self.port, "repos-path": str(self.workdir / "repos"),
            "hf-scheme": hub.scheme, "hf-netloc": hub.netloc, "hf-lfs-netloc": hub.netloc,
            "mirror-scheme": "http", "mirror-netloc": f"127.0.0.1:{self.port}",
            "mirror-lfs-netloc": f"127.0.0.1:{self.port}",
        }
        if self.block_size is not None:
            basic["cache-block-size"] = self.block_size
        if self.metadata_cache_ttl is not None:
            basic["metadata-cache-ttl"] = self.metadata_cache_ttl
        lines = ["[basic]", *(f"{k} = {_toml(v)}" for k, v in basic.items()), "", "[accessibility]", "offline = false"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> OlahServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(attempts):  # a free port can be taken between our probe and olah's bind: try another
            self.port = _free_port()
            config = self.workdir / "olah.toml"
            config.write_text(self.config_text())
            # httpx trusts proxy variables: olah's upstream calls must not go through a test's proxy.
            env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
            env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [str(self.python), "-m", "olah.server", "--config", str(config),
                     "--log-path", str(self.workdir / "logs")],
                    cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True,  # a Ctrl-C meant for a test's hfget never reaches olah
                )
            if self._wait_ready(time.monotonic() + timeout):
                return self
            last = self.log_tail()
            self.stop()
            if "address already in use" not in last.lower():
                break
        raise RuntimeError(f"olah did not start:\n{last}")

    def _wait_ready(self, deadline: float) -> bool:
        # uvicorn binds only after olah's start-up hook (a HEAD upstream), so any HTTP answer means ready.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                opener.open(f"{self.url}/__olah_ready__", timeout=2).close()
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
        # SIGINT: uvicorn's graceful shutdown; a second one cuts open streams; then SIGKILL.
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

    def upstream_calls(self) -> list[UpstreamCall]:
        """Every request olah sent upstream so far (httpx logs one line per request)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [UpstreamCall(m["method"], m["url"], int(m["status"])) for m in _UPSTREAM_LINE.finditer(text)]
