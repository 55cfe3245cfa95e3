"""The two guarantees `cache clean` rests on (DESIGN §7): nothing outside a cache root is ever deleted, and nothing a
running download holds is deleted under it.

- `remove(path, root)` deletes a file, a symlink (the link, never its target) or a folder tree, after checking that
  the path is lexically under `root` *and* that its folder resolves under `root` (no symlinked folder on the way out).
  Folder trees go through `shutil.rmtree`, which never follows symlinks inside the tree. A read-only file (or
  folder) is made writable first when its deletion is refused: Windows cannot delete read-only files at all.
- `held_for_deletion(...)` holds a repo for the time of a deletion, or raises InUse saying who is in the way: for the
  Hugging Face cache hfget's repo lock, exclusive (no hfget download starts meanwhile, and none was running), then
  every blob lock that huggingface_hub and hfget take, checked one at a time (a repo may have more lock files than
  a process may open, and each probe opens one); for ModelScope, modelscope's own repo and file locks.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import HfgetError
from ..fs import locks
from ..fs.repo_lock import RepoBusy, RepoLock, describe_marker


class UnsafePath(HfgetError):
    """A path the cleaner was about to delete is not inside the cache root. Never expected; a guard, not a flow."""

    kind = "unsafe_path"


class InUse(Exception):
    """Something else may be using what a clean was about to delete; `note` says what, for the plan and the result."""

    def __init__(self, check: locks.LockCheck) -> None:
        super().__init__(str(check.path))
        self.lock = check.path
        self.check = check

    @property
    def note(self) -> str:
        return busy_note(self.check)


def busy_note(check: locks.LockCheck) -> str:
    if check.state == locks.HELD:
        who = check.detail if check.detail.startswith("hfget") else f"a download holds {check.path}"
        return f"in use: {who}"
    return (f"not checked: {check.detail}; whether a download is using it cannot be told, so it stays (run as the "
            "lock file's owner, or fix its permissions)")


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
        _rmtree(path)
    else:
        _retry_writable(os.unlink, path)


def make_removable(path: Path) -> None:
    """Clear a file's read-only mode (Windows' read-only attribute) so it can be deleted; never through a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISLNK(st.st_mode) and not st.st_mode & stat.S_IWRITE:
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWRITE)


def _retry_writable(delete, path) -> None:
    """`delete(path)`; if refused because `path` is read-only, make it writable and try once more."""
    try:
        delete(path)
    except PermissionError:
        try:
            read_only = not os.lstat(path).st_mode & stat.S_IWRITE
        except OSError:
            read_only = False
        if not read_only:
            raise
        make_removable(path)
        delete(path)


def _rmtree(path: Path) -> None:
    def again(function, failed, error) -> None:  # rmtree's own deletion of `failed` was refused
        if function not in (os.unlink, os.remove, os.rmdir):
            raise error if isinstance(error, BaseException) else error[1]  # (onerror passes exc_info)
        _retry_writable(function, failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=again)
    else:
        shutil.rmtree(path, onerror=again)


def remove_empty_dir(path: Path, root: Path) -> None:
    """Remove a folder only if it is empty (a repo's owner folder in the old ModelScope layout, an emptied refs/)."""
    if is_inside(path, root):
        try:
            os.rmdir(path)
        except OSError:
            pass


@contextmanager
def held_for_deletion(repo_locks: Path | None, blob_locks: Iterable[Path], owner: str) -> Iterator[None]:
    """Hold hfget's repo lock in `repo_locks` (a `.locks/{repo folder}`; None for ModelScope) for the time of a
    deletion, after checking that no lock in `blob_locks` is held; raise InUse otherwise."""
    lock = RepoLock(repo_locks, owner) if repo_locks is not None else None
    if lock is not None:
        try:
            lock.try_exclusive()
        except RepoBusy as busy:
            raise InUse(busy.check) from None
    try:
        for path in blob_locks:
            state = locks.check(path)
            if state.busy:
                raise InUse(state)
        yield
    finally:
        if lock is not None:
            lock.release()


def partial_busy(lock: Path | None) -> locks.LockCheck | None:
    """Whether the download that wrote a partial may be writing it now (see hf_scan.partials_of), checked again
    right before deleting it: `lock` is the marker of the hfget download that owns it, or the blob lock."""
    if lock is None:
        return None
    if lock.name.endswith(locks.MARKER_SUFFIX):
        owner = lock.name[: -len(locks.MARKER_SUFFIX)].split(".", 1)[-1]
        alive = locks.owner_alive(owner, lock)
        return locks.LockCheck(lock, locks.HELD, describe_marker(lock)) if alive else None
    state = locks.check(lock)
    return state if state.busy else None
