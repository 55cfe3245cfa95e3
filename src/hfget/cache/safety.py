"""The two guarantees `cache clean` rests on (DESIGN §7): nothing outside a cache root is ever deleted, and nothing a
running download holds is deleted under it.

- `remove(path, root)` deletes a file, a symlink (the link, never its target) or a folder tree, after checking that
  the path is lexically under `root` *and* that its folder resolves under `root` (no symlinked folder on the way out).
  Folder trees go through `shutil.rmtree`, which never follows symlinks inside the tree.
- `held(lock)` tells whether another process holds a download lock now; `hold(locks)` takes them all (non-blocking)
  for the time of a deletion, so no download of this repo can start half-way through it.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import HfgetError


class UnsafePath(HfgetError):
    """A path the cleaner was about to delete is not inside the cache root. Never expected; a guard, not a flow."""

    kind = "unsafe_path"


class InUse(Exception):
    def __init__(self, lock: Path) -> None:
        super().__init__(str(lock))
        self.lock = lock


def is_inside(path: Path, root: Path) -> bool:
    """`path` (not resolved itself: it may be a symlink we are about to unlink) sits under `root`, and the folder
    holding it resolves under `root` too. `root` must already be a real path."""
    lexical = Path(os.path.abspath(path))
    if lexical == root or root not in lexical.parents:
        return False
    real_parent = Path(os.path.realpath(lexical.parent))
    return real_parent == root or root in real_parent.parents


def remove(path: Path, root: Path) -> None:
    """Delete `path` without following any symlink. Raises UnsafePath for anything outside `root`."""
    if not is_inside(path, root):
        raise UnsafePath(
            f"Refusing to delete {path}: it is not inside the cache {root}.",
            "This is a bug in hfget; nothing outside the cache was touched. Please report it.",
        )
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def remove_empty_dir(path: Path, root: Path) -> None:
    """Remove a folder only if it is empty (a repo's owner folder in the old ModelScope layout, an emptied refs/)."""
    if is_inside(path, root):
        try:
            os.rmdir(path)
        except OSError:
            pass


def held(lock: Path) -> bool:
    """Whether some process holds this lock file right now. Never creates a lock file (a dry run changes nothing)."""
    try:
        with hold([lock]):
            return False
    except InUse:
        return True


@contextmanager
def hold(locks: Iterable[Path]) -> Iterator[None]:
    """Take every existing lock file (huggingface_hub's and hfget's are filelock locks on the same paths) without
    waiting; raise InUse naming the first one another process holds. Missing lock files are skipped, not created."""
    from filelock import FileLock, Timeout

    taken = []
    try:
        for path in locks:
            if not path.is_file():
                continue
            lock = FileLock(str(path), timeout=0)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise InUse(path) from None
            except OSError:
                raise InUse(path) from None  # unreadable lock (another user's download): assume it is in use
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()
