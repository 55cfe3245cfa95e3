"""What a repository and its files are, independent of where they are served from.

Also the two validators every untrusted string goes through: repo ids and revisions typed by the user, and file paths
sent by a server (DESIGN §7: reject absolute paths, `..`, NUL, and anything that would leave the target folder).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from .errors import EntryNotFoundError, ProtocolError, UsageError
from .redact import mask_url

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
    """A bare repo id (`owner/name`), validated like huggingface_hub does. URLs and other forms people paste go
    through `repo_spec.parse_repo_spec`, which ends here."""
    if repo_type not in REPO_TYPES:
        raise UsageError(
            f"Unknown repo type {repo_type!r}.", f"Use --repo-type with one of: {', '.join(REPO_TYPES)}."
        )
    raw = (text or "").strip()
    example = "Qwen/Qwen3-4B" if repo_type == "model" else "HuggingFaceFW/fineweb"
    if (
        not raw
        or raw.count("/") > 1
        or not _REPO_ID.fullmatch(raw)
        or "--" in raw
        or ".." in raw
        or raw.endswith(".git")
    ):
        raise UsageError(
            f"{mask_url(raw)!r} is not a valid repo id.",
            f"Use the form owner/name (letters, digits, '-', '_', '.'; no '--' or '..'), e.g. {example}.",
        )
    return RepoRef(raw, repo_type)


@dataclass(frozen=True)
class RepoSpec:
    """What a repo argument names, in any form people paste: `owner/name`, a huggingface.co, hf-mirror.com or
    modelscope.cn page URL, `hf://`, with a revision, a file or a folder in it."""

    repo: RepoRef
    revision: str | None = None  # from the URL (/tree/REV, /blob/REV/..., hf://...@REV)
    file: str | None = None  # /blob/REV/FILE, /resolve/REV/FILE, hf://.../FILE
    folder: str | None = None  # /tree/REV/FOLDER
    endpoint: str | None = None  # the hub mirror the URL is on (not huggingface.co, not ModelScope)
    modelscope_id: str | None = None  # a modelscope.cn URL: the model's id there
    note: str | None = None  # one line saying what was understood, when it was not a bare owner/name


OFFICIAL_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
_PATH_KEYWORDS = ("tree", "blob", "resolve", "raw", "commit", "commits", "discussions", "edit", "settings",
                  "viewer", "community")
_TYPE_SEGMENTS = {"models": "model", "datasets": "dataset", "spaces": "space"}


def parse_repo_spec(text: str | None, repo_type: str | None = None) -> RepoSpec:
    """Understand a repo argument as typed or pasted. `repo_type` is --repo-type (None: not given)."""
    raw = (text or "").strip().strip("\"'<>").strip()
    url_type, segments, endpoint, modelscope = _segments(raw)
    kind = url_type or repo_type or "model"
    if url_type and repo_type and url_type != repo_type:
        raise UsageError(f"{mask_url(raw)!r} names a {url_type}, but --repo-type says {repo_type}.",
                         f"Leave out --repo-type, or pass --repo-type {url_type}.")
    if not segments or segments == [""]:
        raise UsageError(f"{mask_url(raw)!r} does not name a repo.", "Pass owner/name, e.g. Qwen/Qwen3-4B, or the "
                         "URL of the repo's page.")
    id_length = 1 if len(segments) == 1 or segments[1] in _PATH_KEYWORDS else 2
    repo_id, rest = "/".join(segments[:id_length]), segments[id_length:]
    revision = file = folder = ignored = None
    if raw.startswith("hf://"):
        repo_id, at, revision = repo_id.partition("@")
        revision, file = (revision if at else None), "/".join(rest) or None
    elif rest and rest[0] in ("tree", "blob", "resolve", "raw", "commit") and len(rest) > 1:
        # A revision with slashes (refs/pr/1) is escaped in the hub's URLs; typed by hand it may not be.
        taken = 3 if rest[1] == "refs" and len(rest) > 3 else 1
        revision, tail = "/".join(rest[1 : 1 + taken]), "/".join(rest[1 + taken :]) or None
        if rest[0] == "tree":
            folder = tail
        elif rest[0] != "commit":
            file = tail
    elif modelscope and rest[:2] == ["file", "view"] and len(rest) > 2:
        revision, file = rest[2], "/".join(rest[3:]) or None
    elif rest and (endpoint or modelscope or "://" in raw or rest[0] in _PATH_KEYWORDS):
        ignored = "/".join(rest)  # another page of the repo (discussions, files, settings): the repo is what counts
    elif rest:  # typed, not pasted: the id itself is malformed (a/b/c, foo//bar)
        parse_repo_id("/".join(segments), kind)
    if modelscope and revision == "master":
        revision = "main"  # ModelScope's default branch is hfget's main
    repo = parse_repo_id(repo_id, kind)
    if modelscope and kind != "model":
        raise UsageError(f"{mask_url(raw)!r} is a ModelScope {kind}; hfget fetches only models from ModelScope.",
                         "Download it with the modelscope client, or pass the Hugging Face id of the dataset.")
    spec = RepoSpec(repo, revision and validate_revision(revision), file, folder, endpoint,
                    repo.repo_id if modelscope else None)
    if raw == repo.repo_id:
        return spec
    return replace(spec, note=_understood(raw, spec, ignored))


def _segments(raw: str) -> tuple[str | None, list[str], str | None, bool]:
    """(repo type from the text, the path segments from the repo id on, mirror endpoint, is ModelScope)."""
    if raw.startswith("hf://"):
        path, endpoint, modelscope = raw[5:], None, False
    elif "://" in raw or raw.split("/", 1)[0].lower() in (*OFFICIAL_HOSTS, "hf-mirror.com", "modelscope.cn",
                                                          "www.modelscope.cn"):
        try:
            parts = urlsplit(raw if "://" in raw else "https://" + raw)
            host, _ = (parts.hostname or "").lower(), parts.port  # .port raises on a malformed port
        except ValueError:
            raise UsageError(f"{mask_url(raw)!r} is not a URL hfget can read (its host or port is malformed).",
                             "Pass owner/name, e.g. Qwen/Qwen3-4B.") from None
        if parts.scheme not in ("http", "https") or not host:
            raise UsageError(f"{mask_url(raw)!r} is not an http(s) URL of a repo.", "Pass owner/name, e.g. "
                             "Qwen/Qwen3-4B, or the URL of the repo's page on huggingface.co.")
        modelscope = host == "modelscope.cn" or host.endswith(".modelscope.cn")
        endpoint = None if modelscope or host in OFFICIAL_HOSTS else f"{parts.scheme}://{parts.netloc}"
        path = parts.path
    else:  # typed: only a trailing slash is forgiven, so that foo//bar stays the malformed id it is
        segments = raw.rstrip("/").split("/")
        url_type = _TYPE_SEGMENTS.get(segments[0]) if len(segments) > 1 else None
        return url_type, segments[1:] if url_type else segments, None, False
    segments = [unquote(s) for s in path.split("/") if s]
    url_type = None
    if segments and segments[0] in _TYPE_SEGMENTS:
        url_type = _TYPE_SEGMENTS[segments.pop(0)]
    return url_type, segments, endpoint, modelscope


def _understood(raw: str, spec: RepoSpec, ignored: str | None) -> str:
    what = str(spec.repo) if spec.repo.repo_type == "model" else f"the {spec.repo.repo_type} {spec.repo.repo_id}"
    parts = [f"Understood {mask_url(raw)} as {what}"]
    if spec.revision:
        parts.append(f"revision {spec.revision}")
    if spec.file:
        parts.append(f"file {spec.file}")
    if spec.folder:
        parts.append(f"the files in {spec.folder}/")
    if spec.modelscope_id:
        parts.append("from ModelScope first")
    elif spec.endpoint:
        parts.append(f"from the mirror {mask_url(spec.endpoint)} (used as --endpoint unless you give one)")
    rest = f" (the rest of the URL, /{ignored}, does not change what is downloaded)" if ignored else ""
    return ", ".join(parts) + rest + "."


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
