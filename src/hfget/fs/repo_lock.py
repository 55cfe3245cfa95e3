"""hfget's lock on one repo folder of a cache: shared by downloads, exclusive for `cache clean` (see `locks.py` for
why it is a `flock` *and* marker files, and how a marker's owner is judged alive).

    .locks/{repo folder}/repo.hfget-lock           flock: LOCK_SH by downloads, LOCK_EX by a clean (where flock works)
    .locks/{repo folder}/download.{owner}.hfget    one per running download: {"pid", "host", "started"}
    .locks/{repo folder}/clean.{owner}.hfget       one per running clean

Each holder also holds an exclusive `flock` on its own marker (its proof of life where flock works) and refreshes
the marker's mtime every `HEARTBEAT` seconds from a small thread (its proof of life where flock does nothing).
Markers of dead owners are removed by whoever finds them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from .locks import (
    CLEAN,
    DOWNLOAD,
    HEARTBEAT,
    HELD,
    MARKER_SUFFIX,
    REPO_LOCK_NAME,
    LockCheck,
    check,
    flock_works,
    lock_marker,
    open_lock_file,
    owner_alive,
    release_flock,
    set_live,
    try_flock,
)


class RepoBusy(Exception):
    """The repo lock cannot be had now; `check` says who holds it (a lock file or a marker) and why."""

    def __init__(self, check: LockCheck) -> None:
        super().__init__(check.detail or str(check.path))
        self.check = check


def marker_path(folder: Path, kind: str, owner: str) -> Path:
    return folder / f"{kind}.{owner}{MARKER_SUFFIX}"


def markers(folder: Path, kind: str) -> list[tuple[str, Path]]:
    """(owner, path) of every `kind` marker in `folder`, live or not."""
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    prefix = kind + "."
    for name in sorted(names):
        if name.startswith(prefix) and name.endswith(MARKER_SUFFIX):
            found.append((name[len(prefix) : -len(MARKER_SUFFIX)], folder / name))
    return found


def live_markers(folder: Path, kind: str, *, sweep: bool = False, skip: str = "") -> list[tuple[str, Path]]:
    """The `kind` markers whose owner may still be working. With `sweep`, dead owners' markers are deleted."""
    alive = []
    for owner, path in markers(folder, kind):
        if owner == skip:
            continue
        if owner_alive(owner, path):
            alive.append((owner, path))
        elif sweep:
            try:
                path.unlink()
            except OSError:
                pass
    return alive


def describe_marker(path: Path) -> str:
    """'hfget download, pid 123 on host-a' from a marker's contents, for messages."""
    kind = path.name.split(".", 1)[0]
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"hfget {kind}, pid {info['pid']} on {info['host']} (marker {path})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"hfget {kind} (marker {path})"


class RepoLock:
    """One hold of the lock: `acquire_shared()` (downloads, waits) or `try_exclusive()` (clean, never waits),
    then `release()`. Not reusable."""

    def __init__(self, folder: Path, owner: str) -> None:
        self.folder = folder  # .locks/{repo folder}
        self.owner = owner
        self._lock_fd = -1
        self._marker: Path | None = None
        self._marker_fd = -1
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # --- downloads ----------------------------------------------------------------------------------------------

    def acquire_shared(self, wait: float, poll: float = 0.2) -> None:
        """Hold the repo for a download; while a clean holds it, wait up to `wait` seconds, then raise RepoBusy."""
        self._announce(DOWNLOAD)
        deadline = time.monotonic() + wait
        try:
            while True:
                busy = self._take_flock(exclusive=False)
                if busy is None:
                    cleaning = live_markers(self.folder, CLEAN, sweep=True)
                    if not cleaning:
                        return
                    busy = LockCheck(cleaning[0][1], HELD, describe_marker(cleaning[0][1]))
                    self._drop_flock()  # let the clean finish; look again later
                if time.monotonic() >= deadline:
                    raise RepoBusy(busy)
                time.sleep(poll)
        except BaseException:
            self.release()
            raise

    # --- cache clean --------------------------------------------------------------------------------------------

    def try_exclusive(self) -> None:
        """Hold the repo for a clean, now or never: RepoBusy names the download (or other clean) in the way."""
        self._announce(CLEAN)
        try:
            for kind in (DOWNLOAD, CLEAN):  # first: they say who is in the way
                others = live_markers(self.folder, kind, sweep=True, skip=self.owner)
                if others:
                    raise RepoBusy(LockCheck(others[0][1], HELD, describe_marker(others[0][1])))
            busy = self._take_flock(exclusive=True)
            if busy is not None:
                raise RepoBusy(busy)
        except BaseException:
            self.release()
            raise

    # --- both ---------------------------------------------------------------------------------------------------

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        self._drop_flock()
        set_live(self.owner, False)
        if self._marker_fd >= 0:  # closed first: Windows cannot delete a file that is still open
            os.close(self._marker_fd)
            self._marker_fd = -1
        if self._marker is not None:
            try:
                self._marker.unlink()
            except OSError:
                pass
            self._marker = None

    def __enter__(self) -> RepoLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- parts --------------------------------------------------------------------------------------------------

    def _announce(self, kind: str) -> None:
        """Write this holder's marker (a unique name: no lock needed), lock it, and keep it fresh."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = marker_path(self.folder, kind, self.owner)
        fd = open_lock_file(path)
        self._marker, self._marker_fd = path, fd
        set_live(self.owner, True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        try:
            os.write(fd, json.dumps(info).encode())
        except OSError:
            pass  # the name says who it is; the contents are for people
        lock_marker(fd)  # proof of life where locks work
        self._beat = threading.Thread(target=self._heartbeat, args=(path,), name="hfget-repo-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self, path: Path) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                os.utime(path)
            except OSError:
                pass

    def _take_flock(self, exclusive: bool) -> LockCheck | None:
        """None when held (or when there is no flock here); else who holds the lock file."""
        if self._lock_fd < 0:
            self._lock_fd = open_lock_file(self.folder / REPO_LOCK_NAME)
        got = try_flock(self._lock_fd, exclusive)
        if got is False:
            return LockCheck(self.folder / REPO_LOCK_NAME, HELD,
                             "a cache clean is deleting in this repo" if not exclusive else "a download is running")
        return None

    def _drop_flock(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            release_flock(fd)
            os.close(fd)


def repo_in_use(folder: Path) -> LockCheck | None:
    """For `cache list`: who holds the repo now (a download or a clean), without taking anything."""
    for kind in (DOWNLOAD, CLEAN):
        alive = live_markers(folder, kind)
        if alive:
            return LockCheck(alive[0][1], HELD, describe_marker(alive[0][1]))
    if not flock_works(folder / REPO_LOCK_NAME):
        return None  # (no flock here: the markers above are all there is)
    state = check(folder / REPO_LOCK_NAME, exclusive=True)
    return state if state.state == HELD else None
