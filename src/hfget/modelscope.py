"""ModelScope as a source (DESIGN §4): list a model's files, and where each file's bytes are.

Files served by ModelScope land in the Hugging Face cache under the *Hugging Face* id, so `transformers` loads them
offline as usual. The snapshot is named by ModelScope's commit id for the revision (HF `main` = ModelScope
`master`), and `refs/main` points at it; `.hfget/origins.json` records that ModelScope served it. When ModelScope
only takes over the bytes of a snapshot another source resolved, every file is verified against that snapshot's
hashes, so nothing from a different revision can slip in.

The protocol is spoken directly (two GET endpoints) rather than through the `modelscope` library: hfget needs the
listing's hashes and plain URLs for its own transfer engine, and the library's download API hides both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from .engine.digest import lfs_pointer_oid
from .errors import AuthError, HfgetError, ProtocolError, RepoNotFoundError, RevisionNotFoundError, ServerError
from .net.http import HttpClient, TokenGrant
from .net.urls import host_label
from .redact import mask_url
from .repo import RemoteFile, RepoRef, Snapshot, check_hex, is_commit_sha, safe_relpath
from .sources import MAX_FILE_SIZE

LISTING_CAP = 3000  # modelscope.cn silently truncates a listing at this many entries
# Listing requests one resolve may make while walking folders the server truncated: a hostile or broken server
# that nests truncated folders endlessly ends in a clear error instead of an endless walk.
MAX_LISTINGS = 2000

# Organisations whose models ModelScope publishes under another owner. Small on purpose: --modelscope-id covers the
# rest, and a wrong guess costs only a 404 and a fall-through.
ORG_MAP = {"meta-llama": "LLM-Research"}


def modelscope_id(repo: RepoRef, override: str | None = None) -> str:
    if override:
        return override
    owner, _, name = repo.repo_id.partition("/")
    if not name:
        return repo.repo_id
    return f"{ORG_MAP.get(owner, owner)}/{name}"


def hf_id_for(ms_id: str) -> str:
    """The Hugging Face id of a model ModelScope publishes as `ms_id` (LLM-Research/X -> meta-llama/X)."""
    owner, _, name = ms_id.partition("/")
    back = {ms: hf for hf, ms in ORG_MAP.items()}
    return f"{back.get(owner, owner)}/{name}" if name else ms_id


def modelscope_revision(revision: str) -> str:
    return "master" if revision == "main" else revision


@dataclass
class ModelScopeSource:
    endpoint: str
    client: HttpClient
    grant: TokenGrant | None = None
    id_override: str | None = None
    token_note: str | None = None
    name: str = "modelscope"

    @property
    def label(self) -> str:
        return f"{self.name} {mask_url(self.endpoint)}"  # the label is shown: never a URL's password

    def ms_id(self, repo: RepoRef) -> str:
        return modelscope_id(repo, self.id_override)

    # --- metadata -------------------------------------------------------------------------------------------

    def resolve(self, repo: RepoRef, revision: str) -> Snapshot:
        if repo.repo_type != "model":
            raise RepoNotFoundError(
                f"hfget fetches only models from ModelScope, not {repo.repo_type}s.",
                "Use a Hugging Face source (hub or mirror) for datasets and spaces.",
            )
        if is_commit_sha(revision):
            raise RevisionNotFoundError(
                f"{revision[:10]} is a Hugging Face commit; ModelScope's repositories have their own commits.",
                "Ask for a branch or tag (main is ModelScope's master), or use a Hugging Face source.",
            )
        ms_rev = modelscope_revision(revision)
        entries = self._list(repo, ms_rev, budget=[MAX_LISTINGS])
        where = host_label(self.endpoint)
        files: dict[str, RemoteFile] = {}
        commits: list[tuple[int, str]] = []
        for entry in entries:
            file = self._parse(entry, where)
            if file is None:
                continue
            if file.path in files:
                raise ProtocolError(f"{where} listed {file.path!r} twice.", "Use another source.")
            files[file.path] = file
            rev, date = entry.get("Revision"), entry.get("CommittedDate")
            if isinstance(rev, str) and is_commit_sha(rev) and isinstance(date, int):
                commits.append((date, rev))
        if not files:
            raise RepoNotFoundError(f"{self.ms_id(repo)} has no files on ModelScope at {ms_rev}.", None)
        # The newest commit touching any file is the revision's head. Without commit data, a content id stands in.
        commit = max(commits)[1] if commits else _content_id(files.values())
        return Snapshot(repo=repo, revision=revision, commit=commit, files=tuple(files.values()))

    def _list(self, repo: RepoRef, ms_rev: str, *, budget: list[int]) -> list[dict]:
        """The whole listing; where the server truncates a folder's at its cap, walk that folder's subfolders one by
        one (iteratively: a server may nest deeper than Python's recursion limit). `budget` holds the listing
        requests left for this resolve."""
        out: list[dict] = []
        folders: list[str | None] = [None]
        while folders:
            root = folders.pop()
            entries = self._list_page(repo, ms_rev, root, True, budget)
            if len(entries) < LISTING_CAP:
                out.extend(entries)
                continue
            shallow = self._list_page(repo, ms_rev, root, False, budget)
            if len(shallow) >= LISTING_CAP:
                raise ProtocolError(
                    f"The folder {root or '/'} of {self.ms_id(repo)} holds more than {LISTING_CAP} entries, more than "
                    "ModelScope lists at once.",
                    "Use a Hugging Face source for this repo.",
                )
            out.extend(shallow)
            folders.extend(str(e.get("Path")) for e in shallow if isinstance(e, dict) and e.get("Type") == "tree")
        return out

    def _list_page(self, repo: RepoRef, ms_rev: str, root: str | None, recursive: bool, budget: list[int]) -> list[dict]:
        if budget[0] <= 0:
            raise ProtocolError(
                f"{host_label(self.endpoint)} needed more than {MAX_LISTINGS} listing requests for "
                f"{self.ms_id(repo)} (every folder truncated at {LISTING_CAP} entries); hfget stopped walking it.",
                "Use a Hugging Face source for this repo.",
            )
        budget[0] -= 1
        url = (
            f"{self.endpoint}/api/v1/models/{self.ms_id(repo)}/repo/files?Revision={quote(ms_rev, safe='')}"
            f"&Recursive={recursive}" + (f"&Root={quote(root, safe='')}" if root else "")
        )
        response = self.client.request("GET", url, grant=self.grant, headers={"Accept": "application/json"}, stream=True)
        if response.status_code >= 400:
            raise self.error_for(response, repo, ms_rev)
        _, body = self.client.json_body(response)
        data = body.get("Data", body) if isinstance(body, dict) else None
        files = data.get("Files") if isinstance(data, dict) else data
        if not isinstance(files, list):
            raise ProtocolError(
                f"{host_label(self.endpoint)} did not answer the file listing like ModelScope.",
                "Check MODELSCOPE_ENDPOINT (default https://modelscope.cn).",
            )
        return files

    @staticmethod
    def _parse(entry: object, where: str) -> RemoteFile | None:
        if not isinstance(entry, dict):
            raise ProtocolError(f"{where} sent a listing entry hfget cannot read.", "Use another source.")
        path = safe_relpath(entry.get("Path"), where)
        if entry.get("Type") == "tree":
            return None
        size = entry.get("Size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_SIZE:
            raise ProtocolError(f"{where} listed {path!r} with an impossible size {str(size)[:40]!r}.", "Use another source.")
        sha256 = check_hex(entry.get("Sha256"), 64, "sha256", where)
        lfs = entry.get("IsLFS") is True
        blob_id = lfs_pointer_oid(sha256, size) if lfs else None
        return RemoteFile(path=path, size=size, blob_id=blob_id, sha256=sha256, lfs=lfs)

    # --- bytes ----------------------------------------------------------------------------------------------

    def file_location(self, snapshot: Snapshot, file: RemoteFile) -> tuple[str, TokenGrant | None]:
        ms_rev = quote(modelscope_revision(snapshot.revision), safe="")
        url = (
            f"{self.endpoint}/api/v1/models/{self.ms_id(snapshot.repo)}/repo?Revision={ms_rev}"
            f"&FilePath={quote(file.path, safe='')}"
        )
        return url, self.grant

    def check_access(self, snapshot: Snapshot, file: RemoteFile) -> None:
        return None  # ModelScope has no gate of its own to probe

    def error_for(self, response, repo: RepoRef, revision: str) -> HfgetError:
        where = host_label(self.endpoint)
        status = response.status_code
        try:
            _, body = self.client.json_body(response, limit=64_000)
            message = str(body.get("Message", ""))[:200] if isinstance(body, dict) else ""
        except HfgetError:  # an error body that trickles or runs on: the status says enough
            message = ""
        ms_id = self.ms_id(repo)
        if status == 404:
            if "revision" in message.lower():
                return RevisionNotFoundError(
                    f"{ms_id} has no revision {modelscope_revision(revision)!r} on ModelScope ({where}).",
                    "Ask for a branch or tag that exists on ModelScope (main maps to master).",
                )
            return RepoNotFoundError(
                f"{ms_id} was not found on ModelScope ({where}).",
                "If the model has another id on ModelScope, pass --modelscope-id OWNER/NAME.",
            )
        if status in (401, 403):
            return AuthError(
                f"ModelScope ({where}) refused {ms_id} (HTTP {status}).",
                "Set MODELSCOPE_API_TOKEN to a ModelScope access token that can read it.",
            )
        return ServerError(f"ModelScope ({where}) answered HTTP {status} for {ms_id}: {message}.", "Try another source.")


def _content_id(files) -> str:
    h = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()
