"""`hfget bundle import`: a bundle into the standard cache, every byte verified before it enters.

Three phases, so that a bad bundle never changes the cache:
1. *Check* (nothing written): the tar's structure against its manifest (`archive.scan`), every target path, free
   space. Hostile bundles — paths leaving the cache, links, devices, duplicates, huge or lying sizes — stop here.
2. *Stage*: each blob the cache lacks is streamed into a unique temporary file in the repo's staging folder
   (`.hfget/import/`, same file system as `blobs/`), hashed on the way, and renamed to its final staging name only if
   it matches the manifest. A mismatch (a tampered or damaged bundle) removes everything this run staged. An
   interruption keeps the verified blobs: the next run resumes after them.
3. *Commit*, once every blob checked out: blobs move into `blobs/` by rename, then snapshot links, tree listings, the
   origin record, and refs last — the order downloads use, so readers never see a half-made snapshot.
Revisions already complete in the cache are left as they are: importing twice changes nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Settings
from ..engine.digest import Digest
from ..engine.events import EventSink, FileFinished, FileProgress, FileStarted, TransferFinished, TransferStarted
from ..errors import BundleError, HfgetError
from ..fs import winpaths
from ..fs.fsutil import disk_errors
from ..repo import RepoRef
from ..store.hub_cache import HubCache
from . import archive
from .manifest import BundleBlob, BundleRevision, Manifest


@dataclass
class ImportedRevision:
    repo_id: str
    repo_type: str
    refs: list[str]
    commit: str
    files: int
    size: int
    status: str  # "imported" | "already in cache"
    source: str | None  # where the exporting machine had it from


@dataclass
class ImportResult:
    bundle: str
    cache: str
    revisions: list[ImportedRevision] = field(default_factory=list)
    blobs_written: int = 0  # read from the bundle in this run
    bytes_written: int = 0
    blobs_present: int = 0  # already in the cache
    blobs_resumed: int = 0  # verified by an earlier, interrupted run
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def import_bundle(path: Path, settings: Settings, *, on_event: EventSink | None = None) -> ImportResult:
    started = time.monotonic()
    emit = on_event or (lambda event: None)
    path = Path(path).expanduser().absolute()
    layout = archive.scan(path)
    manifest = layout.manifest
    cache = HubCache(settings.hub_cache.value, disable_symlinks=settings.flag("HF_HUB_DISABLE_SYMLINKS"))
    cache.check_writable()
    _check_targets(cache, manifest, path, settings.flag("HFGET_WINDOWS_NAMES"))
    todo = [r for r in manifest.revisions if not _files_complete(cache, r)]
    plan = _Plan.make(cache, manifest, todo)
    cache.check_free_space(plan.bytes_needed)
    result = ImportResult(str(path), str(cache.root), blobs_present=plan.present, blobs_resumed=len(plan.resumed))
    staging = _Staging(cache, path)
    result.bytes_written = staging.run(layout, plan, emit)
    result.blobs_written = len(plan.to_read)
    blobs = {b.key: b for b in manifest.blobs}
    with disk_errors(cache.root):
        for revision in todo:
            _commit(cache, manifest, revision, blobs)
        for revision in manifest.revisions:
            result.notes.extend(_move_refs(cache, revision))
            status = "imported" if revision in todo else "already in cache"
            result.revisions.append(ImportedRevision(
                revision.repo.repo_id, revision.repo.repo_type, list(revision.refs), revision.commit,
                len(revision.bundled), revision.size, status, (revision.source or {}).get("source")))
        staging.tidy(_repos(manifest))
    result.elapsed = time.monotonic() - started
    return result


# --- phase 1: checks that write nothing -------------------------------------------------------------------------


def _check_targets(cache: HubCache, manifest: Manifest, path: Path, windows_names: bool) -> None:
    """Every snapshot path must stay inside its snapshot folder, as the cache is now (symlinked folders included),
    and be a name this cache can store (Windows' rules, where they apply: fs/winpaths.py)."""
    for revision in manifest.revisions:
        for f in revision.bundled:
            try:
                cache.pointer_path(revision.repo, revision.commit, f.path)
            except HfgetError as error:
                raise BundleError(f"The bundle {path} is refused: {error.message}",
                                  "Nothing was written. Do not use this bundle.") from None
    bad = [(r.repo, f.path, why)
           for r in manifest.revisions for f in r.bundled if (why := winpaths.path_problem(f.path))]
    because = winpaths.rules_apply(cache.root, forced=windows_names) if bad else None
    if because:
        repo, name, why = bad[0]
        raise BundleError(
            f"The bundle {path} holds {len(bad)} file(s) Windows cannot store under their names, such as {name!r} "
            f"of {repo} ({why}); {because}. Nothing was written.",
            f"Export the bundle again without them (hfget bundle export ... --exclude {name!r}).",
        )


def _files_complete(cache: HubCache, revision: BundleRevision) -> bool:
    """Whether the cache already holds every bundled file of the revision (and its listing, when the bundle has it)."""
    if revision.complete_listing and not cache.tree_path(revision.repo, revision.commit).is_file():
        return False
    return all(cache.holds(revision.repo, revision.commit, f.remote()) for f in revision.bundled)


@dataclass
class _Plan:
    """Which blobs to read from the bundle, which an interrupted run already staged, and where each is needed."""

    needs: dict[str, list[RepoRef]]  # blob key -> repos (of revisions to import) that lack it
    to_read: list[str]  # blob keys, in the bundle's order (one sequential pass over the file)
    resumed: set[str]
    present: int
    bytes_needed: int

    @classmethod
    def make(cls, cache: HubCache, manifest: Manifest, todo: list[BundleRevision]) -> _Plan:
        needs: dict[str, list[RepoRef]] = {}
        for revision in todo:
            for f in revision.bundled:
                if not cache.has_blob(revision.repo, f.remote()) and revision.repo not in needs.get(f.key, []):
                    needs.setdefault(f.key, []).append(revision.repo)
        to_read, resumed, needed = set(), set(), 0
        for blob in manifest.blobs:
            repos = needs.get(blob.key)
            if not repos:
                continue
            needed += blob.size * len(repos)
            if _local_copy(cache, manifest, blob) is not None:
                continue  # another repo of this cache holds it: copied at commit, never read from the bundle
            if _size(cache.staging_dir(repos[0]) / blob.key) == blob.size:
                resumed.add(blob.key)
                needed -= blob.size  # already on this disk: it enters blobs/ by rename
            else:
                to_read.add(blob.key)
        present = len({f.key for r in todo for f in r.bundled}) - len(needs)
        return cls(needs, [b.key for b in manifest.blobs if b.key in to_read], resumed, present, needed)


# --- phase 2: staging -------------------------------------------------------------------------------------------


class _Staging:
    """Streams blobs into staging; undoes exactly what it created when the bundle turns out to be bad."""

    def __init__(self, cache: HubCache, bundle: Path) -> None:
        self.cache, self.bundle = cache, bundle
        self.created: list[Path] = []  # files and folders this run created, in order

    def run(self, layout: archive.Layout, plan: _Plan, emit: EventSink) -> int:
        """Stage `plan.to_read`; returns the bytes read from the bundle."""
        members = {m.blob.key: m for m in layout.members}
        total = sum(members[key].blob.size for key in plan.to_read)
        if not plan.to_read:
            return 0
        emit(TransferStarted(files=len(plan.to_read), total_bytes=total, source=self.bundle.name))
        started = time.monotonic()
        try:
            with disk_errors(self.cache.root):
                for key in plan.to_read:
                    self._stage(members[key], plan.needs[key][0], layout.manifest, emit)
        except BundleError:
            self.undo()
            raise
        emit(TransferFinished(downloaded=total, elapsed=time.monotonic() - started))
        return total

    def _stage(self, member: archive.Member, repo: RepoRef, manifest: Manifest, emit: EventSink) -> None:
        blob = member.blob
        revision, first = manifest.files_of(blob.key)[0]
        label = f"{revision.repo.repo_id}/{first.path}"
        folder = self.cache.staging_dir(repo)
        self._mkdir(folder)
        tmp = folder / f"{blob.key}.{secrets.token_hex(4)}.part"  # unique: never another importer's file
        digest = Digest(blob.algo, blob.key, blob.size)
        emit(FileStarted(label, blob.size))
        try:
            with open(tmp, "xb") as out:
                for chunk in archive.read_blob(self.bundle, member):
                    digest.update(chunk)
                    out.write(chunk)
                    emit(FileProgress(label, len(chunk)))
            if not digest.matches():
                raise BundleError(
                    f"The bundle {self.bundle} was altered or damaged after it was made: the bytes of {first.path} "
                    f"({revision.label}) hash to {digest.actual}, not {blob.key} as its manifest says. Nothing was "
                    "imported.",
                    "Copy the bundle again from the machine that made it and compare its sha256sum with the "
                    "original's.",
                )
            os.replace(tmp, folder / blob.key)
        finally:
            tmp.unlink(missing_ok=True)
        self.created.append(folder / blob.key)
        emit(FileFinished(label, blob.size, downloaded=blob.size))

    def _mkdir(self, folder: Path) -> None:
        missing = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            self.created.append(d)

    def undo(self) -> None:
        for path in reversed(self.created):
            try:
                path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
            except OSError:
                pass  # a folder someone else put files in meanwhile stays

    def tidy(self, repos: list[RepoRef]) -> None:
        """Staging folders the commit emptied go (this run's or an interrupted one's); anything else in them (another
        import's files in flight) keeps them."""
        for repo in repos:
            try:
                self.cache.staging_dir(repo).rmdir()
            except OSError:
                pass


# --- phase 3: commit --------------------------------------------------------------------------------------------


def _commit(cache: HubCache, manifest: Manifest, revision: BundleRevision, blobs: dict[str, BundleBlob]) -> None:
    repo = revision.repo
    cache.prepare(repo)
    for f in revision.bundled:
        if not cache.has_blob(repo, f.remote()):
            _place(cache, manifest, repo, blobs[f.key])
        cache.link_snapshot(repo, revision.commit, f.remote())
    if revision.complete_listing:
        cache.write_tree(repo, revision.commit, [f.remote() for f in revision.files])
    origin = revision.source or {}
    cache.record_origin(repo, revision.commit, revision.refs[0] if revision.refs else revision.commit, "bundle",
                        str(origin.get("endpoint") or ""))


def _place(cache: HubCache, manifest: Manifest, repo: RepoRef, blob: BundleBlob) -> None:
    """Into this repo's blobs/: its own staged copy by rename, else a copy of a verified one elsewhere."""
    staged = cache.staging_dir(repo) / blob.key
    if _size(staged) == blob.size:
        cache.place_blob(repo, blob.key, staged)
        return
    source = _local_copy(cache, manifest, blob) or next(
        (p for r in _repos(manifest) if _size(p := cache.staging_dir(r) / blob.key) == blob.size), None)
    if source is None:
        raise BundleError(f"A verified blob ({blob.key}) vanished from the cache's staging folder while importing.",
                          "Another import or a cache clean ran at the same time; run the same command again.")
    tmp = cache.blob_path(repo, blob.key).with_name(f"{blob.key}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(source, tmp)
        cache.place_blob(repo, blob.key, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _move_refs(cache: HubCache, revision: BundleRevision) -> list[str]:
    """Refs last. The bundle's refs win (importing is asking for them); a ref that moves is reported."""
    notes = []
    for ref in revision.refs:
        before = cache.read_ref(revision.repo, ref)
        if before != revision.commit:
            cache.write_ref(revision.repo, ref, revision.commit)
            if before:
                notes.append(f"{revision.repo}: {ref} moved from {before[:10]} to {revision.commit[:10]} "
                             "(the bundle's).")
    return notes


def _local_copy(cache: HubCache, manifest: Manifest, blob: BundleBlob) -> Path | None:
    for repo in _repos(manifest):
        path = cache.blob_path(repo, blob.key)
        if _size(path) == blob.size and not path.is_symlink():
            return path
    return None


def _repos(manifest: Manifest) -> list[RepoRef]:
    return list(dict.fromkeys(r.repo for r in manifest.revisions))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1

