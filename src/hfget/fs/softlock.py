"""A lock where there are no file locks (no flock, no msvcrt, or a file system that refuses them): the lock file
itself, as filelock's SoftFileLock does it, which is what huggingface_hub falls back to there.

The lock file exists exactly while it is held. It is created with O_EXCL (one creator wins), holds its holder's
record — `{pid}\\n{host}\\n`, the format filelock writes and reads, so each tool can tell when the other's holder is
gone — and is deleted on release. A lock whose holder died stays behind; it is broken (moved aside, then deleted):

- a record of this host whose process is gone: at once (filelock does the same);
- a record of another host, or no readable record (an empty file: a flock user's lock file from when this cache had
  locks, or an older filelock holder): once it is `STALE_AFTER` old. filelock waits on those forever; hfget would
  rather download a blob twice, which its unique partials and atomic renames make harmless, than hang.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from pathlib import Path

from .oslocks import LOCK_MODE, pid_exists, set_lock_mode

STALE_AFTER = 600.0  # seconds: a foreign or unreadable soft lock older than this belongs to nobody
BREAK_ROOM = len(".break-") + 8  # characters a broken lock's name gets while it is moved aside
_MAX_RECORD = 1024


def host_record() -> str:
    """This host as filelock writes it: the host name, plus the PID namespace when it is not the initial one (two
    containers sharing a host name count their pids apart)."""
    name = socket.gethostname()
    if sys.platform.startswith("linux"):
        try:
            namespace = os.stat("/proc/self/ns/pid").st_ino
        except OSError:
            namespace = 0xEFFFFFFC
        if namespace != 0xEFFFFFFC:
            name += f"?pidns-{namespace:x}"
    return name


def acquire(path: Path) -> int | None:
    """Take the soft lock: the descriptor of the lock file (kept open while held), or None while a live holder has
    it. A stale lock is broken and taken in the same call."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), LOCK_MODE)
        except FileExistsError:
            if not break_if_stale(path):
                return None
            continue
        claim(fd)
        return fd
    return None


def claim(fd: int) -> None:
    """Write this process's record into a lock file it has just created."""
    set_lock_mode(fd)
    try:
        os.write(fd, f"{os.getpid()}\n{host_record()}\n".encode())
    except OSError:
        pass  # an empty lock file still excludes; it only cannot be judged stale as quickly


def release(path: Path, fd: int) -> None:
    """Give it up: the file goes, unless it is no longer ours (broken and re-taken by another process meanwhile)."""
    try:
        ours = os.fstat(fd)
    except OSError:
        ours = None
    os.close(fd)  # first: Windows cannot delete a file that is still open
    try:
        now = os.lstat(path)
        if ours is None or (now.st_ino, now.st_dev) == (ours.st_ino, ours.st_dev) or not ours.st_ino:
            os.unlink(path)
    except OSError:
        pass


def holder(path: Path, now: float | None = None) -> tuple[bool | None, str]:
    """(held?, who): None when there is no lock file; False when it is stale (its holder is gone)."""
    try:
        content, mtime = _read(path)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return True, f"a soft lock {path} that cannot be read ({exc.strerror or exc})"
    stale = _stale(content, mtime, time.time() if now is None else now)
    record = _record(content)
    who = f"pid {record[0]} on {record[1]}" if record else "an unknown process"
    return (not stale), f"{who} holds the soft lock {path} (no file locks on this file system)"


def break_if_stale(path: Path) -> bool:
    """Move a stale lock aside and delete it; True when the path is free now (also when it went away by itself)."""
    try:
        content, mtime = _read(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not _stale(content, mtime, time.time()):
        return False
    aside = path.with_name(f"{path.name}.break-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)  # of several breakers, one moves it; the others find it gone
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        os.unlink(aside)
    except OSError:
        pass
    # Between reading and renaming, another process may have broken it and taken a fresh lock, which we just moved
    # aside: then two downloads of one blob run at once, which costs bandwidth and nothing else.
    return True


def _read(path: Path) -> tuple[str, float]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        mtime = os.fstat(fd).st_mtime
        data = os.read(fd, _MAX_RECORD + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace"), mtime


def _record(content: str) -> tuple[int, str] | None:
    """(pid, host) from filelock's format (`pid\\nhost\\n[start token\\n]`), None for anything else."""
    lines = content.strip().splitlines()
    if not content.endswith("\n") or len(lines) not in (2, 3) or not lines[0].isdigit():
        return None
    return int(lines[0]), lines[1]


def _stale(content: str, mtime: float, now: float) -> bool:
    record = _record(content)
    if record is not None and record[1] == host_record():
        if record[0] == os.getpid():
            return False  # another thread of this process: alive by definition
        alive = pid_exists(record[0])
        if alive is not None:
            return not alive
    return now - mtime > STALE_AFTER
