"""What the Hugging Face cache holds of one revision, read without the network.

Which commit a revision names here (`refs/`, or the commit itself), which files its snapshot folder has (links into
`blobs/`, or copies where symlinks fail), and whether that is every file of the commit: the tree listing
`trees/{commit}.json` (written by hfget and by huggingface_hub 2.x) says what the commit holds. Used by
`hfget env` (is the repo complete, so `HF_HUB_OFFLINE=1` works?), the Python API's `local_files_only`, and
`hfget cache verify`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..repo import RemoteFile, RepoRef, is_commit_sha
from .hub_cache import HubCache


@dataclass(frozen=True)
class CachedSnapshot:
    repo: RepoRef
    commit: str
    path: Path
    entries: dict[str, Path]  # repo path -> its entry in the snapshot folder (a symlink into blobs/, or a copy)
    listing: dict[str, RemoteFile] | None  # the commit's recorded tree; None when nobody recorded one

    def usable(self, path: str) -> bool:
        """The snapshot has this file and it leads to bytes (not a link to a blob that is gone)."""
        entry = self.entries.get(path)
        return entry is not None and entry.exists()

    def missing(self, wanted: Sequence[str] | None = None) -> list[str]:
        """Files of the commit (or of `wanted`) that this snapshot cannot serve. Without a listing and without
        `wanted`, only the entries whose blob is gone."""
        names = list(wanted) if wanted is not None else list(self.listing or self.entries)
        return sorted(p for p in names if not self.usable(p))

    @property
    def complete(self) -> bool:
        return bool(self.entries) and not self.missing()


def find_snapshot(cache: HubCache, repo: RepoRef, revision: str) -> CachedSnapshot | None:
    """The cached snapshot `revision` names (a ref, or a commit sha with a snapshot folder), or None."""
    commit = cache.cached_commit(repo, revision)
    if commit is None:
        return None
    folder = cache.snapshot_dir(repo, commit)
    return CachedSnapshot(repo, commit, folder, snapshot_entries(folder), recorded_tree(cache, repo, commit))


def recorded_tree(cache: HubCache, repo: RepoRef, commit: str) -> dict[str, RemoteFile] | None:
    """The commit's tree listing by path, or None when nobody recorded one."""
    listing = cache.read_tree(repo, commit)
    return None if listing is None else {f.path: f for f in listing}


def snapshot_entries(folder: Path) -> dict[str, Path]:
    """Every file entry under a snapshot folder by repo path, links included (dangling ones too), without following
    links to folders."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        # os.walk lists a symlink to a folder among the folders; a snapshot has none of its own, so it is an entry
        for name in [d for d in dirnames if (base / d).is_symlink()] + filenames:
            entry = base / name
            found[entry.relative_to(folder).as_posix()] = entry
    return found


def cached_commits(cache: HubCache, repo: RepoRef) -> list[tuple[str, tuple[str, ...], Path]]:
    """Every snapshot folder of a repo as (commit, the refs naming it, folder), read from the folders themselves:
    a repo huggingface_hub's scanner rejects (a blob gone) is listed too, which is what verifying it needs."""
    snapshots = cache.snapshot_dir(repo, "x").parent
    refs_dir = cache.ref_path(repo, "x").parent
    named: dict[str, list[str]] = {}
    if refs_dir.is_dir():
        for dirpath, _, filenames in os.walk(refs_dir):
            for name in filenames:
                ref = (Path(dirpath) / name).relative_to(refs_dir).as_posix()
                commit = cache.read_ref(repo, ref)
                if commit:
                    named.setdefault(commit, []).append(ref)
    try:
        folders = sorted(p for p in snapshots.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    return [(p.name, tuple(sorted(named.get(p.name, ()))), p) for p in folders if is_commit_sha(p.name)]
