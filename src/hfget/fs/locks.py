"""Locks on a cache that other programs share, and how hfget tells a live process from a dead one.

Three kinds of lock, all here so that one module knows how locking works on this platform (issue #17 brings Windows
and macOS: `try_flock` is the one place to teach msvcrt):

- `BlobLock`: the lock huggingface_hub takes for a blob, `.locks/{repo folder}/{etag}.lock`, held exclusively while
  a blob is written. huggingface_hub takes it through `filelock`, which is `flock(2)` on POSIX, so hfget takes the
  same `flock` on the same file and the two tools wait for each other.
- `check(path)`: is some process holding a lock file right now? One descriptor at a time, opened read-only and never
  created, so that `cache clean` works past the descriptor limit, on other users' lock files, and says "permission
  denied" when that is what happened instead of "in use".
- `RepoLock`: hfget's own lock on one repo folder, shared by downloads (from their first write to their last) and
  exclusive for `cache clean`. `filelock` has no shared locks, and `flock` is a silent no-op on some file systems
  (Lustre, GPFS, some NFS mounts), so the lock is two things at once: a `flock` (LOCK_SH / LOCK_EX) on
  `.locks/{repo folder}/repo.hfget-lock` where the platform has one, and a *marker file* per holder,
  `.locks/{repo folder}/{download|clean}.{owner}.hfget`, whose unique name needs no lock at all. A download
  announces itself with its marker and then looks for a live clean marker; a clean announces itself and then looks
  for live download markers; whichever looks second sees the other, so the two never overlap even where `flock`
  excludes nothing.

A marker belongs to a live process when (see `owner_alive`): its owner holds the `flock` it takes on its marker (a
no-op `flock` never reports a holder, so this can only say "alive"); or, on this host, the owner's pid exists and
the marker was refreshed recently; or, from another host, the marker was refreshed within `STALE_AFTER` (owners
touch it every `HEARTBEAT` seconds). A process killed with `kill -9` therefore stops counting at once on the same
host and after `STALE_AFTER` from elsewhere.

Lock and marker files are created with mode 0o664 whatever the umask, exactly as huggingface_hub 2.x creates its
lock files (`filelock` with an explicit `mode`, which survives the umask): in a cache shared by a team's accounts,
everyone must be able to open everyone's lock files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_MODE = 0o664
HEARTBEAT = 30.0  # seconds between refreshes of a live marker
STALE_AFTER = 600.0  # a marker not refreshed for this long belongs to no live process (allows for clock skew)
REPO_LOCK_NAME = "repo.hfget-lock"
MARKER_SUFFIX = ".hfget"
DOWNLOAD, CLEAN = "download", "clean"

# Errors that mean "this file system has no working flock" rather than "someone holds it". EBADF: NFS emulates flock
# with POSIX locks, which need a descriptor open for writing to lock exclusively.
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EBADF, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_CONTENDED = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}


def try_flock(fd: int, exclusive: bool) -> bool | None:
    """Try a non-blocking flock: True (got it), False (another holder), None (no flock here: markers must do)."""
    try:
        import fcntl
    except ImportError:  # Windows: no shared locks at all; #17 may add msvcrt for exclusive ones
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENDED:
            return False
        if exc.errno in _NO_FLOCK:
            return None
        raise
    return True


def release_flock(fd: int) -> None:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
    except (ImportError, OSError):
        pass  # closing the descriptor drops it anyway


def open_lock_file(path: Path) -> int:
    """Open (creating it 0o664 if needed) a lock file for locking. Read-only when it is another user's file that
    this user may not write: `flock` works on such a descriptor on local file systems."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, LOCK_MODE)  # the mode survives the umask, as huggingface_hub's lock files do
    except (OSError, AttributeError):
        pass
    return fd


# --- is a lock held? -------------------------------------------------------------------------------------------

FREE, HELD, MISSING, DENIED, UNREADABLE = "free", "held", "missing", "denied", "unreadable"


@dataclass(frozen=True)
class LockCheck:
    path: Path
    state: str  # FREE | HELD | MISSING | DENIED (permission) | UNREADABLE (another OS error, e.g. out of descriptors)
    detail: str = ""

    @property
    def busy(self) -> bool:
        """Whether whoever asked must keep their hands off: held, or impossible to tell."""
        return self.state in (HELD, DENIED, UNREADABLE)


