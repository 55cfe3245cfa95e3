"""Sources: where a snapshot's metadata and bytes come from.

A `Source` resolves a repo at a revision to a `Snapshot` (commit + files with sizes and hashes) and tells the
transfer engine where each file's bytes are. `HubSource` speaks the Hugging Face protocol (DESIGN §3) to any
endpoint: the official hub or a mirror. Server answers are untrusted: every path, size and hash is validated before
anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from .errors import (
    AuthError,
    EntryNotFoundError,
    GatedRepoError,
    HfgetError,
    InvalidTokenError,
    ProtocolError,
    RepoNotFoundError,
    RevisionNotFoundError,
    ServerError,
    UnreachableRedirect,
)
from .net.http import HttpClient, TokenGrant
from .net.urls import host_label, origin_of
from .redact import mask_url
from .repo import RemoteFile, RepoRef, Snapshot, check_commit_sha, check_hex, safe_relpath

MAX_FILE_SIZE = 10**14  # 100 TB: more than any real file; beyond it a listing is hostile or broken
MAX_TREE_PAGES = 10_000


_LINK = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*"?([^";,]*)"?""", re.IGNORECASE)


def _next_page(link_header: str | None) -> str | None:
    """The `rel="next"` URL of a Link header (GitHub-style pagination, as the hub sends it)."""
    # `<url>; rel="next", <url>; rel="last"`: a URL may hold commas, so links are split at the angle brackets.
    for url, params in _LINK.findall(link_header or ""):
        rel = _REL.search(params)
        if rel and "next" in rel.group(1).split():
            return url.strip()
    return None


class Source(Protocol):
    name: str  # short id: "hub", "mirror", "modelscope"
    label: str  # what the user sees: "mirror https://hf-mirror.com"
    token_note: str | None

    def resolve(self, repo: RepoRef, revision: str) -> Snapshot: ...

    def file_location(self, snapshot: Snapshot, file: RemoteFile) -> tuple[str, TokenGrant | None]: ...

    def check_access(self, snapshot: Snapshot, file: RemoteFile) -> None: ...

    def error_for(self, response, repo: RepoRef, revision: str) -> HfgetError: ...


