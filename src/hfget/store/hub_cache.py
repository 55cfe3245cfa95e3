"""The Hugging Face cache layout (DESIGN §5): the only module that knows where blobs, snapshots and refs live.

    {root}/models--org--name/blobs/{etag}                 verified bytes, placed by atomic rename
    {root}/models--org--name/blobs/{key}.hfget-{owner}.partial[.state.json]
                                                          hfget's resumable partial (partials.py: why this name)
    {root}/models--org--name/snapshots/{commit}/{path}    relative symlink ../../blobs/{etag}; where the cache
                                                           cannot hold symlinks, the file itself (see below)
    {root}/models--org--name/refs/{revision}              the commit sha, written atomically, last
    {root}/models--org--name/trees/{commit}.json          the tree listing, as huggingface_hub 2.x writes it, so an
                                                           offline snapshot_download can tell the snapshot is complete
    {root}/.locks/models--org--name/{etag}.lock           the same lock file huggingface_hub takes for a blob
    {root}/.locks/models--org--name/repo.hfget-lock, *.hfget   hfget's repo lock and its markers (fs/repo_lock.py)
    {root}/models--org--name/.hfget/origins.json          hfget's own record: which source served each commit
                                                           (huggingface_hub's scanner ignores it)

Writes happen in an order that leaves a readable cache at every step: blobs, then snapshot links, then the tree
listing, then refs.

Caches without symlinks (Windows without Developer Mode, FAT/exFAT, some shares; or HF_HUB_DISABLE_SYMLINKS=1),
exactly as huggingface_hub keeps them: probed once per HubCache (fs/symlinks.py); a newly downloaded file is moved
from its partial straight to `snapshots/{commit}/{path}` (no blob stays behind), and a file another revision already
has — in `blobs/`, or as a plain file in another snapshot, found through that commit's tree listing — is copied.
huggingface_hub would download the second revision's copy again; its readers cannot tell the difference.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import CachePermissionError, DiskFullError
from ..fs.fsutil import atomic_write, chmod_like_umask, current_umask, disk_errors, ensure_inside, permission_error
from ..fs.symlinks import symlinks_work
from ..repo import RemoteFile, RepoRef, is_commit_sha

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n"
)
TREE_FORMAT_VERSION = 1
COPY_SUFFIX = ".hfget-tmp"  # a snapshot file's name while its copy is written


class HubCache:
    def __init__(self, root: Path | str, *, disable_symlinks: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self._symlinks: bool | None = False if disable_symlinks else None
        self._trees: dict[str, dict] = {}  # repo folder -> where its snapshots hold which content (local_copy)
        self._dirs: dict[tuple[str, str], Path] = {}  # (folder name, subfolder) -> path: asked ~10 times per file
        self._umask: int | None = None  # read once per HubCache (one per call): /proc per file cost 6 system calls

    @property
    def umask(self) -> int:
        if self._umask is None:
            self._umask = current_umask()
        return self._umask

    @property
    def symlinks_probed(self) -> bool:
        return self._symlinks is not None

    @property
    def symlinks(self) -> bool:
        """Whether snapshots link into blobs/ here (probed at the first write that needs to know)."""
        if self._symlinks is None:
            self._symlinks = symlinks_work(self.root)
        return self._symlinks

    # --- paths ----------------------------------------------------------------------------------------------

    def repo_dir(self, repo: RepoRef) -> Path:
        return self._dir(repo, "")

    def _dir(self, repo: RepoRef, sub: str) -> Path:
        key = (repo.folder_name, sub)
        path = self._dirs.get(key)
        if path is None:
            path = self._dirs[key] = (self.root / key[0] / sub) if sub else self.root / key[0]
        return path

    def blob_dir(self, repo: RepoRef) -> Path:
        return self._dir(repo, "blobs")

    def blob_path(self, repo: RepoRef, etag: str) -> Path:
        return self._dir(repo, "blobs") / etag

    def lock_dir(self, repo: RepoRef) -> Path:
        path = self._dirs.get((repo.folder_name, ".locks"))
        if path is None:
            path = self._dirs[(repo.folder_name, ".locks")] = self.root / ".locks" / repo.folder_name
        return path

    def lock_path(self, repo: RepoRef, etag: str) -> Path:
        return self.lock_dir(repo) / f"{etag}.lock"

    def snapshot_dir(self, repo: RepoRef, commit: str) -> Path:
        return self._dir(repo, "snapshots") / commit

    def pointer_path(self, repo: RepoRef, commit: str, path: str) -> Path:
        target = self.snapshot_dir(repo, commit).joinpath(*path.split("/"))
        ensure_inside(target, self.snapshot_dir(repo, commit), path)
        return target

    def ref_path(self, repo: RepoRef, revision: str) -> Path:
        return self.repo_dir(repo).joinpath("refs", *revision.split("/"))

    # --- reading --------------------------------------------------------------------------------------------

    def has_blob(self, repo: RepoRef, file: RemoteFile) -> bool:
        """A blob counts only if its size matches; a wrong-sized blob (someone else's corruption) is re-fetched."""
        try:
            return self.blob_path(repo, file.etag).stat().st_size == file.size
        except OSError:
            return False

    def read_ref(self, repo: RepoRef, revision: str) -> str | None:
        try:
            return self.ref_path(repo, revision).read_text().strip() or None
        except OSError:
            return None

    # --- reading whole snapshots (bundle export, import) ---------------------------------------------------

    def cached_commit(self, repo: RepoRef, revision: str) -> str | None:
        """The commit `revision` names here: a commit sha with a snapshot folder, or what refs/{revision} holds."""
        commit = revision if is_commit_sha(revision) else self.read_ref(repo, revision)
        if commit and is_commit_sha(commit) and self.snapshot_dir(repo, commit).is_dir():
            return commit
        return None

    def tree_path(self, repo: RepoRef, commit: str) -> Path:
        return self.repo_dir(repo) / "trees" / f"{commit}.json"

    def read_tree(self, repo: RepoRef, commit: str) -> list[RemoteFile] | None:
        """The commit's whole listing from trees/{commit}.json (hfget and huggingface_hub 2.x write it), or None."""
        try:
            data = json.loads(self.tree_path(repo, commit).read_text(encoding="utf-8"))
            if data.get("format_version") != TREE_FORMAT_VERSION:
                return None
            files = []
            for path, info in data["files"].items():
                sha256 = info.get("lfs_sha256")
                files.append(RemoteFile(path, int(info["size"]), str(info["blob_id"]), sha256=sha256, lfs=bool(sha256)))
            return files
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def snapshot_paths(self, repo: RepoRef, commit: str) -> list[str]:
        """Repo paths of the files a snapshot folder holds (links and plain copies), sorted."""
        base = self.snapshot_dir(repo, commit)
        found = []
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            found.extend(Path(folder, f).relative_to(base).as_posix() for f in files)
        return sorted(found)

    def snapshot_file(self, repo: RepoRef, commit: str, path: str) -> tuple[str | None, Path] | None:
        """What snapshots/{commit}/{path} holds: (blob name, the blob) for a link into blobs/, (None, the file)
        for a plain copy (where symlinks fail), None when absent or its blob is missing. Links are read, never
        followed: the bytes are always taken from this repo's blobs/ folder."""
        pointer = self.pointer_path(repo, commit, path)
        try:
            if pointer.is_symlink():
                name = os.path.basename(os.readlink(pointer))
                blob = self.repo_dir(repo) / "blobs" / name
                return (name, blob) if name and not blob.is_symlink() and blob.is_file() else None
            return (None, pointer) if pointer.is_file() else None
        except OSError:
            return None

    def holds(self, repo: RepoRef, commit: str, file: RemoteFile) -> bool:
        """Whether snapshots/{commit}/{file.path} holds this file: a link to its blob, or a copy, of its size."""
        held = self.snapshot_file(repo, commit, file.path)
        try:
            return held is not None and held[0] in (None, file.etag) and held[1].stat().st_size == file.size
        except OSError:
            return False

    def local_copy(self, repo: RepoRef, file: RemoteFile, commit: str = "") -> Path | None:
        """Where this cache already has `file`'s bytes for another revision (of the right size): its blob, or, in a
        cache without symlinks, the plain file in another snapshot whose tree listing names the same content."""
        blob = self.blob_path(repo, file.etag) if file.etag else None
        if blob is not None and _size(blob) == file.size:
            return blob
        if file.etag is None:
            return None
        for other, path in self._copies(repo).get((file.etag, file.size), ()):
            if other != commit:
                held = self.snapshot_file(repo, other, path)
                if held is not None and held[0] is None and _size(held[1]) == file.size:
                    return held[1]
        return None

    def _copies(self, repo: RepoRef) -> dict[tuple[str, int], list[tuple[str, str]]]:
        """(etag, size) -> [(commit, path)] over the tree listings of the repo's snapshots, read once per HubCache
        (a download asks for every file, twice)."""
        key = repo.folder_name
        if key not in self._trees:
            index: dict[tuple[str, int], list[tuple[str, str]]] = {}
            for tree in sorted((self.repo_dir(repo) / "trees").glob("*.json")):
                commit = tree.name[: -len(".json")]
                if is_commit_sha(commit) and self.snapshot_dir(repo, commit).is_dir():
                    for entry in self.read_tree(repo, commit) or ():
                        index.setdefault((entry.etag, entry.size), []).append((commit, entry.path))
            self._trees[key] = index
        return self._trees[key]

    def staging_dir(self, repo: RepoRef) -> Path:
        """Where `bundle import` keeps verified blobs until a whole bundle checked out (same file system as
        blobs/, so they enter it by rename); huggingface_hub's scanner ignores `.hfget/`."""
        return self.repo_dir(repo) / ".hfget" / "import"

    # --- checks before writing ------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Fail early, before any network traffic, when the cache cannot be written at all."""
        existing = self.root
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            raise CachePermissionError(
                f"The cache directory {self.root} cannot be created: {existing} is a file, not a directory.",
                "Point --cache-dir (or HF_HUB_CACHE / HF_HOME) at a directory you can write.",
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise permission_error(self.root, existing)

    def check_free_space(self, needed: int) -> None:
        existing = self.root
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if needed > free:
            raise DiskFullError(
                f"Not enough free space in {self.root}: this download needs {_fmt(needed)} more, "
                f"and only {_fmt(free)} is free.",
                "Free some space (hfget cache list shows what is cached), or point --cache-dir at a bigger disk.",
            )

    # --- writing --------------------------------------------------------------------------------------------

    def prepare(self, repo: RepoRef) -> None:
        """Create the repo's folders and the cache's CACHEDIR.TAG, turning OS errors into clear ones."""
        with disk_errors(self.root):
            (self.repo_dir(repo) / "blobs").mkdir(parents=True, exist_ok=True)
            (self.repo_dir(repo) / "snapshots").mkdir(parents=True, exist_ok=True)
            self.lock_dir(repo).mkdir(parents=True, exist_ok=True)
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                atomic_write(tag, CACHEDIR_TAG)

    def place_blob(self, repo: RepoRef, etag: str, verified: Path) -> Path:
        """Move a verified file into `blobs/` by atomic rename (same directory, so same file system)."""
        blob = self.blob_path(repo, etag)
        with disk_errors(self.root):
            chmod_like_umask(verified, self.umask)
            os.replace(verified, blob)
        return blob

    def place_in_snapshot(self, repo: RepoRef, commit: str, file: RemoteFile, verified: Path) -> Path:
        """(A cache without symlinks.) Move a verified file straight to snapshots/{commit}/{path}, as huggingface_hub
        moves a new blob there."""
        pointer = self.pointer_path(repo, commit, file.path)
        with disk_errors(self.root):
            chmod_like_umask(verified, self.umask)
            pointer.parent.mkdir(parents=True, exist_ok=True)
            os.replace(verified, pointer)
        return pointer

    def link_snapshot(self, repo: RepoRef, commit: str, file: RemoteFile) -> Path:
        """snapshots/{commit}/{path} -> ../../blobs/{etag}, relative, as huggingface_hub links it; in a cache
        without symlinks, a copy of the bytes this cache already has (`local_copy`)."""
        if not self.symlinks:
            return self._copy_into_snapshot(repo, commit, file)
        pointer = self.pointer_path(repo, commit, file.path)
        # The link text is a pure function of the path's depth: no path resolution per file (repos have thousands).
        # Separators are the platform's: Windows follows a relative link written with "/" unreliably.
        relative = os.sep.join([".."] * (file.path.count("/") + 2) + ["blobs", file.etag])
        with disk_errors(self.root):
            for _ in range(3):
                try:
                    os.symlink(relative, pointer)
                    return pointer
                except FileNotFoundError:
                    pointer.parent.mkdir(parents=True, exist_ok=True)
                except FileExistsError:
                    if pointer.is_symlink() and os.readlink(pointer) == relative:
                        return pointer
                    if pointer.is_dir() and not pointer.is_symlink():
                        raise
                    pointer.unlink()
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                        raise
                    # File systems without symlinks (some Windows/FAT/SMB mounts): a copy, as huggingface_hub does.
                    tmp = pointer.with_name(pointer.name + COPY_SUFFIX)
                    shutil.copyfile(self.blob_path(repo, file.etag), tmp)
                    os.replace(tmp, pointer)
                    return pointer
        return pointer

    def _copy_into_snapshot(self, repo: RepoRef, commit: str, file: RemoteFile) -> Path:
        pointer = self.pointer_path(repo, commit, file.path)
        if self.holds(repo, commit, file):
            return pointer
        tmp = pointer.with_name(pointer.name + COPY_SUFFIX)
        with disk_errors(self.root):
            source = self.local_copy(repo, file, commit)
            if source is None:  # (it went away since the download looked: a race with another program)
                raise FileNotFoundError(errno.ENOENT, "no copy of this file is left in the cache", str(pointer))
            pointer.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp)
            chmod_like_umask(tmp, self.umask)
            os.replace(tmp, pointer)
        return pointer

    def write_tree(self, repo: RepoRef, commit: str, files: Iterable[RemoteFile]) -> None:
        """The per-commit tree listing huggingface_hub 2.x keeps (`trees/{commit}.json`, format_version 1)."""
        entries = {}
        for f in sorted(files, key=lambda f: f.path):
            info: dict = {"size": f.size, "blob_id": f.blob_id}
            if f.lfs and f.sha256:
                info.update(lfs_sha256=f.sha256, lfs_size=f.size)
            entries[f.path] = info
        path = self.tree_path(repo, commit)
        with disk_errors(self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps({"format_version": TREE_FORMAT_VERSION, "files": entries}, indent=1))

    def origins_path(self, repo: RepoRef) -> Path:
        return self.repo_dir(repo) / ".hfget" / "origins.json"

    def read_origins(self, repo: RepoRef) -> dict[str, dict]:
        """{commit: {"source", "endpoint", "revision", "time"}} for commits hfget downloaded."""
        try:
            data = json.loads(self.origins_path(repo).read_text())
            return data.get("commits", {}) if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def record_origin(self, repo: RepoRef, commit: str, revision: str, source: str, endpoint: str) -> None:
        import time

        origins = self.read_origins(repo)
        origins[commit] = {"source": source, "endpoint": endpoint, "revision": revision, "time": time.time()}
        path = self.origins_path(repo)
        with disk_errors(self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps({"commits": origins}, indent=1, sort_keys=True))

    def write_ref(self, repo: RepoRef, revision: str, commit: str) -> None:
        """refs/{revision} -> commit, atomically; nothing when the revision is the commit itself."""
        if revision == commit:
            return
        path = self.ref_path(repo, revision)
        if self.read_ref(repo, revision) == commit:
            return
        with disk_errors(self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, commit)


def _fmt(n: int) -> str:
    from ..units import human_bytes

    return human_bytes(n)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() and not path.is_symlink() else -1
    except OSError:
        return -1
