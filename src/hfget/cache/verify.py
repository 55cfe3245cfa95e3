"""`hfget cache verify`: re-hash what the caches hold against what it must be.

Hugging Face cache: every file of every snapshot asked for is hashed (sha256 for LFS files, git's blob sha1 for the
rest) and compared with, first, the commit's tree listing recorded in the cache (`trees/{commit}.json`, written by
hfget and by huggingface_hub 2.x); else the name of the blob the snapshot entry links to (huggingface_hub names each
blob by exactly that hash); else, online, the listing a source serves for that commit. ModelScope cache: against
ModelScope's listing of the revision (its `Sha256`), online only, as the `modelscope` client records none.

A file is `ok`, `corrupt` (size or hash differs), `missing` (its snapshot entry leads to a blob that is gone) or
`unverified` (nothing to compare with). Each distinct blob is read once; several are hashed at a time, and since
hashlib releases the GIL on large buffers, that uses every core (huggingface_hub's `hf cache verify` hashes one file
after another). Returns data (`VerifyReport`); `--repair` is in flows/repair.py.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..engine.digest import content_hasher
from ..repo import RepoRef
from ..store.cached import cached_commits, recorded_tree, snapshot_entries
from ..store.hub_cache import HubCache
from .model import HF, CachedRepo

OK, CORRUPT, MISSING, UNVERIFIED, REPAIRED = "ok", "corrupt", "missing", "unverified", "repaired"
READ = 8 << 20
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass
class FileCheck:
    path: str  # in the repo
    status: str = UNVERIFIED
    algorithm: str | None = None  # "sha256" | "git-sha1"
    expected: str | None = None
    size: int | None = None  # the size it must have, when the reference says
    actual: str | None = None
    detail: str = ""
    entry: str = ""  # the snapshot entry (a link into blobs/, or a plain file)
    location: str = ""  # the bytes read: the blob, or the entry itself

    @property
    def bad(self) -> bool:
        return self.status in (CORRUPT, MISSING)


@dataclass
class SnapshotCheck:
    cache: str  # HF | MS
    kind: str
    repo_id: str
    revision: str  # the commit (Hugging Face) or the revision folder (ModelScope)
    refs: tuple[str, ...]
    path: str
    reference: str = "none"  # what the hashes were compared with
    files: list[FileCheck] = field(default_factory=list)
    note: str | None = None

    @property
    def bad(self) -> list[FileCheck]:
        return [f for f in self.files if f.bad]

    @property
    def repo(self) -> RepoRef:
        return RepoRef(self.repo_id, self.kind)

    def expect(self, listed: dict, reference: str) -> None:
        """Take a source's listing ({path: RemoteFile}) for the files nothing local vouches for."""
        for item in self.files:
            known = listed.get(item.path)
            if item.expected is None and known is not None:
                item.algorithm, item.expected = known.digest
                item.size = known.size
        self.reference = reference


@dataclass
class VerifyReport:
    snapshots: list[SnapshotCheck]
    bytes_hashed: int = 0
    elapsed: float = 0.0
    workers: int = 1
    repair: object | None = None  # flows.repair.RepairResult, when --repair ran

    @property
    def bad(self) -> list[tuple[SnapshotCheck, FileCheck]]:
        return [(s, f) for s in self.snapshots for f in s.bad]

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(ok=self.ok, bad=[{"cache": s.cache, "repo_id": s.repo_id, "revision": s.revision,
                                      "path": f.path, "status": f.status} for s, f in self.bad])
        data["repair"] = self.repair.to_dict() if self.repair is not None else None
        return data


@dataclass(frozen=True)
class HashStarted:
    files: int
    total_bytes: int


@dataclass(frozen=True)
class Hashed:
    delta: int


@dataclass(frozen=True)
class HashFinished:
    pass


HashSink = Callable[[object], None]


def verify(
    repos: Sequence[CachedRepo],
    *,
    revision: str | None = None,
    ask: Callable[[SnapshotCheck], None] | None = None,
    workers: int | None = None,
    on_event: HashSink | None = None,
) -> VerifyReport:
    """Check every snapshot of `repos` (only those `revision` names: a commit prefix, a ref or a folder name).
    `ask(snapshot)` fills in, from a source, what nothing local vouches for (None: offline)."""
    started = time.monotonic()
    emit = on_event or (lambda event: None)
    snapshots: list[SnapshotCheck] = []
    for repo in repos:
        for name, refs, path in _revisions(repo):
            if revision is None or _names(name, refs, revision):
                snapshots.append(_plan(repo, name, refs, path))
    for snapshot in snapshots:
        if ask is not None and any(f.expected is None and f.status != MISSING for f in snapshot.files):
            ask(snapshot)
    workers = workers or min(8, (os.cpu_count() or 2))
    hashed = hash_files([f for s in snapshots for f in s.files], workers, emit)
    return VerifyReport(snapshots, hashed, time.monotonic() - started, workers)