@dataclass
class HubSource:
    """Any endpoint speaking the Hugging Face hub protocol."""

    name: str
    endpoint: str
    client: HttpClient
    grant: TokenGrant | None = None
    token_note: str | None = None  # e.g. "token withheld: not huggingface.co"
    has_token: bool = False  # the user has a token, whether or not it is sent here

    @property
    def label(self) -> str:
        return f"{self.name} {mask_url(self.endpoint)}"  # the label is shown: never a URL's password

    # --- metadata -------------------------------------------------------------------------------------------

    def resolve(self, repo: RepoRef, revision: str) -> Snapshot:
        info = self._get_json(
            f"{self.endpoint}/api/{repo.api_kind}/{repo.repo_id}/revision/{quote(revision, safe='')}",
            repo,
            revision,
        )
        if not isinstance(info, dict):
            raise self._not_hub(f"revision info for {repo}")
        commit = check_commit_sha(info.get("sha"), host_label(self.endpoint))
        files = tuple(self._list_tree(repo, revision, commit))
        return Snapshot(
            repo=repo, revision=revision, commit=commit, files=files, gated=bool(info.get("gated")),
            private=info.get("private") is True,
        )

    def check_access(self, snapshot: Snapshot, file: RemoteFile) -> None:
        """HEAD one file so a gate or a bad token is reported before any transfer starts."""
        url, grant = self.file_location(snapshot, file)
        response = self.client.request("HEAD", url, grant=grant, follow_redirects=False)
        response.close()
        if response.status_code >= 400:
            raise self.error_for(response, snapshot.repo, snapshot.revision)

    def _list_tree(self, repo: RepoRef, revision: str, commit: str) -> Iterator[RemoteFile]:
        url: str | None = f"{self.endpoint}/api/{repo.api_kind}/{repo.repo_id}/tree/{commit}?recursive=true&expand=false"
        seen_urls: set[str] = set()
        seen_paths: set[str] = set()
        where = host_label(self.endpoint)
        pages = empty_pages = 0
        while url:
            # A loop shows as a URL seen before, or (cursor games) pages that bring nothing new.
            if url in seen_urls or pages >= MAX_TREE_PAGES or empty_pages > 3:
                raise ProtocolError(
                    f"{where} sent a tree listing for {repo} that never ends (pagination loops).",
                    "The server is broken or hostile; use another source.",
                )
            if origin_of(url) != origin_of(self.endpoint):
                raise ProtocolError(
                    f"{where} pointed the next page of the file listing at another host ({host_label(url)}).",
                    "hfget only follows pagination on the endpoint's own host; use another source.",
                )
            seen_urls.add(url)
            pages += 1
            response = self._get(url, repo, revision)
            entries = self._json(response, f"file listing of {repo}")
            if not isinstance(entries, list):
                raise self._not_hub(f"file listing of {repo}")
            empty_pages = empty_pages + 1 if not entries else 0
            for entry in entries:
                file = self._parse_entry(entry, where)
                if file is None:
                    continue
                if file.path in seen_paths:
                    raise ProtocolError(
                        f"{where} listed the file {file.path!r} of {repo} twice.",
                        "The server is broken or hostile; use another source.",
                    )
                seen_paths.add(file.path)
                yield file
            url = _next_page(response.headers.get("Link"))

    @staticmethod
    def _parse_entry(entry: object, where: str) -> RemoteFile | None:
        if not isinstance(entry, dict) or entry.get("type") not in ("file", "directory"):
            raise ProtocolError(
                f"{where} sent a file listing entry hfget cannot read: {str(entry)[:120]}.",
                "The server is broken or hostile; use another source.",
            )
        path = safe_relpath(entry.get("path"), where)
        if entry["type"] == "directory":
            return None
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_SIZE:
            raise ProtocolError(
                f"{where} listed {path!r} with an impossible size {str(size)[:40]!r}.",
                "The server is broken or hostile; use another source.",
            )
        blob_id = check_hex(entry.get("oid"), 40, "git object id", where)
        sha256 = None
        lfs = entry.get("lfs")
        if lfs is not None:
            if not isinstance(lfs, dict):
                raise ProtocolError(f"{where} sent malformed LFS data for {path!r}.", "Use another source.")
            sha256 = check_hex(lfs.get("oid"), 64, "sha256", where)
            if lfs.get("size", size) != size:
                raise ProtocolError(
                    f"{where} listed {path!r} with two different sizes ({size} and {lfs.get('size')}).",
                    "The server is broken or hostile; use another source.",
                )
        return RemoteFile(path=path, size=size, blob_id=blob_id, sha256=sha256, lfs=sha256 is not None)

    def file_location(self, snapshot: Snapshot, file: RemoteFile) -> tuple[str, TokenGrant | None]:
        # Always by commit, never by branch: every file of one download comes from the same commit.
        url = f"{self.endpoint}/{snapshot.repo.url_prefix}{snapshot.repo.repo_id}/resolve/{snapshot.commit}/{quote(file.path)}"
        return url, self.grant

    # --- HTTP with hub error semantics ----------------------------------------------------------------------

    def _get(self, url: str, repo: RepoRef, revision: str):
        # Streamed, so the body is read under the client's stall and size rules (a trickling or endless answer).
        response = self.client.request("GET", url, grant=self.grant, headers={"Accept": "application/json"}, stream=True)
        if response.status_code >= 400:
            response.close()
            raise self.error_for(response, repo, revision)
        return response

    def _get_json(self, url: str, repo: RepoRef, revision: str):
        return self._json(self._get(url, repo, revision), f"revision info for {repo}")

    def _json(self, response, what: str):
        ok, data = self.client.json_body(response)
        if not ok:
            raise self._not_hub(what, response.headers.get("Content-Type", "?"))
        return data

    def _not_hub(self, what: str, content_type: str | None = None) -> ProtocolError:
        got = f" (got {content_type})" if content_type else ""
        return ProtocolError(
            f"{host_label(self.endpoint)} did not answer the {what} like a Hugging Face hub{got}.",
            "Check that the endpoint URL is a hub or a hub mirror (e.g. https://hf-mirror.com); a captive portal or "
            "a web proxy may be answering instead.",
        )

    def error_for(self, response, repo: RepoRef, revision: str) -> HfgetError:
        """The hfget error for a hub error response (X-Error-Code first, then the status)."""
        code = response.headers.get("X-Error-Code")
        server_message = response.headers.get("X-Error-Message", "")
        status = response.status_code
        where = host_label(self.endpoint)
        type_flag = "" if repo.repo_type == "model" else f" --repo-type {repo.repo_type}"
        if code == "GatedRepo":
            return self._gated_error(repo, status)
        if code == "RevisionNotFound":
            return RevisionNotFoundError(
                f"{repo} has no revision {revision!r} on {where}.",
                "Use a branch, tag or commit that exists; leave out --revision for the default branch (main).",
            )
        if code == "EntryNotFound":
            return EntryNotFoundError(
                f"A file of {repo} at {revision!r} was not found on {where}.",
                f"List the files with: hfget download {repo.repo_id}{type_flag} --dry-run",
            )
        if status == 401 and code != "RepoNotFound" and "credentials" in server_message.lower():
            return InvalidTokenError(
                f"{where} rejected your HF token as invalid or expired.",
                "Create a new read token at https://huggingface.co/settings/tokens and set HF_TOKEN (in .env or the "
                "environment), or pass --token.",
            )
        if code == "RepoNotFound" or status in (401, 404):
            if not self.has_token:
                private = " If it is private, set HF_TOKEN to a token that can read it."
            else:
                private = f" {self.token_note}" if self.token_note else ""
            return RepoNotFoundError(
                f"{repo} does not exist on {where}, or it is private.",
                "Check the spelling (ids are case-sensitive: owner/name); for a dataset or a space add --repo-type."
                + private,
            )
        if status == 403:
            return AuthError(
                f"{where} refused access to {repo} (HTTP 403). {server_message}".strip(),
                "Your token may lack the needed permission; check it with hfget token-check.",
            )
        if status == 429 or status >= 500:
            return ServerError(
                f"{where} kept failing with HTTP {status} for {repo}, after retries.",
                "The server is overloaded or down; try again later or use another source (--endpoint).",
            )
        return ServerError(
            f"{where} answered HTTP {status} for {repo}: {server_message or response.reason}.",
            "The endpoint may not be a Hugging Face hub; check --endpoint / HF_ENDPOINT.",
        )

    def _gated_error(self, repo: RepoRef, status: int) -> GatedRepoError:
        page = f"https://huggingface.co/{repo.url_prefix}{repo.repo_id}"
        if self.grant is None and self.has_token:
            return GatedRepoError(
                f"{repo} is gated, and your token was not sent to {host_label(self.endpoint)}.",
                self.token_note or f"Accept the licence at {page}, then pass --allow-token-to-mirror.",
            )
        if self.grant is None:
            return GatedRepoError(
                f"{repo} is gated: you must accept its licence and download with a token.",
                f"Accept the conditions at {page}, create a read token at https://huggingface.co/settings/tokens, "
                "then set HF_TOKEN=hf_... in .env or the environment (or pass --token).",
            )
        return GatedRepoError(
            f"{repo} is gated and your token's account has not been granted access yet (HTTP {status}).",
            f"Request access at {page}; once it is approved, run the same command again.",
        )


