"""Benchmark fixtures: generated repos on disk, and an nginx that serves them like the Hugging Face hub.

nginx speaks just enough of the hub protocol (DESIGN §3) for `hf download` and hfget: revision info and tree
JSON, `resolve` URLs with `X-Repo-Commit` / `ETag` / `X-Linked-Etag` / `X-Linked-Size`, LFS files as a 302 to a
`/cdn/{sha256}` URL on another port (another origin, as on the real hub). Each repo is served twice: unthrottled,
and with `limit_rate` per connection, like a throttled mirror. The many-files repos (`many`, `distant`) answer
every small file's resolve URL as today's hub does: a relative 307 to `/api/resolve-cache/...` on the same origin,
where the bytes and the metadata are. The unthrottled hub logs each request's connection serial number
(`hub-connections.log`), which is how the benchmark counts the TCP connections each tool opened to the hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
OWNER = "bench"


@dataclass
class BenchFile:
    path: str
    size: int
    sha256: str
    git_sha1: str
    lfs: bool

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_sha1


@dataclass
class BenchRepo:
    name: str
    commit: str
    files: list[BenchFile]
    root: Path  # files live in root/files/<path>

    @property
    def repo_id(self) -> str:
        return f"{OWNER}/{self.name}"

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


# name -> [(path, size, lfs)]; sizes chosen like a real checkpoint: two big shards and the usual small files.
LAYOUTS: dict[str, list[tuple[str, int, bool]]] = {
    "shards": [
        ("model-00001-of-00002.safetensors", 512 * MIB, True),
        ("model-00002-of-00002.safetensors", 512 * MIB, True),
        ("model.safetensors.index.json", 24_000, False),
        ("config.json", 700, False),
        ("generation_config.json", 180, False),
        ("tokenizer.json", 2 * MIB + 12_345, False),
        ("tokenizer_config.json", 4_000, False),
        ("README.md", 3_000, False),
    ],
    "small": [(f"shard{i // 50:02d}/part-{i:04d}.json", 4_000 + (i * 7919) % 60_000, False) for i in range(400)],
    "huge": [("model.safetensors", 2048 * MIB, True), ("config.json", 700, False)],
    # A dataset-like repo: 3000 small files of 2-40 KB in 30 folders, and one 16 MiB LFS file.
    "many": [(f"data/{i // 100:02d}/item-{i:04d}.json", 2_000 + (i * 7919) % 38_000, False) for i in range(3000)]
    + [("model.safetensors", 16 * MIB, True)],
    # 1000 such files, for the distant (100 ms round trip) hub.
    "distant": [(f"data/{i // 100:02d}/item-{i:04d}.json", 2_000 + (i * 7919) % 38_000, False) for i in range(1000)],
}
# Repos whose small files are behind the hub's same-origin 307 to /api/resolve-cache (DESIGN §3).
RESOLVE_CACHE = {"many", "distant"}


def build_repo(workdir: Path, name: str) -> BenchRepo:
    """Generate (once) the repo's files with random bytes, and their hashes."""
    root = workdir / "repos" / name
    manifest = root / "manifest.json"
    layout = LAYOUTS[name]
    if manifest.exists():
        data = json.loads(manifest.read_text())
        files = [BenchFile(**f) for f in data["files"]]
        if [(f.path, f.size, f.lfs) for f in files] == layout:
            return BenchRepo(name, data["commit"], files, root)
    shutil.rmtree(root, ignore_errors=True)
    files = []
    for path, size, lfs in layout:
        target = root / "files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        sha256, git_sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
        with open(target, "wb") as out:
            left = size
            while left:
                block = os.urandom(min(left, 4 * MIB))
                out.write(block)
                sha256.update(block)
                git_sha1.update(block)
                left -= len(block)
        files.append(BenchFile(path, size, sha256.hexdigest(), git_sha1.hexdigest(), lfs))
    commit = hashlib.sha1("".join(f.path + f.etag for f in files).encode()).hexdigest()
    manifest.write_text(json.dumps({"commit": commit, "files": [f.__dict__ for f in files]}, indent=1))
    return BenchRepo(name, commit, files, root)


def _api_documents(repo: BenchRepo, www: Path) -> None:
    """Static JSON for the revision and tree endpoints (nginx ignores the query string)."""
    api = www / "api" / "models" / OWNER / repo.name
    siblings, tree = [], []
    for f in repo.files:
        sibling = {"rfilename": f.path, "size": f.size, "blobId": f.git_sha1}
        entry = {"type": "file", "oid": f.git_sha1, "size": f.size, "path": f.path}
        if f.lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.sha256}\nsize {f.size}\n"
            lfs = {"oid": f.sha256, "size": f.size, "pointerSize": len(pointer)}
            sibling["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": len(pointer)}
            entry["lfs"] = lfs
        siblings.append(sibling)
        tree.append(entry)
    dirs = sorted({"/".join(f.path.split("/")[:i]) for f in repo.files for i in range(1, f.path.count("/") + 1)})
    tree = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in dirs] + tree
    info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "private": False, "gated": False,
            "disabled": False, "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}
    for revision in ("main", repo.commit):
        (api / "revision").mkdir(parents=True, exist_ok=True)
        (api / "revision" / revision).write_text(json.dumps(info))
        (api / "tree").mkdir(parents=True, exist_ok=True)
        (api / "tree" / revision).write_text(json.dumps(tree))


