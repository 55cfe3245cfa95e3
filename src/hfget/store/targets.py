"""Where downloaded files land: the Hugging Face cache, or a plain folder (`--local-dir`).

Both give the download orchestrator the same operations: is a file already there, where does its partial live and
what an earlier run left to resume from, put a verified file in place, and finish the snapshot (links, tree
listing, refs) once files are in. `begin()` binds the target to the resolved snapshot without writing anything;
`hold()` keeps the cache's `cache clean` away from the first write (`prepare()`) to the last.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

from ..engine.digest import Digest, git_blob_sha1
from ..engine.resume_state import pending_bytes, state_path
from ..errors import CacheBusyError
from ..fs import winpaths
from ..fs.fsutil import TEMP_ROOM, atomic_write, disk_errors, ensure_inside
from ..fs.locks import new_owner
from ..fs.repo_lock import RepoBusy, RepoLock
from ..repo import RemoteFile, RepoRef, Snapshot
from . import partials
from ..fs.softlock import BREAK_ROOM
from .hub_cache import COPY_SUFFIX, HubCache

CLEAN_WAIT = 600.0  # how long a download waits for a `cache clean` of its repo to finish


class Target(Protocol):
    root: Path

    def check_writable(self) -> None: ...
    def check_free_space(self, needed: int) -> None: ...
    def begin(self, snapshot: Snapshot) -> None: ...
    def prepare(self) -> None: ...
    def is_present(self, file: RemoteFile) -> bool: ...
    def partial_path(self, file: RemoteFile) -> Path: ...
    def lock_path(self, file: RemoteFile) -> Path: ...
    def adopter(self, file: RemoteFile) -> Callable[[], None] | None: ...
    def resumable(self, file: RemoteFile) -> int: ...
    def space_needed(self, file: RemoteFile) -> int: ...
    def hold(self) -> AbstractContextManager: ...
    def sweep(self, files: Iterable[RemoteFile]) -> None: ...
    def names_folder(self) -> Path: ...
    def deliver(self, file: RemoteFile, verified: Path) -> RemoteFile: ...
    def finish(self, files: Iterable[RemoteFile], complete: bool, source: tuple[str, str]) -> Path: ...
    def location(self) -> Path: ...


class CacheTarget:
    """The standard cache: blobs by etag, snapshot symlinks, tree listing and refs, as huggingface_hub writes."""

    def __init__(self, cache: HubCache, repo: RepoRef) -> None:
        self.cache, self.repo, self.root = cache, repo, cache.root
        self.snapshot: Snapshot | None = None
        self.owner = new_owner()  # this download: names its partials and its marker in the repo lock
        self._found: dict[str, list[partials.Leftover]] | None = None  # leftovers of earlier runs, by content key
        self._linked: set[str] = set()  # paths linked as their blob landed (set.add is atomic: no lock needed)
        self._partials: dict[str, Path] = {}  # content key -> this download's partial (asked 4 times per file)

    def check_writable(self) -> None:
        self.cache.check_writable()

    def check_free_space(self, needed: int) -> None:
        self.cache.check_free_space(needed)

    def begin(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        if winpaths.too_long(*self.path_lengths(snapshot)):  # (off Windows `extended` changes nothing)
            self.cache.root = self.root = Path(winpaths.extended(self.cache.root))

    def path_lengths(self, snapshot: Snapshot) -> tuple[list[int], list[int]]:
        """Lengths of the longest paths this download may create, files with the temporary suffixes hfget adds to
        their names, and folders: Windows needs the extended form when one passes MAX_PATH."""
        snap = len(str(self.cache.snapshot_dir(self.repo, snapshot.commit))) + 1
        key = max((len(f.content_key) for f in snapshot.files), default=64)
        partial = len(str(state_path(partials.hfget_partial(self._blobs, "k" * key, self.owner))))
        lock = len(str(self._locks)) + 1 + key + len(".lock") + BREAK_ROOM
        files = [snap + len(f.path) + len(COPY_SUFFIX) for f in snapshot.files] + [partial, lock]
        files += [len(str(self.cache.ref_path(self.repo, snapshot.revision))) + TEMP_ROOM,
                  len(str(self.cache.tree_path(self.repo, snapshot.commit))) + TEMP_ROOM]
        folders = [snap + f.path.rfind("/") for f in snapshot.files]
        return files, folders

    def prepare(self) -> None:
        self.cache.prepare(self.repo)

    def _pointer(self, file: RemoteFile) -> Path:
        assert self.snapshot is not None
        return self.cache.pointer_path(self.repo, self.snapshot.commit, file.path)

    def is_present(self, file: RemoteFile) -> bool:
        """Nothing to download: the blob is there (or, in a cache without symlinks, this snapshot holds the file or
        another revision has a copy to copy from)."""
        if file.etag is not None:
            if self.cache.has_blob(self.repo, file):
                return True
            # (Nothing cached yet: no need to probe for symlinks, so a dry run writes nothing. Once probed, the
            # answer alone decides: asked for every file, twice.)
            if self.cache.symlinks_probed and self.cache.symlinks:
                return False
            if not (self.cache.repo_dir(self.repo) / "snapshots").is_dir() or self.cache.symlinks:
                return False
            assert self.snapshot is not None
            return (self.cache.holds(self.repo, self.snapshot.commit, file)
                    or self.cache.local_copy(self.repo, file, self.snapshot.commit) is not None)
        # No git id from this source (a ModelScope regular file): present if this snapshot already links it.
        try:
            return self._pointer(file).stat().st_size == file.size
        except OSError:
            return False

    def partial_path(self, file: RemoteFile) -> Path:
        path = self._partials.get(file.content_key)
        if path is None:
            path = self._partials[file.content_key] = partials.hfget_partial(self._blobs, file.content_key, self.owner)
        return path

    def lock_path(self, file: RemoteFile) -> Path:
        return self.cache.lock_path(self.repo, file.content_key)

    @property
    def _blobs(self) -> Path:
        return self.cache.blob_dir(self.repo)  # (asked several times per file: the cache keeps the path)

    @property
    def _locks(self) -> Path:
        return self.cache.lock_dir(self.repo)

    def _leftovers(self, file: RemoteFile) -> list[partials.Leftover]:
        """What earlier runs (of any program) left of `file`, as found by one listing of blobs/ per download. A
        leftover that appears later is not resumed (a lost chance, never a wrong byte)."""
        if self._found is None:
            self._found = partials.by_key(self._blobs)
        return self._found.get(file.content_key, [])

    def adopter(self, file: RemoteFile) -> Callable[[], None]:
        """What the engine calls under the blob's lock: bring what earlier runs (any program's) left to our partial."""
        mine, identity = self.partial_path(file), (file.size, *file.digest)
        return lambda: partials.adopt(self._leftovers(file), self._locks, mine, identity)

    def resumable(self, file: RemoteFile) -> int:
        return partials.resumable(self._leftovers(file), self._locks, self.partial_path(file),
                                  (file.size, *file.digest))[0]

    def space_needed(self, file: RemoteFile) -> int:
        """Bytes this run adds to the disk for `file`: what is missing, plus a copy of another program's prefix."""
        done, copied = partials.resumable(self._leftovers(file), self._locks, self.partial_path(file),
                                          (file.size, *file.digest))
        return file.size if copied else file.size - done

    def hold(self) -> AbstractContextManager:
        """The repo lock, shared: a `cache clean` of this repo waits for us, and we for it (up to CLEAN_WAIT)."""
        lock = RepoLock(self._locks, self.owner)
        try:
            with disk_errors(self.root):
                lock.acquire_shared(CLEAN_WAIT)
        except RepoBusy as busy:
            raise CacheBusyError(
                f"{self.repo} is being cleaned from the cache right now ({busy.check.detail or busy.check.path}); "
                f"waited {CLEAN_WAIT:.0f} s for it to finish.",
                "Run the download again once `hfget cache clean` is done (or stop it).",
            ) from None
        return lock

    def sweep(self, files: Iterable[RemoteFile]) -> None:
        """Once blobs are in place (whoever placed them), our own leftovers of them go (README: shared caches)."""
        # A file this run placed is there (a clean waits for the repo lock we hold): no stat for each of thousands.
        keys = {f.content_key for f in files if f.etag is not None and (f.path in self._linked or self.is_present(f))}
        with disk_errors(self.root):
            partials.sweep(self._blobs, self._locks, keys)

    def names_folder(self) -> Path:
        assert self.snapshot is not None
        return self.cache.snapshot_dir(self.repo, self.snapshot.commit)

    def deliver(self, file: RemoteFile, verified: Path) -> RemoteFile:
        if file.etag is None:  # name the blob as the hub would: by its git blob id
            file = dataclasses.replace(file, blob_id=git_blob_sha1(verified))
        assert self.snapshot is not None
        if not self.cache.symlinks:  # the file itself goes into the snapshot, as huggingface_hub does there
            self.cache.place_in_snapshot(self.repo, self.snapshot.commit, file, verified)
            self._linked.add(file.path)
            return file
        self.cache.place_blob(self.repo, file.etag, verified)
        # Link at once, on the transfer thread: for repos of many small files the links (one file system operation
        # each) then overlap with the transfers instead of queuing up at the end. A snapshot link to a verified blob
        # is harmless before the ref moves: readers follow refs, and the tree listing is written in finish().
        self.cache.link_snapshot(self.repo, self.snapshot.commit, file)
        self._linked.add(file.path)
        return file

    def _resolved(self, file: RemoteFile) -> RemoteFile:
        """Fill in the git id of a file that was already linked by an earlier run."""
        if file.blob_id is not None:
            return file
        pointer = self._pointer(file)
        blob = os.path.basename(os.readlink(pointer)) if pointer.is_symlink() else git_blob_sha1(pointer)
        return dataclasses.replace(file, blob_id=blob)

    def finish(self, files: Iterable[RemoteFile], complete: bool, source: tuple[str, str]) -> Path:
        """`source` is (name, endpoint) of the source that served this snapshot, recorded for `cache list`."""
        snapshot = self.snapshot
        assert snapshot is not None
        landed = {f.path: self._resolved(f) for f in files}
        for file in landed.values():
            if file.path not in self._linked:
                self.cache.link_snapshot(self.repo, snapshot.commit, file)
        # The tree listing covers the whole commit (as huggingface_hub stores it), so an offline snapshot_download
        # can tell which files are missing. Files whose git id is still unknown are left out of it.
        listing = [landed.get(f.path, f) for f in snapshot.files]
        self.cache.write_tree(self.repo, snapshot.commit, [f for f in listing if f.blob_id])
        self.cache.record_origin(self.repo, snapshot.commit, snapshot.revision, *source)
        if complete:  # refs last: until then the ref still names the previous, complete snapshot
            self.cache.write_ref(self.repo, snapshot.revision, snapshot.commit)
        return self.location()

    def location(self) -> Path:
        assert self.snapshot is not None
        return Path(winpaths.plain(self.cache.snapshot_dir(self.repo, self.snapshot.commit)))


