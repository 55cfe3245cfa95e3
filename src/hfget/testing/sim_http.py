"""The simulator's HTTP side: a threaded server on 127.0.0.1 and the request handler speaking the Hugging Face
protocol (revision info, paginated trees, paths-info, resolve with the hub's headers and redirects, a CDN with
signed links and Range support, error codes, gated repos, whoami). File bodies and their fault knobs come from
`sim_files`, the ModelScope routes from `sim_modelscope`."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .sim_files import Abort, FileBodies
from .sim_modelscope import ModelScopeRoutes
from .sim_types import KINDS, RequestRecord, SimUser
from .simrepo import SimRepo, tree_entries

if TYPE_CHECKING:
    from .hubsim import HubSimulator


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sim: HubSimulator

    def handle_error(self, request, client_address) -> None:
        # A client that rejects the TLS certificate or hangs up is part of the tests, not a server bug: stay quiet.
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, OSError)):
            super().handle_error(request, client_address)


class _Handler(FileBodies, ModelScopeRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature; keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        # As web servers do on keep-alive connections (nginx's tcp_nodelay): headers and body go out as separate
        # writes, and without this the body of every reused connection's answer waits for the client's delayed ACK.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    @property
    def sim(self) -> HubSimulator:
        return self.server.sim

    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        # Only `POST /api/{type}s/{repo}/paths-info/{rev}` exists (huggingface_hub's get_paths_info; olah calls it
        # upstream for every resolve it proxies). The body is read first so the connection stays usable.
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length > 0 else b""
        self._dispatch()

    # --- dispatch -------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        self.record = RequestRecord(
            method=self.command,
            host=self.headers.get("Host", ""),
            port=self.server.server_address[1],
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            range=self.headers.get("Range"),
        )
        self.sim._record(self.record)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        try:
            if self.sim._take_fault(parts.path, "any", ("hang",)):
                self.sim._stop.wait()
                raise Abort
            override = self.sim._take_override(parts.path)
            if override is not None:
                return self._send(override.status, {"Content-Type": override.content_type, **override.headers},
                                  override.body)
            self._route(segments)
        except Abort:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, seg: list[str]) -> None:
        if self.command == "POST" and "paths-info" not in seg:
            return self._error(405, "Method Not Allowed", None)
        if seg[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if seg == ["openapi", "v1", "users", "me"] and self.sim.serve_modelscope:
            return self._modelscope_whoami()
        if seg[:2] == ["api", "resolve-cache"] and len(seg) >= 6 and seg[2] in KINDS:
            return self._resolve_cache(KINDS[seg[2]], seg[3:])
        if seg[:3] == ["api", "v1", "models"] and len(seg) >= 5:
            return self._modelscope("/".join(seg[3:5]), seg[5:])
        if seg and seg[0] == "api" and len(seg) >= 3 and seg[1] in KINDS:
            return self._api_repo(KINDS[seg[1]], seg[2:])
        if seg and seg[0] == "cdn" and len(seg) == 2:
            return self._cdn(seg[1])
        if "resolve" in seg:
            return self._resolve(seg)
        self._error(404, "Not Found", None)

    # --- responses ------------------------------------------------------------------------------------------

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.record.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            trickle = self.sim._take_fault(self.record.path, "api", ("throttle",))
            if trickle is None:
                self.wfile.write(body)
                self.record.body_bytes += len(body)
                return
            for i in range(len(body)):  # an API answer dribbling out (a throttle fault on its URL path)
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                self.record.body_bytes += 1
                if self.sim._stop.wait(1 / trickle.rate):
                    raise Abort

    def _json(self, data, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, body)

    def _error(self, status: int, message: str, code: str | None, headers: dict[str, str] | None = None) -> None:
        h = {"X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._json({"error": message}, status, h)

    # --- auth -----------------------------------------------------------------------------------------------

    def _user(self) -> SimUser | None | bool:
        """The user behind the Authorization header; None without one; False for an invalid token."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth[7:] if auth.startswith("Bearer ") else ""
        return self.sim.users.get(token, False)

    def _check_repo_access(self, repo: SimRepo | None, repo_id: str, kind: str, for_files: bool) -> bool:
        """Answer the error the hub would, and return False, when the request may not see this repo."""
        user = self._user()
        if user is False:
            self._error(401, "Invalid credentials in Authorization header", None)
            return False
        if repo is None or (repo.private and (user is None or repo.repo_id.split("/")[0] not in (user.name, *user.orgs))):
            if user is None:
                self._error(401, "Repository not found", "RepoNotFound")
            else:
                self._error(404, "Repository not found", "RepoNotFound")
            return False
        if repo.gated and for_files:
            if user is None:
                self._error(
                    401,
                    f"Access to {kind} {repo_id} is restricted. You must have access to it and be authenticated to "
                    "access it. Please log in.",
                    "GatedRepo",
                )
                return False
            if repo.repo_id not in user.gated_access:
                self._error(
                    403,
                    f"Access to {kind} {repo_id} is restricted and you are not in the authorized list. Visit "
                    f"https://huggingface.co/{repo_id} to ask for access.",
                    "GatedRepo",
                )
                return False
        return True

    def _whoami(self) -> None:
        user = self._user()
        if not user:
            return self._error(401, "Invalid credentials in Authorization header", None)
        self._json(
            {
                "type": "user",
                "id": hashlib.md5(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.name.title(),
                "orgs": [{"type": "org", "name": o, "roleInOrg": "read"} for o in user.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "sim", "role": user.role}},
            }
        )

    # --- API: repo info and tree ----------------------------------------------------------------------------

    def _split_repo(self, rest: list[str], keywords: tuple[str, ...]) -> tuple[str, str | None, list[str]]:
        """`org/name/keyword/...` or `name/keyword/...` -> (repo_id, keyword, remainder)."""
        for n in (2, 1):
            if len(rest) > n and rest[n] in keywords:
                return "/".join(rest[:n]), rest[n], rest[n + 1 :]
        return "/".join(rest[:2]), None, rest[2:]

    def _api_repo(self, repo_type: str, rest: list[str]) -> None:
        repo_id, keyword, tail = self._split_repo(rest, ("revision", "tree", "paths-info"))
        repo = self.sim.repos.get((repo_type, repo_id))
        if not self._check_repo_access(repo, repo_id, repo_type, for_files=False):
            return
        if keyword is None and not tail:
            return self._repo_info(repo, "main")
        if keyword == "revision" and tail:
            return self._repo_info(repo, "/".join(tail))
        if keyword == "tree" and tail:
            return self._tree(repo, tail[0], "/".join(tail[1:]))
        if keyword == "paths-info" and len(tail) == 1 and self.command == "POST":
            return self._paths_info(repo, tail[0])
        self._error(404, "Not Found", None)

    def _commit_or_error(self, repo: SimRepo, revision: str) -> str | None:
        commit = repo.resolve(revision)
        if commit is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_info(self, repo: SimRepo, revision: str) -> None:
        commit = self._commit_or_error(repo, revision)
        if commit is None:
            return
        files = repo.commits[commit]
        blobs = self.query.get("blobs", "").lower() == "true"
        siblings = []
        for f in sorted(files.values(), key=lambda f: f.path):
            sib: dict = {"rfilename": f.path}
            if blobs:
                sib.update({"size": f.size, "blobId": f.blob_id})
                if f.lfs:
                    sib["lfs"] = {"sha256": f.content.sha256, "size": f.size, "pointerSize": len(f.pointer)}
            siblings.append(sib)
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        self._json(info)

    def _tree(self, repo: SimRepo, revision: str, path: str) -> None:
        commit = self._commit_or_error(repo, revision)
        if commit is None:
            return
        recursive = self.query.get("recursive", "").lower() == "true"
        entries = tree_entries(repo.commits[commit], path, recursive)
        if entries is None:
            return self._error(404, f"{path} does not exist on {revision}", "EntryNotFound")
        start = int(base64.urlsafe_b64decode(self.query["cursor"]).decode()) if "cursor" in self.query else 0
        page = entries[start : start + self.sim.tree_page_size]
        headers = {}
        if start + self.sim.tree_page_size < len(entries):
            cursor = base64.urlsafe_b64encode(str(start + self.sim.tree_page_size).encode()).decode()
            base = urlsplit(self.path).path
            host = self.headers.get("Host") or f"{self.sim.host}:{self.sim.port}"
            params = f"recursive={str(recursive).lower()}&expand=false&cursor={cursor}"
            headers["Link"] = f'<http://{host}{base}?{params}>; rel="next"'
        self._json(page, headers=headers)

    def _paths_info(self, repo: SimRepo, revision: str) -> None:
        """The tree entries of the requested paths (`paths` repeated in a form body, or JSON `{"paths": [...]}`);
        unknown paths are left out, as on the hub."""
        commit = self._commit_or_error(repo, revision)
        if commit is None:
            return
        body = getattr(self, "body", b"")
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                paths = json.loads(body or b"{}").get("paths") or []
            except (ValueError, AttributeError):
                return self._error(400, "Invalid JSON body", None)
            paths = [paths] if isinstance(paths, str) else list(paths)
        else:
            paths = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("paths", [])
        files = repo.commits[commit]
        out = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                out.append(files[path].tree_entry())
            elif path and any(p.startswith(path + "/") for p in files):
                out.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path})
        self._json(out)

    # --- file downloads -------------------------------------------------------------------------------------

    def _resolve(self, seg: list[str]) -> None:
        i = seg.index("resolve")
        head, tail = seg[:i], seg[i + 1 :]
        repo_type = "model"
        if head and head[0] in ("datasets", "spaces"):
            repo_type, head = KINDS[head[0]], head[1:]
        repo_id = "/".join(head)
        if len(tail) < 2 or not repo_id:
            return self._error(404, "Not Found", None)
        revision, path = tail[0], "/".join(tail[1:])
        repo = self.sim.repos.get((repo_type, repo_id))
        if not self._check_repo_access(repo, repo_id, repo_type, for_files=True):
            return
        commit = self._commit_or_error(repo, revision)
        if commit is None:
            return
        f = repo.commits[commit].get(path)
        if f is None:
            return self._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
        if self._status_fault(path, "resolve"):
            return
        base = {"X-Repo-Commit": commit, "Access-Control-Expose-Headers": "X-Repo-Commit,X-Linked-Etag,X-Linked-Size"}
        if f.lfs:
            sha = f.content.sha256
            location = self.sim.cdn_link(sha, self.headers.get("Range"))
            return self._send(
                302,
                {
                    **base,
                    "Location": location,
                    "ETag": f'"{f.blob_id}"',
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(f.size),
                },
            )
        if self.sim.relative_resolve_redirect:
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            target = (
                f"/api/resolve-cache/{repo_type}s/{repo_id}/{commit}/{quote(path)}"
                f"?%2F{quote(prefix + repo_id, safe='')}%2Fresolve%2F{quote(revision, safe='')}%2F{quote(path, safe='')}="
                f"&etag=%22{f.blob_id}%22"
            )
            return self._send(307, {**base, "Location": target, "ETag": f'"{f.blob_id}"'})
        self._serve_body(f, path, "resolve", {**base, "ETag": f'"{f.blob_id}"'})

    def _resolve_cache(self, repo_type: str, rest: list[str]) -> None:
        # rest = org/name/commit/path... or name/commit/path...
        for n in (2, 1):
            repo = self.sim.repos.get((repo_type, "/".join(rest[:n])))
            if repo is not None and len(rest) > n + 1 and rest[n] in repo.commits:
                break
        else:
            return self._error(404, "Not Found", None)
        if not self._check_repo_access(repo, repo.repo_id, repo_type, for_files=True):
            return
        commit, path = rest[n], "/".join(rest[n + 1 :])
        f = repo.commits[commit].get(path)
        if f is None or f.lfs:
            return self._error(404, "Entry not found", "EntryNotFound")
        if self._status_fault(path, "resolve"):
            return
        self._serve_body(f, path, "resolve", {"X-Repo-Commit": commit, "ETag": f'"{f.blob_id}"'})

    def _cdn(self, sha: str) -> None:
        refusal = self.sim.link_refusal(sha, self.query, self.headers.get("Range"))
        if refusal is not None:
            return self._send(403, {"Content-Type": "text/plain"}, refusal.encode())
        f = self.sim._lfs_file(sha)
        if f is None:
            return self._send(404, {"Content-Type": "text/plain"}, b"NoSuchKey")
        if self._status_fault(f.path, "cdn"):
            return
        self._serve_body(f, f.path, "cdn", {"ETag": f'"{sha}"', "Content-Disposition": _disposition(f.path.split("/")[-1])})


def _disposition(name: str) -> str:
    """Content-Disposition for any file name: headers are latin-1, so a name beyond ASCII goes in RFC 5987's
    `filename*` (as S3-style CDNs send it), with an ASCII stand-in in `filename`."""
    fallback = name.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}; filename=\"{fallback}\";"
