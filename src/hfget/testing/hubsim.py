"""A hub simulator: a real HTTP server on 127.0.0.1 speaking the Hugging Face protocol (DESIGN §3) and, on the same
port, the ModelScope protocol (DESIGN §4: `/api/v1/models/...`).

It serves deterministic repos (see `simrepo`), redirects LFS files to a CDN on a second port (another origin, as on
the real hub), records every request it receives (headers included, so tests can prove where a token went) and has
fault knobs that later tests use: corrupt bodies, connection resets, status bursts, ignored Range, stalls, throttling
and hanging. It is trusted only because the official `huggingface_hub` client downloads from it byte-identically
(tests/test_hubsim_faithful.py).

Run it by hand: `hfget-hubsim --demo` prints the endpoint URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from urllib.parse import quote

from .sim_blocks import BlockCache
from .sim_http import _Handler, _Server
from .sim_modelscope import modelscope_commit  # noqa: F401  (re-exported: tests name ModelScope's commit ids)
from .sim_types import Fault, Override, RequestRecord, SimUser
from .simrepo import SimFile, SimRepo, demo_repos

__all__ = ["BlockCache", "Fault", "HubSimulator", "Override", "RequestRecord", "SimUser", "modelscope_commit"]


class HubSimulator:
    def __init__(
        self,
        repos: list[SimRepo] | None = None,
        *,
        host: str = "127.0.0.1",
        tree_page_size: int = 1000,
        users: list[SimUser] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls  # serve the hub origin over https with this server context (the CDN stays plain http)
        self.repos: dict[tuple[str, str], SimRepo] = {}
        self.users: dict[str, SimUser] = {}
        self.faults: list[Fault] = []
        self.overrides: list[Override] = []
        self.log: list[RequestRecord] = []
        self.tree_page_size = tree_page_size
        self.rate_limit: float = 0.0  # bytes/s per connection for file bodies (0 = unlimited)
        self.cdn_base: str | None = None  # override where LFS redirects point (e.g. a name only a proxy resolves)
        # Signed CDN links as S3/CloudFront and the hub's Xet bridge sign them: valid this many seconds after they are
        # issued (checked when a request starts; a response already flowing continues), and, with link_per_range,
        # only for the byte range of the request that was redirected.
        self.link_ttl: float | None = None
        self.link_per_range = False
        self.block_cache: BlockCache | None = None  # serve bodies the way a caching mirror (olah) does
        self.relative_resolve_redirect = True
        self.serve_modelscope = True  # answer the ModelScope protocol (/api/v1/models/...) too
        self.modelscope_listing_cap = 3000  # modelscope.cn truncates a listing at 3000 entries
        self._secret = b"hubsim-cdn-signing-key"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        for repo in repos or []:
            self.add_repo(repo)
        for user in users or []:
            self.add_user(user)

    # --- setup ----------------------------------------------------------------------------------------------

    def add_repo(self, repo: SimRepo) -> SimRepo:
        self.repos[repo.key] = repo
        return repo

    def add_user(self, user: SimUser) -> SimUser:
        self.users[user.token] = user
        return user

    def add_fault(self, kind: str, match: str = "*", **params) -> Fault:
        fault = Fault(kind=kind, match=match, **params)
        with self._lock:
            self.faults.append(fault)
        return fault

    def override(self, match: str, body, *, status: int = 200, headers: dict[str, str] | None = None,
                 times: int | None = None) -> Override:
        """Answer requests for paths matching `match` with `body` (JSON-encoded unless bytes/str) instead."""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode()
        item = Override(match, body, status, dict(headers or {}), times=times)
        with self._lock:
            self.overrides.append(item)
        return item

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.overrides.clear()

    def repo(self, repo_id: str, repo_type: str = "model") -> SimRepo:
        return self.repos[(repo_type, repo_id)]

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> HubSimulator:
        for i in range(2):  # the hub and its CDN: two origins, as on the real hub
            server = _Server((self.host, 0), _Handler)
            server.sim = self
            if i == 0 and self.tls is not None:
                # Handshake in the request's own thread (on first read), so a client that never completes one
                # cannot block the accept loop.
                server.socket = self.tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._servers[0].server_address[1]

    @property
    def cdn_port(self) -> int:
        return self._servers[1].server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def cdn_url(self) -> str:
        return self.cdn_base or f"http://{self.host}:{self.cdn_port}"

    # --- introspection for tests ----------------------------------------------------------------------------

    def requests_for(self, path_glob: str = "*", method: str | None = None) -> list[RequestRecord]:
        with self._lock:
            records = list(self.log)
        return [r for r in records if fnmatch.fnmatchcase(r.path, path_glob) and (method is None or r.method == method)]

    def body_bytes_served(self, path_glob: str = "*") -> int:
        return sum(r.body_bytes for r in self.requests_for(path_glob))

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # --- helpers used by the handler ------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.log.append(record)

    def _take_fault(self, path: str, where: str, kinds: tuple[str, ...], span: tuple[int, int] | None = None) -> Fault | None:
        """The first matching fault, counted as a hit. With `span` ([start, end) of the body being served), a
        corrupt fault only matches if its offset falls inside."""
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.applies(path, where):
                    if span is not None and fault.kind == "corrupt" and not span[0] <= fault.offset < span[1]:
                        continue
                    if fault.skipped < fault.skip:
                        fault.skipped += 1
                        continue
                    fault.hits += 1
                    return fault
        return None

    def _take_override(self, path: str) -> Override | None:
        with self._lock:
            for item in self.overrides:
                if fnmatch.fnmatchcase(path, item.match) and (item.times is None or item.hits < item.times):
                    item.hits += 1
                    return item
        return None

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._secret, "|".join(parts).encode(), hashlib.sha256).hexdigest()[:32]

    def cdn_link(self, sha256: str, range_header: str | None) -> str:
        """The signed CDN URL a resolve redirects to (`range_header`: the Range of the request being redirected)."""
        expires = f"{time.time() + self.link_ttl:.3f}" if self.link_ttl is not None else "4102444800"
        signed_range = (range_header or "") if self.link_per_range else ""
        query = f"expires={expires}&sig={self._sign(sha256, expires, signed_range)}"
        if self.link_per_range:
            query += f"&range={quote(signed_range)}"
        return f"{self.cdn_url}/cdn/{sha256}?{query}"

    def link_refusal(self, sha256: str, query: dict[str, str], range_header: str | None) -> str | None:
        """Why the CDN refuses a request for `sha256` with this query and Range (S3's words), or None."""
        expires, signed_range = query.get("expires", ""), query.get("range", "")
        if not hmac.compare_digest(query.get("sig", ""), self._sign(sha256, expires, signed_range)):
            return "AccessDenied: signature does not match"
        try:
            if time.time() > float(expires):
                return "AccessDenied: Request has expired"
        except ValueError:
            return "AccessDenied: bad expiry"
        if "range" in query and signed_range != (range_header or ""):
            return "AccessDenied: the signature does not cover this range"
        return None

    def _ms_repo(self, ms_id: str) -> SimRepo | None:
        """The model published on ModelScope under `ms_id` (its `modelscope_id`, else the same id as on HF)."""
        if not self.serve_modelscope:
            return None
        for repo in self.repos.values():
            if repo.repo_type == "model" and (repo.modelscope_id or repo.repo_id) == ms_id:
                return repo
        return None

    def _lfs_file(self, sha256: str) -> SimFile | None:
        for repo in self.repos.values():
            for files in repo.commits.values():
                for f in files.values():
                    if f.lfs and f.content.sha256 == sha256:
                        return f
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hfget.testing", description="Serve hfget's hub simulator on 127.0.0.1.")
    parser.add_argument("--demo", action="store_true", help="serve the demo repos (default)")
    parser.add_argument("--rate", type=float, default=0, help="per-connection byte rate limit for file bodies, MB/s")
    parser.add_argument("--large-mb", type=int, default=24, help="size of the demo model's weights file, MiB")
    parser.add_argument("--url-file", help="write the endpoint URL to this file once serving")
    args = parser.parse_args(argv)
    sim = HubSimulator(demo_repos(args.large_mb))
    sim.rate_limit = args.rate * 1_000_000
    sim.start()
    if args.url_file:
        with open(args.url_file + ".tmp", "w") as fh:
            fh.write(sim.url)
        import os

        os.replace(args.url_file + ".tmp", args.url_file)
    print(f"hub simulator serving at {sim.url} (CDN at {sim.cdn_url}); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
