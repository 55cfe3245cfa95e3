"""The ModelScope cache, in the layouts the `modelscope` client writes (read from modelscope 1.40 / modelscope-hub).

    {root}/{models|datasets|studios}/{owner}--{name}/snapshots/{revision}/{path}   today (modelscope-hub): plain
                                                                                     files, one folder per revision
    {root}/[hub/]{models|datasets}/{owner}/{name___}/{path}                         SDK <= 1.37 ('.' in a name is
                                                                                     stored as '___'; `.mdl`, `.msc`,
                                                                                     `.mv` bookkeeping files)
    {root}/[hub/]{owner}/{name}/{path}                                              older still, flat; recognised
                                                                                     only by those bookkeeping files
    {root}/.lock/{file|repo}_{sha256}.lock                                          download locks (filelock)
    ... {path}.incomplete                                                           a partial download

`root` is MODELSCOPE_CACHE, default `~/.cache/modelscope` (older SDKs defaulted to `~/.cache/modelscope/hub`, found
here as `{root}/hub/...`). We walk the folders ourselves rather than call modelscope's scanners: modelscope-hub's
`scan_cache` follows symlinks when sizing and takes any two-level folder for a repo, and the legacy scanner unpickles
`.mdl` files, which is code execution from a cache folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..fs import locks as file_locks
from . import safety
from .model import MS, CachedRepo, CacheRoot, Partial, Revision
from .roots import MS_LEGACY_MARKERS, MS_TOP_DIRS

KINDS = {"models": "model", "datasets": "dataset", "studios": "space"}
_MS_TYPE = {"model": "model", "dataset": "dataset", "space": "studio"}  # the repo type in modelscope's lock keys
PARTIAL_SUFFIX = ".incomplete"


def scan(root: CacheRoot) -> list[CachedRepo]:
    repos: list[CachedRepo] = []
    for base in (root.path, root.path / "hub"):
        for segment, kind in KINDS.items():
            for entry in _subdirs(base / segment):
                if entry.name.startswith("."):
                    continue  # modelscope's temp folders (._____temp) and the like
                if "--" in entry.name and (entry / "snapshots").is_dir():
                    repos.append(_current(root, entry, kind))
                    continue
                for repo_dir in _subdirs(entry):
                    if not repo_dir.name.startswith("."):
                        repos.append(_legacy(root, repo_dir, kind, entry.name))
        for owner in _subdirs(base):
            if owner.name in MS_TOP_DIRS or owner.name in KINDS or owner.name.startswith("."):
                continue
            for repo_dir in _subdirs(owner):
                if any((repo_dir / m).is_file() for m in MS_LEGACY_MARKERS):
                    repos.append(_legacy(root, repo_dir, "model", owner.name))
    return repos


def lock_path(root: Path, kind: str, repo_id: str, file_path: str | None = None) -> Path:
    """modelscope-hub's lock file for a repo or one of its files (DownloadManager._lock_path, modelscope-hub 0.5)."""
    scope = "file" if file_path is not None else "repo"
    key = "\0".join(("modelscope-hub-download-lock-v2", scope, _MS_TYPE[kind], repo_id, file_path or ""))
    return root / ".lock" / f"{scope}_{hashlib.sha256(key.encode('utf-8')).hexdigest()}.lock"


def locks_now(root: Path, repo: CachedRepo) -> list[Path]:
    """The repo lock and the lock of every file being downloaded into it now (those have a partial)."""
    locks = [lock_path(root, repo.kind, repo.repo_id)]
    if repo.layout == "snapshots":
        for snap in _subdirs(repo.path / "snapshots"):
            for partial, _size in _walk(snap).partials:
                file_path = partial.relative_to(snap).as_posix()[: -len(PARTIAL_SUFFIX)]
                locks.append(lock_path(root, repo.kind, repo.repo_id, file_path))
    return locks


