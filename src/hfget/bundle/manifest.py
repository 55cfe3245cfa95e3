"""The bundle's manifest: what a bundle holds, and the strict reading of one that may come from anywhere.

A bundle is a plain tar: `hfget-bundle.json` (this manifest) first, then one member `blobs/{key}` per distinct file
content, in the order the manifest lists them. `key` is the name the blob has in the Hugging Face cache: the sha256
of an LFS file, the git blob sha1 of any other, so it is also the hash the bytes must have.

```json
{"format": "hfget-bundle", "format_version": 1, "hfget_version": "0.1.0", "created": "2026-05-01T12:00:00Z",
 "revisions": [{"repo_id": "org/name", "repo_type": "model", "commit": "<40 hex>", "refs": ["main"],
                "listing": "complete",
                "source": {"source": "mirror", "endpoint": "https://hf-mirror.com", "revision": "main", "time": 0},
                "files": [{"path": "config.json", "size": 519, "git_sha1": "<40 hex>", "bundled": true},
                          {"path": "model.safetensors", "size": 1234, "sha256": "<64 hex>", "blob_id": "<40 hex>",
                           "bundled": true}]}],
 "blobs": [{"key": "<hash>", "size": 519}]}
```
`files` is the commit's whole listing (`listing: complete`, from the cache's `trees/{commit}.json`) or, when the
exporting cache had none, the files its snapshot held (`listing: snapshot`); `bundled` says which are in the bundle.

`parse()` trusts nothing: every id, path, hash and size is checked, and every cross-reference (each bundled file's
blob listed once, each blob used, sizes agreeing), before the importer writes a byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from ..engine.digest import lfs_pointer_oid
from ..errors import BundleError, HfgetError
from ..repo import RemoteFile, RepoRef, is_commit_sha, parse_repo_id, safe_relpath, validate_revision

FORMAT = "hfget-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "hfget-bundle.json"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest of ~500k files; a bigger one is refused before it is read
MAX_FILE_SIZE = 1 << 48  # 256 TiB: larger declared sizes are lies
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BundleFile:
    """One file of a commit. `key` names its blob (sha256 for LFS files, git blob sha1 otherwise)."""

    path: str
    size: int
    key: str
    lfs: bool
    blob_id: str  # git's id: of the content, or of the LFS pointer (what trees/{commit}.json records)
    bundled: bool = True

    @property
    def algo(self) -> str:
        return "sha256" if self.lfs else "git-sha1"

    def remote(self) -> RemoteFile:
        return RemoteFile(self.path, self.size, self.blob_id, sha256=self.key if self.lfs else None, lfs=self.lfs)

    @classmethod
    def of(cls, file: RemoteFile, bundled: bool = True) -> BundleFile:
        key = file.etag
        assert key and file.blob_id
        return cls(file.path, file.size, key, file.lfs, file.blob_id, bundled)

    def to_json(self) -> dict:
        data: dict = {"path": self.path, "size": self.size}
        if self.lfs:
            data.update(sha256=self.key, blob_id=self.blob_id)
        else:
            data["git_sha1"] = self.key
        data["bundled"] = self.bundled
        return data


@dataclass(frozen=True)
class BundleRevision:
    repo: RepoRef
    commit: str
    refs: tuple[str, ...]
    files: tuple[BundleFile, ...]
    complete_listing: bool = True
    source: dict | None = None  # the cache's record of where the commit came from (origins.json), if any

    @property
    def bundled(self) -> tuple[BundleFile, ...]:
        return tuple(f for f in self.files if f.bundled)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.bundled)

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.refs[0] if self.refs else self.commit[:10]}"

    def to_json(self) -> dict:
        return {
            "repo_id": self.repo.repo_id,
            "repo_type": self.repo.repo_type,
            "commit": self.commit,
            "refs": list(self.refs),
            "listing": "complete" if self.complete_listing else "snapshot",
            "source": self.source,
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class BundleBlob:
    key: str
    size: int

    @property
    def member(self) -> str:
        return f"blobs/{self.key}"

    @property
    def algo(self) -> str:
        return "sha256" if len(self.key) == 64 else "git-sha1"


@dataclass(frozen=True)
class Manifest:
    revisions: tuple[BundleRevision, ...]
    blobs: tuple[BundleBlob, ...]
    hfget_version: str
    created: str
    users: dict[str, list[tuple[BundleRevision, BundleFile]]] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hfget_version": self.hfget_version,
            "created": self.created,
            "revisions": [r.to_json() for r in self.revisions],
            "blobs": [{"key": b.key, "size": b.size} for b in self.blobs],
        }
        return json.dumps(data, indent=1).encode()

    def files_of(self, key: str) -> list[tuple[BundleRevision, BundleFile]]:
        """Every (revision, file) whose bytes are blob `key`."""
        return self.users.get(key, [])


def build(revisions: list[BundleRevision], hfget_version: str, created: str) -> Manifest:
    """A manifest for these revisions; each distinct blob listed once, in order of first use."""
    blobs: dict[str, BundleBlob] = {}
    users: dict[str, list] = {}
    for revision in revisions:
        for f in revision.bundled:
            blobs.setdefault(f.key, BundleBlob(f.key, f.size))
            users.setdefault(f.key, []).append((revision, f))
    return Manifest(tuple(revisions), tuple(blobs.values()), hfget_version, created, users)


def pax_record(raw: bytes) -> dict[str, str]:
    """The pax header record that carries the manifest's sha256 with it. `comment` is the pax keyword every tar
    reader skips in silence (GNU tar warns about unknown vendor keywords)."""
    return {"comment": f"hfget-manifest-sha256={hashlib.sha256(raw).hexdigest()}"}


# --- reading a manifest that may lie ----------------------------------------------------------------------------


def parse(raw: bytes, where: str) -> Manifest:
    """The manifest in `raw`, checked through; BundleError (naming `where`) on the first thing wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(where, "its manifest is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(where, "its manifest is not an hfget bundle manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{where} is a bundle of format {str(data.get('format_version'))[:20]!r}; this hfget reads format "
            f"{FORMAT_VERSION}.",
            "Import it with the hfget version that made it (or a newer one), or export it again with this one.",
        )
    blobs = _blobs(data.get("blobs"), where)
    revisions = [_revision(r, i, where) for i, r in enumerate(_list(data.get("revisions"), "revisions", where))]
    if not revisions:
        raise _bad(where, "its manifest lists no revision")
    manifest = build(revisions, _text(data.get("hfget_version"), "hfget_version", where),
                     _text(data.get("created"), "created", where))
    _cross_check(manifest, blobs, where)
    return manifest