def check(path: Path, *, exclusive: bool = False) -> LockCheck:
    """Whether a process holds the lock file `path` now. Never creates it; opens one descriptor and closes it.

    A shared probe (the default) sees the exclusive holders, which is how huggingface_hub and hfget hold blob
    locks, works on read-only descriptors, and does not make two probing processes see each other. An exclusive
    probe also sees shared holders (hfget downloads holding a repo lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return LockCheck(path, MISSING)
    except PermissionError as exc:
        return LockCheck(path, DENIED, f"permission denied opening {path} ({exc.strerror})")
    except OSError as exc:
        return LockCheck(path, UNREADABLE, f"could not open {path}: {exc.strerror or exc}")
    try:
        got = try_flock(fd, exclusive)
        if got is None:
            # No flock here: huggingface_hub then falls back to filelock's SoftFileLock, where the lock file exists
            # exactly while it is held. Its presence is all there is to go by.
            return LockCheck(path, HELD, "no flock on this file system: the lock file's presence means held")
        if got:
            release_flock(fd)
            return LockCheck(path, FREE)
        return LockCheck(path, HELD)
    except OSError as exc:
        return LockCheck(path, UNREADABLE, f"could not lock {path}: {exc.strerror or exc}")
    finally:
        os.close(fd)


# --- the blob lock ----------------------------------------------------------------------------------------------


class BlobLock:
    """The lock file huggingface_hub also takes for a blob (`.locks/.../{etag}.lock`), so neither tool writes a
    blob another process is writing. Held from the first byte to the move into place, and released by whichever
    connection finishes last, hence not thread-bound.

    A plain `flock`, exactly what `filelock` (huggingface_hub's lock) takes on POSIX, without its per-lock
    bookkeeping: for a repo of hundreds of small files that bookkeeping cost more than the downloads. Within one
    process the lock is also kept in a table, so two tasks of one process never share a blob even where `flock`
    excludes nothing. Where there is no flock at all the lock is granted: correctness then rests on each process
    writing its own uniquely named partial and moving only verified bytes into place by an atomic rename.
    """

    _held: set[str] = set()  # paths some task of this process holds right now (empty again when all are released)
    _table = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._key = ""

    def try_acquire(self) -> bool:
        key = os.path.abspath(self.path)
        with BlobLock._table:
            if key in BlobLock._held:
                return False
            BlobLock._held.add(key)
        try:
            fd = self._open()
            try:
                got = try_flock(fd, exclusive=True)
            except OSError:
                os.close(fd)
                raise
        except BaseException:
            self._forget(key)
            raise
        if got is False:
            os.close(fd)
            self._forget(key)
            return False
        self._fd, self._key = fd, key
        return True

    def _open(self) -> int:
        try:
            return open_lock_file(self.path)
        except FileNotFoundError:  # the folder is not there (yet, or any more after a cache clean)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open_lock_file(self.path)

    @staticmethod
    def _forget(key: str) -> None:
        with BlobLock._table:
            BlobLock._held.discard(key)

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing the only descriptor drops the flock
            self._forget(self._key)


# --- owners: who wrote a marker or a partial, and are they alive? -----------------------------------------------


def host_id() -> str:
    """This machine, as 8 hex digits (host names may hold characters no file name should)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def new_owner() -> str:
    """A name for one download or clean of this process: `{host}-{pid}-{random}`, unique across hosts and runs."""
    return f"{host_id()}-{os.getpid()}-{secrets.token_hex(3)}"


def parse_owner(owner: str) -> tuple[str, int] | None:
    host, _, rest = owner.partition("-")
    pid, _, tail = rest.partition("-")
    if len(host) != 8 or not pid.isdigit() or not tail:
        return None
    return host, int(pid)


_live: set[str] = set()  # owners of this process whose RepoLock is held (pid reuse cannot fool this check)
_live_table = threading.Lock()


def set_live(owner: str, alive: bool) -> None:
    """A RepoLock of this process starts or stops holding: `owner_alive` answers for it without guessing."""
    with _live_table:
        (_live.add if alive else _live.discard)(owner)


def _pid_exists(pid: int) -> bool | None:
    """None when this platform cannot tell (Windows: os.kill(pid, 0) would send CTRL_C_EVENT there)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


def owner_alive(owner: str, marker: Path | None, now: float | None = None) -> bool:
    """Whether the process named `owner` may still be working. `marker` is its marker file (None if there is none:
    then it finished or was killed long enough ago that its marker was swept)."""
    if marker is None:
        return False
    try:
        mtime = os.stat(marker).st_mtime
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume alive, never delete under a running process
    if _held_by_flock(marker):  # a no-op flock never reports a holder: this can only prove life
        return True
    parsed = parse_owner(owner)
    fresh = (now if now is not None else time.time()) - mtime < STALE_AFTER
    if parsed is None:
        return fresh
    host, pid = parsed
    if host == host_id():
        if pid == os.getpid():
            with _live_table:
                return owner in _live
        exists = _pid_exists(pid)
        if exists is not None:
            return exists and fresh
    return fresh


def _held_by_flock(path: Path) -> bool:
    return _shared_probe(path) is False


def flock_works(path: Path) -> bool:
    """Whether this file system answers flock on `path` at all (it may still be a silent no-op: see the top)."""
    return _shared_probe(path) is not None


def _shared_probe(path: Path) -> bool | None:
    """try_flock(shared) on a fresh read-only descriptor, released at once; None also when the file cannot be
    opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return try_flock(fd, exclusive=False)
    except OSError:
        return None
    finally:
        os.close(fd)
