"""The Hugging Face cache, as `huggingface_hub.scan_cache_dir` sees it, plus what only hfget knows.

huggingface_hub does the scanning (sizes, revisions, refs, timestamps), so `cache list` agrees with `hf cache ls`
to the byte. On top of it:
- which source served each commit (hfget's `.hfget/origins.json`, written by downloads);
- partial downloads of every client (store/partials.py: hfget's with their state files, huggingface_hub 0.x's and
  2.x's), each with whether a download may be writing it now;
- which repos a running download holds: hfget's repo lock and markers (fs/repo_lock.py), and the blob locks
  `.locks/{repo_folder}/{etag}.lock` that huggingface_hub and hfget take, checked one at a time;
- repos the scanner rejects (a missing blob, a dangling ref): listed as damaged rather than hidden, so they can be
  cleaned.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..fs import locks
from ..fs.repo_lock import repo_in_use
from ..repo import RepoRef
from ..store import partials as leftovers
from ..store.hub_cache import HubCache
from . import safety
from .model import HF, CachedRepo, CacheRoot, Partial, Revision
from .roots import HF_REPO_PREFIXES


def scan(root: CacheRoot) -> tuple[list[CachedRepo], int, object]:
    """(repos, physical size of the cache, huggingface_hub's HFCacheInfo for the deletion strategies)."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(root.path)
    hub = HubCache(root.path)
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
        held, notes = busy(hub, folder)
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
                partials=partials_of(hub, folder),
                locks_held=held,
                busy_notes=notes,
            )
        )
    scanned = {r.repo_path.name for r in info.repos}
    extra_size = 0
    for folder in sorted(os.listdir(root.path)):
        if folder in scanned or not folder.startswith(HF_REPO_PREFIXES):
            continue
        damaged = _damaged(hub, folder, partials_of(hub, folder), _problem(info.warnings, folder))
        if damaged is not None:
            repos.append(damaged)
            extra_size += damaged.size
    return repos, info.size_on_disk + extra_size, info


def partials_of(hub: HubCache, folder: str) -> tuple[Partial, ...]:
    """The repo's unfinished downloads, each with whether a download may be writing it now: hfget's by its owner's
    marker (no flock needed), everyone else's by the blob lock they take while writing."""
    lock_dir = hub.root / ".locks" / folder
    found = []
    for leftover in leftovers.scan(hub.root / folder / "blobs"):
        size = sum(_lsize(p) for p in leftover.paths)
        if leftover.owner:  # hfget's own: its writer is alive or not
            marker = leftovers.owner_marker(lock_dir, leftover.owner)
            state = safety.partial_busy(marker)
        elif leftover.kind == leftovers.STATE:  # an older hfget's state file whose partial is gone
            marker, state = None, None
        else:  # the blob lock, which huggingface_hub (and older hfget) hold while writing
            marker = lock_dir / f"{leftover.key}.lock"
            state = safety.partial_busy(marker)
        note = safety.busy_note(state) if state else None
        found.append(Partial(leftover.paths, size, state is not None, marker, leftover.client, note))
    return tuple(found)


def busy(hub: HubCache, folder: str) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """(locks held, why the repo counts as in use): hfget's repo lock and markers, then every blob lock, one open
    descriptor at a time (a repo may have more lock files than a process may open)."""
    held: list[Path] = []
    notes: list[str] = []
    repo = repo_in_use(hub.root / ".locks" / folder)
    if repo is not None:
        held.append(repo.path)
        notes.append(safety.busy_note(repo))
    for path in _lock_files(hub, folder):
        state = locks.check(path)
        if state.busy:  # held; or denied, unreadable: nobody can tell, so it counts as in use, and says why
            held.append(path)
            notes.append(safety.busy_note(state))
    return tuple(held), tuple(notes)


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
        if stat.S_ISREG(st.st_mode) and not leftovers.is_leftover_name(blob.name):
            size, files = size + st.st_size, files + 1
            accessed, modified = max(accessed, st.st_atime), max(modified, st.st_mtime)
    if not files:
        st = os.lstat(path)
        accessed, modified = st.st_atime, st.st_mtime
    if not partials and not files and not problem:
        return None
    held, notes = busy(hub, folder)
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
        locks_held=held,
        busy_notes=notes,
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
