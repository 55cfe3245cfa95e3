"""The Hugging Face cache, as `huggingface_hub.scan_cache_dir` sees it, plus what only hfget knows.

huggingface_hub does the scanning (sizes, revisions, refs, timestamps), so `cache list` agrees with `hf cache ls`
to the byte. On top of it:
- which source served each commit (hfget's `.hfget/origins.json`, written by downloads);
- partial downloads with their state files (`blobs/{etag}.incomplete*`: the scanner only knows `*.incomplete`);
- which repos a running download holds (the `.locks/{repo_folder}/{etag}.lock` files);
- repos the scanner rejects (a missing blob, a dangling ref): listed as damaged rather than hidden, so they can be
  cleaned.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from pathlib import Path

from ..repo import RepoRef
from ..store.hub_cache import HubCache
from . import safety
from .model import HF, CachedRepo, CacheRoot, Partial, Revision
from .roots import HF_REPO_PREFIXES

PARTIAL_MARK = ".incomplete"


def scan(root: CacheRoot) -> tuple[list[CachedRepo], int, object]:
    """(repos, physical size of the cache, huggingface_hub's HFCacheInfo for the deletion strategies)."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(root.path)
    hub = HubCache(root.path)
    partials = _partials(hub)
    repos: list[CachedRepo] = []
    for r in info.repos:
        folder = r.repo_path.name
        origins = hub.read_origins(RepoRef(r.repo_id, r.repo_type))
        revisions = tuple(
            sorted(
                (
                    Revision(
                        name=rev.commit_hash,
                        refs=tuple(sorted(rev.refs)),
                        size=rev.size_on_disk,
                        files=rev.nb_files,
                        last_modified=rev.last_modified,
                        path=rev.snapshot_path,
                        source=origins.get(rev.commit_hash, {}).get("source"),
                        endpoint=origins.get(rev.commit_hash, {}).get("endpoint"),
                    )
                    for rev in r.revisions
                ),
                key=lambda v: -v.last_modified,
            )
        )
        locks = _lock_files(hub, folder)
        repos.append(
            CachedRepo(
                cache=HF,
                kind=r.repo_type,
                repo_id=r.repo_id,
                path=r.repo_path,
                layout="hub",
                size=r.size_on_disk,
                files=r.nb_files,
                last_accessed=r.last_accessed,
                last_modified=r.last_modified,
                revisions=revisions,
                partials=tuple(partials.pop(folder, ())),
                locks_held=tuple(p for p in locks if safety.held(p)),
            )
        )
    scanned = {r.repo_path.name for r in info.repos}
    extra_size = 0
    for folder in sorted(os.listdir(root.path)):
        if folder in scanned or not folder.startswith(HF_REPO_PREFIXES):
            continue
        damaged = _damaged(hub, folder, partials.pop(folder, ()), _problem(info.warnings, folder))
        if damaged is not None:
            repos.append(damaged)
            extra_size += damaged.size
    return repos, info.size_on_disk + extra_size, info


def _partials(hub: HubCache) -> dict[str, list[Partial]]:
    """Partials by repo folder. One Partial per etag: the `.incomplete` file and any state files beside it, or a state
    file alone whose partial is gone (stale). Each is in use while its download lock is held."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in hub.root.glob(f"*/blobs/*{PARTIAL_MARK}*"):
        etag = path.name.split(PARTIAL_MARK, 1)[0]
        groups[(path.parent.parent.name, etag)].append(path)
    found: dict[str, list[Partial]] = defaultdict(list)
    for (folder, etag), paths in sorted(groups.items()):
        lock = hub.root / ".locks" / folder / f"{etag}.lock"
        size = sum(_lsize(p) for p in paths)
        found[folder].append(Partial(tuple(sorted(paths)), size, in_use=safety.held(lock), lock=lock))
    return found


def locks_now(root: Path, repo: CachedRepo) -> list[Path]:
    return _lock_files(HubCache(root), repo.path.name)


def _lock_files(hub: HubCache, folder: str) -> list[Path]:
    try:
        return sorted((hub.root / ".locks" / folder).glob("*.lock"))
    except OSError:
        return []


def _damaged(hub: HubCache, folder: str, partials, problem: str) -> CachedRepo | None:
    """A repo folder huggingface_hub would not scan: its blobs still take space, and `cache clean` may remove it."""
    path = hub.root / folder
    if not path.is_dir() or path.is_symlink():
        return None
    kind_plural, _, rest = folder.partition("--")
    size = files = 0
    accessed = modified = 0.0
    for blob in _entries(path / "blobs"):
        st = os.lstat(blob)
        if stat.S_ISREG(st.st_mode) and PARTIAL_MARK not in blob.name:
            size, files = size + st.st_size, files + 1
            accessed, modified = max(accessed, st.st_atime), max(modified, st.st_mtime)
    if not files:
        st = os.lstat(path)
        accessed, modified = st.st_atime, st.st_mtime
    if not partials and not files and not problem:
        return None
    locks = _lock_files(hub, folder)
    return CachedRepo(
        cache=HF,
        kind=kind_plural[:-1],
        repo_id=rest.replace("--", "/"),
        path=path,
        layout="hub",
        size=size,
        files=files,
        last_accessed=accessed,
        last_modified=modified,
        partials=tuple(partials),
        locks_held=tuple(p for p in locks if safety.held(p)),
        problem=problem or None,
    )


def _problem(warnings, folder: str) -> str:
    for warning in warnings:
        text = str(warning)
        if f"/{folder}/" in text or text.endswith(f"/{folder}") or f"/{folder})" in text or f"/{folder} " in text:
            return text
    return ""


def _entries(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder)]
    except OSError:
        return []


def _lsize(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0