def _resolve_locations(repo: BenchRepo) -> str:
    """One exact location per file and revision: LFS files redirect to the CDN, the others are served here (or, for
    the many-files repos, behind a relative 307 to their /api/resolve-cache URL, as on the hub)."""
    out = []
    common = f'add_header X-Repo-Commit {repo.commit}; add_header Access-Control-Expose-Headers "X-Repo-Commit,X-Linked-Etag,X-Linked-Size";'
    if repo.name in RESOLVE_CACHE:
        for f in repo.files:
            if not f.lfs:
                out.append(
                    f"location = /api/resolve-cache/models/{repo.repo_id}/{repo.commit}/{f.path} {{ {common} "
                    f"etag off; add_header ETag '\"{f.git_sha1}\"'; alias {repo.root / 'files' / f.path}; }}"
                )
    for revision in ("main", repo.commit):
        for f in repo.files:
            uri = f"/{repo.repo_id}/resolve/{revision}/{f.path}"
            if f.lfs:
                out.append(
                    f'location = {uri} {{ {common} add_header ETag \'"{f.git_sha1}"\'; '
                    f"add_header X-Linked-Etag '\"{f.sha256}\"'; add_header X-Linked-Size {f.size}; "
                    f"return 302 $cdn/cdn/{f.sha256}; }}"
                )
            elif repo.name in RESOLVE_CACHE:
                out.append(
                    f"location = {uri} {{ {common} add_header ETag '\"{f.git_sha1}\"'; "
                    f"return 307 /api/resolve-cache/models/{repo.repo_id}/{repo.commit}/{f.path}; }}"
                )
            else:
                out.append(
                    f"location = {uri} {{ {common} etag off; add_header ETag '\"{f.git_sha1}\"'; "
                    f"alias {repo.root / 'files' / f.path}; }}"
                )
    return "\n".join(out)


class Nginx:
    """nginx on 127.0.0.1 with four ports: hub and CDN, each unthrottled and rate-limited per connection."""

    def __init__(self, workdir: Path, repos: list[BenchRepo], rate: int, base_port: int = 18600) -> None:
        self.dir = workdir / "nginx"
        self.repos = repos
        self.rate = rate
        self.ports = {"hub": base_port, "cdn": base_port + 1, "hub_slow": base_port + 2, "cdn_slow": base_port + 3}
        self.process: subprocess.Popen | None = None
        self.connection_log = self.dir / "hub-connections.log"

    def connections_since(self, offset: int) -> int:
        """TCP connections that made requests to the unthrottled hub since the log had `offset` bytes."""
        try:
            with open(self.connection_log, "rb") as log:
                log.seek(offset)
                return len(set(log.read().split()))
        except OSError:
            return 0

    def log_size(self) -> int:
        try:
            return self.connection_log.stat().st_size
        except OSError:
            return 0

    def url(self, throttled: bool) -> str:
        return f"http://127.0.0.1:{self.ports['hub_slow' if throttled else 'hub']}"

    def _config(self) -> str:
        www, cdn = self.dir / "www", self.dir / "cdn"
        shutil.rmtree(www, ignore_errors=True)
        shutil.rmtree(cdn, ignore_errors=True)
        cdn.mkdir(parents=True)
        locations = []
        for repo in self.repos:
            _api_documents(repo, www)
            locations.append(_resolve_locations(repo))
            for f in repo.files:
                if f.lfs:
                    os.symlink(repo.root / "files" / f.path, cdn / f.sha256)
        (self.dir / "resolve.conf").write_text("\n".join(locations))
        temp = self.dir / "tmp"
        temp.mkdir(exist_ok=True)

        def hub(port: int, cdn_port: int, limit: str) -> str:
            # The unthrottled hub logs every request's connection serial: distinct serials = connections opened.
            log = "" if limit else f"access_log {self.connection_log} connections;"
            return f"""
  server {{
    listen 127.0.0.1:{port}{' sndbuf=64k' if limit else ''}; {limit} {log}
    absolute_redirect off;
    set $cdn http://127.0.0.1:{cdn_port};
    location /api/ {{ root {www}; default_type application/json; }}
    include {self.dir / 'resolve.conf'};
  }}"""

        def cdn_server(port: int, limit: str) -> str:
            return f"""
  server {{ listen 127.0.0.1:{port}{' sndbuf=64k' if limit else ''}; {limit} location /cdn/ {{ alias {cdn}/; }} }}"""

        # limit_rate paces each request by delaying after every send, but the first send of a request goes out
        # at once, as large as the socket buffer (megabytes on loopback): a client making many short requests
        # would get much more than the rate. A 64 KiB send buffer keeps each connection close to the rate, like a
        # mirror or link that shapes every connection. (Unthrottled servers keep the default buffers.)
        slow = f"limit_rate {self.rate};"
        return f"""
worker_processes auto;
pid {self.dir / 'nginx.pid'};
error_log {self.dir / 'error.log'} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000; keepalive_timeout 60;
  log_format connections '$connection';
  default_type application/octet-stream; server_tokens off; gzip off;
  client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
  uwsgi_temp_path {temp}; scgi_temp_path {temp};
  {hub(self.ports['hub'], self.ports['cdn'], '')}
  {cdn_server(self.ports['cdn'], '')}
  {hub(self.ports['hub_slow'], self.ports['cdn_slow'], slow)}
  {cdn_server(self.ports['cdn_slow'], slow)}
}}
"""

    def start(self) -> Nginx:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(self._config())
        self.process = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url(False)}/api/models/{self.repos[0].repo_id}/revision/main", timeout=1)
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nginx failed to start: {self.process.stderr.read().decode()}")
                time.sleep(0.1)
        raise RuntimeError("nginx did not answer within 10 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure_tools() -> None:
    """nginx and aria2c come from Debian's packages; install them if they are missing."""
    missing = [pkg for tool, pkg in (("nginx", "nginx"), ("aria2c", "aria2"), ("curl", "curl")) if not shutil.which(tool)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} with apt-get", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
