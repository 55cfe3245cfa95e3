"""The operating system's file locks, whichever this platform has, and whether a process still runs.

huggingface_hub locks through `filelock`, which takes `flock(2)` on POSIX and a byte-range lock on byte 0 of the
lock file on Windows (`LockFileEx`; `msvcrt.locking` takes the same kind of lock, and the two exclude each other).
hfget takes the same locks on the same files, so the two tools wait for each other on every platform:

- `flock`: exclusive and shared locks on the whole file, per open file (POSIX).
- `msvcrt`: exclusive byte-range locks, per handle, no shared ones (Windows). They are *mandatory*: a locked byte
  cannot be read by anyone else, which is why hfget locks its own marker files far past their contents
  (`MARKER_OFFSET`) and leaves byte 0 to the blob lock files, which are empty.
- neither: no locks at all; `softlock.py` then does what filelock's SoftFileLock does.

The platform is recognised by what imports (`fcntl`, `msvcrt`) at each call, never by `sys.platform` at import time,
so a test can take `fcntl` away from a process and exercise the other branches for real (tests/nonposix_site).
"""

from __future__ import annotations

import errno
import os

FLOCK, MSVCRT, NONE = "flock", "msvcrt", "none"
LOCK_MODE = 0o664  # group-writable whatever the umask, as huggingface_hub 2.x creates its lock files
MARKER_OFFSET = 1 << 30  # where hfget locks its marker files under msvcrt: past any content they will ever have

# Errors that mean "this file system has no working flock" rather than "someone holds it". EBADF: NFS emulates flock
# with POSIX locks, which need a descriptor open for writing to lock exclusively.
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EBADF, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_CONTENDED = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}


def backend() -> str:
    """FLOCK, MSVCRT or NONE: what this process can lock with."""
    return FLOCK if _fcntl() is not None else MSVCRT if _msvcrt() is not None else NONE


def _fcntl():
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def _msvcrt():
    try:
        import msvcrt
    except ImportError:
        return None
    return msvcrt if hasattr(msvcrt, "locking") else None


def try_lock(fd: int, exclusive: bool, offset: int = 0) -> bool | None:
    """A non-blocking lock on `fd`: True (got it), False (another holder), None (no such lock here: a shared one
    under msvcrt, or any on a file system without flock). `offset` is the byte msvcrt locks; flock ignores it."""
    fcntl = _fcntl()
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _CONTENDED:
                return False
            if exc.errno in _NO_FLOCK:
                return None
            raise
        return True
    msvcrt = _msvcrt()
    if msvcrt is None or not exclusive:
        return None
    os.lseek(fd, offset, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        # The C runtime reports every failure of a non-blocking lock as EACCES: taken for "held", as filelock's
        # older msvcrt implementation did (a Windows file system without byte-range locks is not known to exist).
        if exc.errno in _CONTENDED:
            return False
        raise
    return True


def unlock(fd: int, offset: int = 0) -> None:
    """Drop what `try_lock` took. Under msvcrt explicitly: Windows frees the locks of a closed handle only 'when
    resources allow'."""
    fcntl = _fcntl()
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        msvcrt = _msvcrt()
        if msvcrt is not None:
            os.lseek(fd, offset, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass  # not held (or already gone): closing the descriptor drops it anyway


def probe(fd: int, *, exclusive: bool = False, offset: int = 0) -> bool | None:
    """Whether some other holder has the file locked right now: True, False, or None (no locks to ask). A shared
    probe (flock) sees exclusive holders and does not make two probing processes see each other; msvcrt has only
    exclusive locks, so it probes with one, released at once."""
    got = try_lock(fd, exclusive or backend() == MSVCRT, offset)
    if got:
        unlock(fd, offset)
    return None if got is None else not got


def create_or_open(path) -> tuple[int, bool]:
    """Open a lock file, creating it 0o664 if needed: (descriptor, whether this call created it). Read-only when it
    is another user's file that this user may not write: locks work on such a descriptor on local file systems."""
    binary = getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | binary, LOCK_MODE)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR | binary), False
        except PermissionError:
            return os.open(path, os.O_RDONLY | binary), False
    set_lock_mode(fd)
    return fd, True


def set_lock_mode(fd: int) -> None:
    try:
        os.fchmod(fd, LOCK_MODE)  # the mode survives the umask, as huggingface_hub's lock files do
    except (OSError, AttributeError):
        pass  # (Windows has no fchmod, and no group bits to set)


# --- is a process alive? ----------------------------------------------------------------------------------------


def pid_exists(pid: int) -> bool | None:
    """Whether process `pid` exists on this machine; None when this platform cannot tell."""
    if os.name == "nt":
        return _windows_pid_exists(pid)
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)  # (never on Windows: signal 0 is CTRL_C_EVENT there)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


def _windows_pid_exists(pid: int) -> bool | None:
    """OpenProcess + GetExitCodeProcess, as filelock asks Windows."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.GetExitCodeProcess.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    process_query_limited_information, still_active = 0x1000, 259
    error_access_denied, error_invalid_parameter = 5, 87
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        error = ctypes.get_last_error()
        return True if error == error_access_denied else False if error == error_invalid_parameter else None
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return None
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
