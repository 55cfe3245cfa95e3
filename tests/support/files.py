"""Looking at what is on disk: a whole tree's state, partials and leftovers of every client, aged and undeletable
files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest


def tree_state(root: Path) -> dict[str, str]:
    """Everything under root: paths, symlink targets and content hashes. Equal states = nothing changed."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def leftovers(folder: Path) -> list[Path]:
    """Every unfinished download under `folder`, of any client (hfget's partials and state files, huggingface_hub
    0.x's `{etag}.incomplete`, 2.x's `{etag}.{id}.incomplete`)."""
    from hfget.store.partials import is_leftover_name

    return sorted(p for p in folder.rglob("*") if is_leftover_name(p.name)) if folder.exists() else []


def hfget_partials(blobs: Path, etag: str = "*") -> list[Path]:
    """hfget's own partials (`{etag}.hfget-{owner}.partial`, not their state files) in a `blobs/` folder."""
    return sorted(blobs.glob(f"{etag}.hfget-*.partial"))


def hfget_partial_bytes(blobs: Path, etag: str = "*") -> int:
    """The bytes in hfget's partials in `blobs/` right now. A partial that is finished between the listing and its
    stat (renamed into place) counts as nothing."""
    total = 0
    for partial in hfget_partials(blobs, etag):
        try:
            total += partial.stat().st_size
        except FileNotFoundError:
            pass
    return total


def dead_hfget_partial(blobs: Path, etag: str) -> Path:
    """A name for a partial left by an hfget download that is gone: this host, this (test) process's pid, and an
    owner tail no live download of this process has (fs/locks.py owner_alive: such an owner is dead)."""
    from hfget.fs.locks import host_id

    blobs.mkdir(parents=True, exist_ok=True)
    return blobs / f"{etag}.hfget-{host_id()}-{os.getpid()}-dead00.partial"


def age(paths, days: float) -> None:
    """Make files look last used `days` ago (access and modification time), without following symlinks."""
    when = time.time() - days * 86400
    for path in paths:
        os.utime(path, (when, when), follow_symlinks=False)


@contextmanager
def undeletable(path: Path):
    """Make `path` impossible to delete for the duration: a read-only folder for a normal user; for root (who
    ignores permissions) the immutable attribute, where the file system and capabilities allow it."""

    if os.name != "posix":
        pytest.skip("Windows ignores a folder's read-only mode, and has no chattr")
    if os.geteuid() != 0:
        mode = path.parent.stat().st_mode
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file undeletable here (root without chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