def _blobs(raw: object, where: str) -> list[BundleBlob]:
    blobs, seen = [], set()
    for i, entry in enumerate(_list(raw, "blobs", where)):
        if not isinstance(entry, dict):
            raise _bad(where, f"blob #{i} of its manifest is not an object")
        key = entry.get("key")
        if not isinstance(key, str) or not (_HEX40.fullmatch(key) or _HEX64.fullmatch(key)):
            raise _bad(where, f"blob #{i} has a key {str(key)[:80]!r} that is not a sha256 or git sha1")
        if key in seen:
            raise _bad(where, f"blob {key} is listed twice")
        seen.add(key)
        blobs.append(BundleBlob(key, _size(entry.get("size"), f"blob {key}", where)))
    return blobs


def _revision(raw: object, index: int, where: str) -> BundleRevision:
    if not isinstance(raw, dict):
        raise _bad(where, f"revision #{index} of its manifest is not an object")
    try:
        repo = parse_repo_id(_text(raw.get("repo_id"), "repo_id", where), _text(raw.get("repo_type"), "repo_type", where))
        refs = tuple(validate_revision(_text(r, "ref", where)) for r in _list(raw.get("refs"), "refs", where))
    except HfgetError as error:
        raise _bad(where, f"revision #{index}: {error.message}") from None
    commit = raw.get("commit")
    if not isinstance(commit, str) or not is_commit_sha(commit):
        raise _bad(where, f"revision #{index} has a commit {str(commit)[:60]!r} that is not a 40-hex sha")
    if len(set(refs)) != len(refs) or any(is_commit_sha(r) for r in refs):
        raise _bad(where, f"{repo}@{commit[:10]} lists a ref twice, or a commit sha as a ref")
    if raw.get("listing") not in ("complete", "snapshot"):
        raise _bad(where, f"{repo}@{commit[:10]} has no valid 'listing'")
    source = raw.get("source")
    if source is not None and not (isinstance(source, dict) and all(isinstance(k, str) for k in source)):
        raise _bad(where, f"{repo}@{commit[:10]} has a malformed 'source'")
    label = f"{repo}@{commit[:10]}"
    files = tuple(_file(f, label, where) for f in _list(raw.get("files"), "files", where))
    _check_paths(files, label, where)
    return BundleRevision(repo, commit, refs, files, raw["listing"] == "complete", source)


