"""What a repository and its files are, independent of where they are served from.

Also the two validators every untrusted string goes through: repo ids and revisions typed by the user, and file paths
sent by a server (DESIGN §7: reject absolute paths, `..`, NUL, and anything that would leave the target folder).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import EntryNotFoundError, ProtocolError, UsageError

REPO_TYPES = ("model", "dataset", "space")

# Same rule as huggingface_hub's validate_repo_id: "name" or "namespace/name", ASCII word chars, '-', '.', 1-96 each.
_REPO_ID = re.compile(r"(\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b", re.ASCII)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_HEX = re.compile(r"[0-9a-f]+")
MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255


@dataclass(frozen=True)
class RepoRef:
    repo_id: str
    repo_type: str = "model"

    @property
    def folder_name(self) -> str:
        """The Hugging Face cache folder name: `models--org--name`."""
        return f"{self.repo_type}s--" + self.repo_id.replace("/", "--")

    @property
    def url_prefix(self) -> str:
        """Prefix of resolve URLs: nothing for models, `datasets/` or `spaces/` otherwise."""
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    @property
    def api_kind(self) -> str:
        return f"{self.repo_type}s"

    def __str__(self) -> str:
        return self.repo_id if self.repo_type == "model" else f"{self.repo_type}s/{self.repo_id}"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a snapshot, as a source describes it.

    Hugging Face gives every file's git `blob_id`, plus `sha256` for LFS files. ModelScope gives `sha256` for every
    file and says which are LFS, but no git ids: for its regular files `blob_id` is None until the bytes are here.
    """

    path: str
    size: int
    blob_id: str | None
    sha256: str | None = None
    lfs: bool = False

    @property
    def is_lfs(self) -> bool:
        return self.lfs

    @property
    def etag(self) -> str | None:
        """The blob's name in the HF cache: the sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 if self.lfs else self.blob_id

    @property
    def content_key(self) -> str:
        """A content hash known before download: names partials and locks, so any source can resume them."""
        key = self.sha256 or self.blob_id
        assert key, "a file needs a sha256 or a git blob id"
        return key

    @property
    def digest(self) -> tuple[str, str]:
        """(algorithm, hex) that the bytes must hash to before they may enter the cache."""
        if self.sha256:
            return ("sha256", self.sha256)
        assert self.blob_id
        return ("git-sha1", self.blob_id)


def lfs_pointer_oid(sha256: str, size: int) -> str:
    """The git blob id of an LFS pointer file: what the hub lists as an LFS file's `oid`."""
    import hashlib

    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A repository at one commit, as resolved by a source."""

    repo: RepoRef
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    gated: bool = False
    private: bool = False

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def parse_repo_id(text: str | None, repo_type: str = "model") -> RepoRef:
    if repo_type not in REPO_TYPES:
        raise UsageError(
            f"Unknown repo type {repo_type!r}.", f"Use --repo-type with one of: {', '.join(REPO_TYPES)}."
        )
    raw = (text or "").strip()
    example = "Qwen/Qwen3-4B" if repo_type == "model" else "HuggingFaceFW/fineweb"
    for prefix in ("https://huggingface.co/", "http://huggingface.co/", "hf.co/", "huggingface.co/"):
        if raw.startswith(prefix):
            raise UsageError(
                f"{raw!r} is a URL, not a repo id.",
                f"Pass just the owner/name part, e.g. hfget download {raw[len(prefix):].split('/tree/')[0]}",
            )
    for plural in ("datasets/", "spaces/", "models/"):
        if raw.startswith(plural):
            raise UsageError(
                f"{raw!r} puts the repo type inside the repo id.",
                f"Pass --repo-type {plural[:-2]} and the id alone: {raw[len(plural):]}",
            )
    if (
        not raw
        or raw.count("/") > 1
        or not _REPO_ID.fullmatch(raw)
        or "--" in raw
        or ".." in raw
        or raw.endswith(".git")
    ):
        raise UsageError(
            f"{raw!r} is not a valid repo id.",
            f"Use the form owner/name (letters, digits, '-', '_', '.'; no '--' or '..'), e.g. {example}.",
        )
    return RepoRef(raw, repo_type)


def validate_revision(revision: str) -> str:
    """A branch, tag, `refs/pr/N` or commit sha typed by the user; must be safe as a cache `refs/` path."""
    rev = revision.strip()
    bad = (
        not rev
        or len(rev) > 255
        or rev.startswith("/")
        or rev.endswith("/")
        or any(part in ("", ".", "..") for part in rev.split("/"))
        or any(ord(c) < 32 or c in "\\\x7f" for c in rev)
    )
    if bad:
        raise UsageError(
            f"{revision!r} is not a valid revision.",
            "Use a branch or tag name (main, v1.0, refs/pr/1) or a 40-character commit sha.",
        )
    return rev


def is_commit_sha(text: str) -> bool:
    return bool(_COMMIT.fullmatch(text))


def check_commit_sha(text: object, where: str) -> str:
    if not isinstance(text, str) or not is_commit_sha(text):
        raise ProtocolError(
            f"{where} answered with a commit id {str(text)[:60]!r} that is not a 40-character hex sha.",
            "The endpoint does not speak the Hugging Face protocol correctly; try another source.",
        )
    return text


def check_hex(text: object, length: int, what: str, where: str) -> str:
    if not isinstance(text, str) or len(text) != length or not _HEX.fullmatch(text):
        raise ProtocolError(
            f"{where} sent a {what} {str(text)[:80]!r} that is not {length} hex characters.",
            "The endpoint does not speak the Hugging Face protocol correctly; try another source.",
        )
    return text


def safe_relpath(path: object, where: str) -> str:
    """Validate a file path sent by a server. Returns it unchanged, or raises ProtocolError."""
    reason = None
    if not isinstance(path, str) or not path:
        reason = "is empty or not a string"
    elif "\x00" in path or any(ord(c) < 32 for c in path):
        reason = "contains control characters"
    elif path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:(/|$)", path):
        # (`a:b.txt` is a name Linux stores and Windows cannot: store/pathnames.py refuses it there, with its name
        # and --exclude as the way around, and ensure_inside would still stop it from naming another drive.)
        reason = "is absolute or uses backslashes"
    elif len(path) > MAX_PATH_LENGTH or any(len(p.encode()) > MAX_SEGMENT_LENGTH for p in path.split("/")):
        reason = "is too long"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        reason = "contains '.', '..' or empty segments"
    elif path.split("/")[0] == ".cache":
        reason = "targets the reserved .cache folder"
    if reason:
        shown = repr(path)[:120]
        raise ProtocolError(
            f"{where} listed a file path {shown} that {reason}; hfget refuses to write it.",
            "This server is broken or hostile. Nothing was written; use another source.",
        )
    return path  # type: ignore[return-value]


def select_files(
    files: Sequence[RemoteFile],
    *,
    names: Iterable[str] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    repo: RepoRef,
    commit: str,
) -> list[RemoteFile]:
    """Explicit file names (each must exist), then huggingface_hub's glob semantics for include/exclude."""
    from huggingface_hub.utils import filter_repo_objects

    by_path = {f.path: f for f in files}
    names = list(dict.fromkeys(names))
    chosen = files
    if names:
        missing = [n for n in names if n not in by_path]
        if missing:
            close = difflib.get_close_matches(missing[0], list(by_path), n=3)
            suggestion = f" Did you mean {', '.join(close)}?" if close else ""
            raise EntryNotFoundError(
                f"{repo} at commit {commit[:10]} has no file {missing[0]!r}"
                + (f" (nor {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
                + f".{suggestion}",
                f"List the files with: hfget download {repo.repo_id} --dry-run"
                + ("" if repo.repo_type == "model" else f" --repo-type {repo.repo_type}"),
            )
        chosen = [by_path[n] for n in names]
    include, exclude = list(include), list(exclude)
    return list(
        filter_repo_objects(
            chosen, allow_patterns=include or None, ignore_patterns=exclude or None, key=lambda f: f.path
        )
    )