def unreachable_redirect(source: Source, path: str, error: UnreachableRedirect) -> UnreachableRedirect:
    """What it means that `source` sends `path` to a host this machine cannot reach, and what will work instead.

    Mirrors have at times passed the hub's own CDN host through (hf-mirror.com and `cas-bridge.xethub.hf.co`),
    blocked exactly where people need a mirror: "use a mirror" is then no advice."""
    target = host_label(error.target_url)
    where = f"{source.name} {host_label(source.endpoint)}"
    if source.name == "hub":
        fix = (f"Use a mirror (--endpoint https://hf-mirror.com), ModelScope (--source modelscope), or a proxy that "
               f"reaches {target} (--proxy socks5h://HOST:PORT).")
    elif source.name == "modelscope":
        fix = f"Use a Hugging Face mirror (--endpoint URL), or a proxy that reaches {target} (--proxy socks5h://HOST:PORT)."
    else:
        fix = (f"This source cannot serve the file from here: use another mirror (--endpoint URL), ModelScope "
               f"(--source modelscope), or a proxy that reaches {target} (--proxy socks5h://HOST:PORT).")
    return UnreachableRedirect(
        f"{where} redirected {path} to host {target}, {error.why}.", fix,
        origin_url=error.origin_url, target_url=error.target_url, cause=error.cause, why=error.why,
    )
