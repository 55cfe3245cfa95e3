"""Locks on a cache that other programs share, and how hfget tells a live process from a dead one.

Three kinds of lock, all here so that one module knows how locking works (the platform's own locks — flock,
msvcrt, or none — are in oslocks.py, filelock's soft lock for the last case in softlock.py):

- `BlobLock`: the lock huggingface_hub takes for a blob, `.locks/{repo folder}/{etag}.lock`, held exclusively while
  a blob is written. huggingface_hub takes it through `filelock`; hfget takes the same lock on the same file (flock
  on POSIX, byte 0 on Windows, a soft lock where there are no locks), so the two tools wait for each other.
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
  excludes nothing. On Windows (msvcrt has exclusive locks only) the markers are the whole repo lock.

A marker belongs to a live process when (see `owner_alive`): its owner holds the lock it takes on its marker (a
no-op `flock` never reports a holder, so this can only say "alive"); or, on this host, the owner's pid exists and
the marker was refreshed recently (where the pid cannot be asked, a working lock nobody holds means the owner is
gone); or, from another host, the marker was refreshed within `STALE_AFTER` (owners touch it every `HEARTBEAT`
seconds). A process killed with `kill -9` therefore stops counting at once on the same host and after
`STALE_AFTER` from elsewhere.

Lock and marker files are created with mode 0o664 whatever the umask, exactly as huggingface_hub 2.x creates its
lock files (`filelock` with an explicit `mode`, which survives the umask): in a cache shared by a team's accounts,
everyone must be able to open everyone's lock files.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import oslocks, softlock

HEARTBEAT = 30.0  # seconds between refreshes of a live marker
STALE_AFTER = 600.0  # a marker not refreshed for this long belongs to no live process (allows for clock skew)
REPO_LOCK_NAME = "repo.hfget-lock"
MARKER_SUFFIX = ".hfget"
DOWNLOAD, CLEAN = "download", "clean"


def try_flock(fd: int, exclusive: bool) -> bool | None:
    """Try a non-blocking lock: True (got it), False (another holder), None (none such here: markers must do)."""
    return oslocks.try_lock(fd, exclusive)


def release_flock(fd: int) -> None:
    oslocks.unlock(fd)


def open_lock_file(path: Path) -> int:
    """Open (creating it 0o664 if needed) a lock file for locking (oslocks.create_or_open)."""
    return oslocks.create_or_open(path)[0]


def lock_marker(fd: int) -> None:
    """Hold a marker file's lock for as long as its owner lives: its proof of life where locks work. (Nobody else
    ever locks a marker exclusively; under msvcrt the lock sits past the marker's text, which stays readable.)"""
    oslocks.try_lock(fd, exclusive=True, offset=oslocks.MARKER_OFFSET)


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
        held = oslocks.probe(fd, exclusive=exclusive)
    except OSError as exc:
        return LockCheck(path, UNREADABLE, f"could not lock {path}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if held is None:
        # No file locks here: huggingface_hub then falls back to filelock's SoftFileLock, where the lock file exists
        # exactly while it is held, with its holder's record (softlock.py judges it).
        soft, who = softlock.holder(path)
        return LockCheck(path, MISSING) if soft is None else LockCheck(path, HELD if soft else FREE, who)
    return LockCheck(path, HELD if held else FREE)


# --- the blob lock ----------------------------------------------------------------------------------------------


class BlobLock:
    """The lock file huggingface_hub also takes for a blob (`.locks/.../{etag}.lock`), so neither tool writes a
    blob another process is writing. Held from the first byte to the move into place, and released by whichever
    connection finishes last, hence not thread-bound.

    The lock `filelock` (huggingface_hub's lock) takes on this platform — `flock` on POSIX, byte 0 under msvcrt on
    Windows (oslocks.py) — without its per-lock bookkeeping: for a repo of hundreds of small files that bookkeeping
    cost more than the downloads. Where the platform or the file system has no locks, filelock's soft lock instead
    (softlock.py), as huggingface_hub falls back to it there. Within one process the lock is also kept in a table,
    so two tasks of one process never share a blob even where locks exclude nothing. Correctness never rests on the
    lock alone: each process writes its own uniquely named partial and moves only verified bytes into place by an
    atomic rename.
    """

    _held: set[str] = set()  # paths some task of this process holds right now (empty again when all are released)
    _table = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._soft = False
        self._key = ""

    def try_acquire(self) -> bool:
        key = os.path.abspath(self.path)
        with BlobLock._table:
            if key in BlobLock._held:
                return False
            BlobLock._held.add(key)
        try:
            fd, soft = self._take()
        except BaseException:
            self._forget(key)
            raise
        if fd is None:
            self._forget(key)
            return False
        self._fd, self._soft, self._key = fd, soft, key
        return True

    def _take(self) -> tuple[int | None, bool]:
        """(descriptor or None if another holds it, whether it is a soft lock)."""
        if oslocks.backend() == oslocks.NONE:
            return self._in_folder(softlock.acquire), True
        fd, created = self._in_folder(oslocks.create_or_open)
        try:
            got = oslocks.try_lock(fd, exclusive=True)
        except OSError:
            os.close(fd)
            raise
        if got is None:  # a file system without locks (flock: ENOSYS, ENOLCK): a soft lock, as filelock does there
            if created:
                softlock.claim(fd)  # this call created the file: it is ours
                return fd, True
            os.close(fd)
            return softlock.acquire(self.path), True
        if not got:
            os.close(fd)
            return None, False
        return fd, False

    def _in_folder(self, take):
        try:
            return take(self.path)
        except FileNotFoundError:  # the folder is not there (yet, or any more after a cache clean)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return take(self.path)

    @staticmethod
    def _forget(key: str) -> None:
        with BlobLock._table:
            BlobLock._held.discard(key)

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if self._soft:
            softlock.release(self.path, fd)
        else:
            oslocks.unlock(fd)
            os.close(fd)
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
    held = _marker_held(marker)
    if held:  # a no-op flock never reports a holder: this can only prove life
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
        exists = oslocks.pid_exists(pid)
        if exists is None and held is False:
            exists = False  # the pid cannot be asked, but a working lock says nobody holds the marker: the OS drops
            #                 a dead process's locks
        if exists is not None:
            return exists and fresh
    return fresh


def _marker_held(path: Path) -> bool | None:
    """Whether the marker's owner holds its lock (lock_marker): True, False, or None (no locks to ask)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return oslocks.probe(fd, offset=oslocks.MARKER_OFFSET)
    except OSError:
        return None
    finally:
        os.close(fd)


def flock_works(path: Path) -> bool:
    """Whether this file system answers a shared lock on `path` at all (it may still be a silent no-op: see the
    top). Never under msvcrt, which has no shared locks: hfget's repo lock is its markers alone there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        got = oslocks.try_lock(fd, exclusive=False)
    except OSError:
        return False
    finally:
        os.close(fd)
    return got is not None