def _revisions(repo: CachedRepo) -> list[tuple[str, tuple[str, ...], Path]]:
    """(name, refs, folder) of each cached revision. For the Hugging Face cache, read from the folders: the scanner
    skips the revisions of a repo it rejects, and a blob gone is exactly what verification is for."""
    if repo.cache == HF:
        return cached_commits(HubCache(repo.path.parent), RepoRef(repo.repo_id, repo.kind))
    return [(rev.name, rev.refs, rev.path) for rev in repo.revisions]


def _names(name: str, refs: tuple[str, ...], revision: str) -> bool:
    return revision in refs or name == revision or (len(revision) >= 7 and name.startswith(revision))


# --- what each file must be -------------------------------------------------------------------------------------


def _plan(repo: CachedRepo, name: str, refs: tuple[str, ...], path: Path) -> SnapshotCheck:
    check = SnapshotCheck(repo.cache, repo.kind, repo.repo_id, name, refs, str(path))
    entries = {p: e for p, e in snapshot_entries(path).items() if not any(s.startswith(".") for s in p.split("/"))}
    listing = None
    if repo.cache == HF:
        listing = recorded_tree(HubCache(repo.path.parent), check.repo, name)
        check.reference = "recorded tree" if listing is not None else "blob names"
    for path, entry in sorted(entries.items()):
        item = FileCheck(path, entry=str(entry), location=str(entry))
        if entry.is_symlink():
            item.location = os.path.normpath(os.path.join(os.path.dirname(entry), os.readlink(entry)))
            if not os.path.exists(item.location):
                item.status, item.detail = MISSING, f"its blob {os.path.basename(item.location)} is gone"
        known = listing.get(path) if listing else None
        if known is not None:
            item.algorithm, item.expected = known.digest
            item.size = known.size
        elif repo.cache == HF and entry.is_symlink() and _HEX.fullmatch(os.path.basename(item.location)):
            name = os.path.basename(item.location)
            item.algorithm, item.expected = ("sha256" if len(name) == 64 else "git-sha1"), name
        check.files.append(item)
    return check


# --- hashing ------------------------------------------------------------------------------------------------------


def hash_files(files: Sequence[FileCheck], workers: int, emit: HashSink) -> int:
    """Hash every file that has something to compare with, each distinct location once; set status and actual."""
    todo = [f for f in files if f.status != MISSING and f.expected is not None]
    for item in files:
        if item.status != MISSING and item.expected is None:
            item.detail = item.detail or "nothing to compare with (no recorded listing, and no source asked)"
    jobs: dict[tuple[str, str], list[FileCheck]] = {}
    for item in todo:
        jobs.setdefault((os.path.realpath(item.location), item.algorithm or ""), []).append(item)
    sizes = {key: _size(key[0]) for key in jobs}
    emit(HashStarted(len(jobs), sum(sizes.values())))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hfget-hash") as pool:
        # Largest first: a big blob started last would leave the other workers idle at the end.
        ordered = sorted(jobs, key=lambda key: -sizes[key])
        for key, actual in zip(ordered, pool.map(lambda key: _digest(key[0], key[1], emit), ordered)):
            for item in jobs[key]:
                _judge(item, actual, sizes[key])
    emit(HashFinished())
    return sum(sizes.values())


def _judge(item: FileCheck, actual: str | None, size: int) -> None:
    item.actual = actual
    if actual is None:
        item.status, item.detail = MISSING, "it cannot be read"
    elif item.size is not None and size != item.size:
        item.status, item.detail = CORRUPT, f"{size} bytes, {item.size} expected"
    elif actual != item.expected:
        item.status, item.detail = CORRUPT, f"{item.algorithm} {actual[:12]}…, {item.expected[:12]}… expected"
    else:
        item.status = OK


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _digest(path: str, algorithm: str, emit: HashSink) -> str | None:
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            h = content_hasher(algorithm, size)
            buffer = bytearray(READ)
            view = memoryview(buffer)
            while n := fh.readinto(buffer):
                h.update(view[:n])
                emit(Hashed(n))
    except OSError:
        return None
    return h.hexdigest()


def recheck(files: Sequence[FileCheck]) -> None:
    """Hash these again (after a repair): a file whose entry is back gets its blob re-read."""
    for item in files:
        entry = Path(item.entry)
        item.status, item.detail, item.actual = UNVERIFIED, "", None
        if entry.is_symlink():
            item.location = os.path.normpath(os.path.join(os.path.dirname(entry), os.readlink(entry)))
        if not os.path.exists(item.location):
            item.status, item.detail = MISSING, "still not there"
    hash_files(list(files), min(8, os.cpu_count() or 2), lambda event: None)