def _current(root: CacheRoot, repo_dir: Path, kind: str) -> CachedRepo:
    owner, _, name = repo_dir.name.partition("--")
    repo_id = f"{owner}/{name}"
    revisions, partials = [], []
    accessed = 0.0
    for snap in sorted(_subdirs(repo_dir / "snapshots")):
        walk = _walk(snap)
        accessed = max(accessed, walk.accessed)
        revisions.append(
            Revision(snap.name, (snap.name,), walk.size, walk.files, walk.modified or _mtime(snap), snap)
        )
        for partial, size in walk.partials:
            file_path = partial.relative_to(snap).as_posix()[: -len(PARTIAL_SUFFIX)]
            lock = lock_path(root.path, kind, repo_id, file_path)
            state = file_locks.check(lock)
            note = safety.busy_note(state) if state.busy else None
            partials.append(Partial((partial,), size, state.busy, lock, "modelscope", note))
    revisions.sort(key=lambda r: -r.last_modified)
    return _repo(root, kind, repo_id, repo_dir, "snapshots", revisions, partials, accessed)


def _legacy(root: CacheRoot, repo_dir: Path, kind: str, owner: str) -> CachedRepo:
    repo_id = f"{owner}/{repo_dir.name.replace('___', '.')}"
    walk = _walk(repo_dir)
    revision = _legacy_revision(repo_dir)
    revisions = [Revision(revision or "(unknown)", (revision,) if revision else (), walk.size, walk.files,
                          walk.modified or _mtime(repo_dir), repo_dir)]
    # old SDKs took no file locks here
    partials = [Partial((p,), size, in_use=False, client="modelscope") for p, size in walk.partials]
    return _repo(root, kind, repo_id, repo_dir, "legacy", revisions, partials, walk.accessed)


def _repo(root, kind, repo_id, repo_dir, layout, revisions, partials, accessed) -> CachedRepo:
    lock_files = [lock_path(root.path, kind, repo_id)] + [p.lock for p in partials if p.lock]
    checks = [file_locks.check(lock) for lock in lock_files]  # one descriptor at a time
    busy = [c for c in checks if c.busy]
    modified = max((r.last_modified for r in revisions), default=_mtime(repo_dir))
    return CachedRepo(
        cache=MS,
        kind=kind,
        repo_id=repo_id,
        path=repo_dir,
        layout=layout,
        size=sum(r.size for r in revisions),  # plain copies per revision: nothing is shared
        files=sum(r.files for r in revisions),
        last_accessed=max(accessed, modified),
        last_modified=modified,
        revisions=tuple(revisions),
        partials=tuple(partials),
        locks_held=tuple(c.path for c in busy),
        busy_notes=tuple(safety.busy_note(c) for c in busy),
    )


def _legacy_revision(repo_dir: Path) -> str | None:
    """`.mv` holds 'Revision:v1.0.2,CreatedAt:1700000000' (plain text, unlike the pickled .mdl/.msc)."""
    try:
        text = (repo_dir / ".mv").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    for part in text.split(","):
        key, _, value = part.partition(":")
        if key.strip() == "Revision" and value.strip():
            return value.strip()
    return text or None


class _Walk:
    def __init__(self) -> None:
        self.size = self.files = 0
        self.accessed = self.modified = 0.0
        self.partials: list[tuple[Path, int]] = []


def _walk(top: Path) -> _Walk:
    """Sizes of regular files under `top`, never following symlinks (a planted link must not count or be entered)."""
    out = _Walk()
    for folder, _dirs, names in os.walk(top, followlinks=False):
        for name in names:
            path = Path(folder) / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if name.endswith(PARTIAL_SUFFIX):
                out.partials.append((path, st.st_size))
                continue
            if folder == str(top) and name in MS_LEGACY_MARKERS:
                out.size += st.st_size  # bookkeeping: takes space, but is not a file of the repo
                continue
            out.size += st.st_size
            out.files += 1
            out.accessed = max(out.accessed, st.st_atime)
            out.modified = max(out.modified, st.st_mtime)
    return out


def _subdirs(path: Path) -> list[Path]:
    """Real sub-folders (a symlinked folder is not entered: it may lead out of the cache)."""
    try:
        return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