def _file(raw: object, label: str, where: str) -> BundleFile:
    if not isinstance(raw, dict):
        raise _bad(where, f"a file of {label} is not an object")
    try:
        path = safe_relpath(raw.get("path"), f"{where} ({label})")
    except HfgetError as error:
        raise BundleError(error.message, "This bundle is damaged or was made to attack; nothing was written.") from None
    size = _size(raw.get("size"), f"{path} of {label}", where)
    sha256, git_sha1, blob_id = raw.get("sha256"), raw.get("git_sha1"), raw.get("blob_id")
    bundled = raw.get("bundled")
    if not isinstance(bundled, bool):
        raise _bad(where, f"{path} of {label} does not say whether it is bundled")
    if sha256 is not None and git_sha1 is None:
        if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
            raise _bad(where, f"{path} of {label} has a sha256 that is not 64 hex characters")
        if blob_id is None:
            blob_id = lfs_pointer_oid(sha256, size)
        if not isinstance(blob_id, str) or not _HEX40.fullmatch(blob_id):
            raise _bad(where, f"{path} of {label} has a blob_id that is not 40 hex characters")
        return BundleFile(path, size, sha256, True, blob_id, bundled)
    if git_sha1 is not None and sha256 is None and blob_id in (None, git_sha1):
        if not isinstance(git_sha1, str) or not _HEX40.fullmatch(git_sha1):
            raise _bad(where, f"{path} of {label} has a git_sha1 that is not 40 hex characters")
        return BundleFile(path, size, git_sha1, False, git_sha1, bundled)
    raise _bad(where, f"{path} of {label} must have exactly one of sha256 and git_sha1")


def _check_paths(files: tuple[BundleFile, ...], label: str, where: str) -> None:
    """No path twice, and no path that is also a folder of another (a file and a folder cannot share a name)."""
    paths = {f.path for f in files}
    if len(paths) != len(files):
        raise _bad(where, f"{label} lists a file path twice")
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in paths:
                raise _bad(where, f"{label} lists {'/'.join(parts[:depth])!r} both as a file and as a folder")


def _cross_check(manifest: Manifest, listed: list[BundleBlob], where: str) -> None:
    if [b.key for b in listed] != [b.key for b in manifest.blobs]:
        used, declared = {b.key for b in manifest.blobs}, {b.key for b in listed}
        odd = sorted(declared - used) or sorted(used - declared)
        if odd:
            raise _bad(where, f"blob {odd[0]} is {'listed but used by no file' if declared - used else 'used but not listed'}")
        raise _bad(where, "its blobs are not listed in the order of first use")
    sizes = {b.key: b.size for b in listed}
    for key, users in manifest.users.items():
        for revision, f in users:
            if f.size != sizes[key]:
                raise _bad(where, f"{f.path} of {revision.label} is {f.size} bytes, but its blob is {sizes[key]}")
    seen: set[tuple[RepoRef, str]] = set()
    refs: set[tuple[RepoRef, str]] = set()
    for revision in manifest.revisions:
        if (revision.repo, revision.commit) in seen:
            raise _bad(where, f"{revision.repo}@{revision.commit[:10]} is listed twice")
        seen.add((revision.repo, revision.commit))
        for ref in revision.refs:
            if (revision.repo, ref) in refs:
                raise _bad(where, f"ref {ref!r} of {revision.repo} points at two commits")
            refs.add((revision.repo, ref))


def _list(raw: object, what: str, where: str) -> list:
    if not isinstance(raw, list):
        raise _bad(where, f"its manifest's {what!r} is not a list")
    return raw


def _text(raw: object, what: str, where: str) -> str:
    if not isinstance(raw, str) or len(raw) > 1024:
        raise _bad(where, f"its manifest's {what!r} is not a short string")
    return raw


def _size(raw: object, what: str, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_FILE_SIZE:
        raise _bad(where, f"{what} has a declared size {str(raw)[:40]!r} that is not a plausible byte count")
    return raw


def _bad(where: str, what: str) -> BundleError:
    return BundleError(
        f"{where} is not a valid hfget bundle: {what}.",
        "This bundle is damaged or was not made by `hfget bundle export`; nothing was written. Copy it again "
        "from the machine that made it (compare its size and sha256sum).",
    )