class LocalDirTarget:
    """A plain folder with the files at their repo paths; bookkeeping in `.cache/huggingface/download/`, in
    huggingface_hub's local-dir format (commit, etag, timestamp per file), so both tools recognise the files."""

    def __init__(self, root: Path, repo: RepoRef) -> None:
        self.root = Path(root).expanduser().absolute()
        self.repo = repo
        self.meta = self.root / ".cache" / "huggingface" / "download"
        self.commit = ""

    def check_writable(self) -> None:
        HubCache(self.root).check_writable()  # same "nearest existing parent" rule

    def check_free_space(self, needed: int) -> None:
        HubCache(self.root).check_free_space(needed)

    def begin(self, snapshot: Snapshot) -> None:
        self.commit = snapshot.commit
        if winpaths.too_long(*self.path_lengths(snapshot)):  # (off Windows `extended` changes nothing)
            self.root = Path(winpaths.extended(self.root))
            self.meta = self.root / ".cache" / "huggingface" / "download"

    def path_lengths(self, snapshot: Snapshot) -> tuple[list[int], list[int]]:
        """As CacheTarget.path_lengths: the files, their metadata records and partials, and their folders."""
        root, meta = len(str(self.root)) + 1, len(str(self.meta)) + 1
        key = max((len(f.content_key) for f in snapshot.files), default=64)
        files = [root + len(f.path) for f in snapshot.files]
        files += [meta + len(f.path) + len(".metadata") + TEMP_ROOM for f in snapshot.files]
        files.append(meta + key + len(".incomplete.state.json"))
        folders = [meta + f.path.rfind("/") for f in snapshot.files]
        return files, folders

    def prepare(self) -> None:
        with disk_errors(self.root):
            self.meta.mkdir(parents=True, exist_ok=True)
            gitignore = self.root / ".cache" / "huggingface" / ".gitignore"
            if not gitignore.exists():
                atomic_write(gitignore, "*")

    def _dest(self, file: RemoteFile) -> Path:
        dest = self.root.joinpath(*file.path.split("/"))
        ensure_inside(dest, self.root, file.path)
        return dest

    def _metadata_path(self, file: RemoteFile) -> Path:
        return self.meta.joinpath(*file.path.split("/")).with_name(file.path.split("/")[-1] + ".metadata")

    def is_present(self, file: RemoteFile) -> bool:
        dest = self._dest(file)
        try:
            stat = dest.stat()
        except OSError:
            return False
        if stat.st_size != file.size:
            return False
        try:
            lines = self._metadata_path(file).read_text().splitlines()
            # The recorded hash matches and the file was not modified after the record was written (the record is
            # always written after the file is in place).
            if len(lines) >= 3 and lines[1] in (file.etag, file.content_key) and stat.st_mtime <= float(lines[2]):
                return True
        except (OSError, ValueError):
            pass
        # A file of the right size without our record (say, from hfd.sh): keep it if its hash is right.
        return Digest.of_file(dest, *file.digest, file.size)

    def partial_path(self, file: RemoteFile) -> Path:
        # huggingface_hub names its local-dir partials `{hash}.{etag}.incomplete`: it never opens this one.
        return self.meta / f"{file.content_key}.incomplete"

    def lock_path(self, file: RemoteFile) -> Path:
        return self.meta / f"{file.content_key}.lock"

    def adopter(self, file: RemoteFile) -> None:
        return None  # one partial per file, resumed in place

    def resumable(self, file: RemoteFile) -> int:
        return file.size - pending_bytes(self.partial_path(file), file.size, *file.digest)

    def space_needed(self, file: RemoteFile) -> int:
        return pending_bytes(self.partial_path(file), file.size, *file.digest)

    def hold(self) -> AbstractContextManager:
        return nullcontext()  # a folder of the user's: no `cache clean` works in it

    def sweep(self, files: Iterable[RemoteFile]) -> None:
        return None

    def names_folder(self) -> Path:
        return self.root

    def deliver(self, file: RemoteFile, verified: Path) -> RemoteFile:
        dest = self._dest(file)
        with disk_errors(self.root):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(verified, dest)
            self._record(file)
        return file

    def _record(self, file: RemoteFile) -> None:
        meta = self._metadata_path(file)
        meta.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(meta, f"{self.commit}\n{file.etag or file.content_key}\n{time.time()}\n")

    def finish(self, files: Iterable[RemoteFile], complete: bool, source: tuple[str, str]) -> Path:
        with disk_errors(self.root):
            for file in files:  # files found present get their record refreshed to this commit
                self._record(file)
        return self.location()

    def location(self) -> Path:
        return Path(winpaths.plain(self.root))
