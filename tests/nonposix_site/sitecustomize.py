"""A Python process that offers hfget what Windows offers, as far as code can tell by looking at capabilities.

Put this folder first on PYTHONPATH and set HFGET_NONPOSIX to `windows` or `nolocks`; Python imports this module at
start-up (site.py), before hfget or any library. Every change below is one a Windows Python really has:

- `import fcntl` (and `resource`) fail with ModuleNotFoundError, as on Windows.
- `os.pwrite`, `os.pread`, `os.preadv`, `os.pwritev`, `os.readv`, `os.writev`, `os.copy_file_range` do not exist
  (Windows' os module has none of them in Python 3.10-3.12). `os.fchmod` (added to Windows in 3.13) stays: filelock
  and huggingface_hub pick their branch by `sys.platform`, which says Linux here, and call it.
- `os.symlink` raises OSError as Windows does for a user without the symlink privilege (no Developer Mode): errno
  EINVAL, `winerror` 1314, "A required privilege is not held by the client".
- `os.O_BINARY` exists, and a file opened with `os.open` *without* it is in text mode: `os.write` turns each
  b"\\n" into b"\\r\\n" (the C runtime's default `_O_TEXT`), so a forgotten O_BINARY corrupts data as it would there.
- `os.unlink`/`os.remove` refuse a file without write permission (Windows' read-only attribute): PermissionError.
- `windows` only: a `msvcrt` module whose `locking()` takes Windows' byte-range locks (exclusive, per handle, from
  the descriptor's current position), made of Linux open-file-description locks (F_OFD_SETLK: per descriptor like a
  Windows handle, released on close or death). Real Windows locks are also mandatory (a locked byte cannot be read
  by others); this stand-in is advisory, and a read-only descriptor takes a read lock (F_WRLCK needs a writable
  one), so two read-only probes do not see each other here as they would there.
  `nolocks`: no msvcrt either, a platform with no file locks at all (huggingface_hub's filelock then uses
  SoftFileLock; hfget its soft locks and markers).

What it cannot change: `os.name` and `sys.platform` stay POSIX (pathlib and the standard library choose their
implementation by them at import), so hfget's Windows-only branches keyed on them (`\\\\?\\` paths, the Windows name
rules, PowerShell forms) are tested by calling them with `windows=True`, and on the Windows CI runner for real.
"""

import os
import sys

_MODE = os.environ.get("HFGET_NONPOSIX", "")

if _MODE in ("windows", "nolocks"):
    import errno
    import fcntl as _fcntl  # the real one, for the msvcrt stand-in only; nobody else can import it from now on
    import importlib.abc
    import stat
    import struct
    import types

    _BLOCKED = {"fcntl", "resource"}

    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in _BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
    for _name in _BLOCKED:
        sys.modules.pop(_name, None)

    for _name in ("pwrite", "pread", "preadv", "pwritev", "readv", "writev", "copy_file_range"):
        if hasattr(os, _name):
            delattr(os, _name)

    def _symlink(src, dst, target_is_directory=False, *, dir_fd=None):
        error = OSError(errno.EINVAL, "A required privilege is not held by the client", os.fspath(src), None,
                        os.fspath(dst))
        error.winerror = 1314
        raise error

    os.symlink = _symlink

    # --- text mode unless O_BINARY ------------------------------------------------------------------------------
    os.O_BINARY = 0x8000  # Windows' value; on Linux the kernel's O_LARGEFILE, always implied on 64-bit: stripped
    _real_open, _real_write, _real_close = os.open, os.write, os.close
    _text_fds: set[int] = set()

    def _open(path, flags, mode=0o777, *, dir_fd=None):
        binary = flags & os.O_BINARY
        fd = _real_open(path, flags & ~os.O_BINARY, mode, dir_fd=dir_fd)
        if binary:
            _text_fds.discard(fd)
        elif stat.S_ISREG(os.fstat(fd).st_mode):
            _text_fds.add(fd)
        return fd

    def _write(fd, data):
        if fd in _text_fds:
            raw = bytes(data)
            _real_write(fd, raw.replace(b"\n", b"\r\n"))
            return len(raw)
        return _real_write(fd, data)

    def _close(fd):
        _text_fds.discard(fd)
        return _real_close(fd)

    os.open, os.write, os.close = _open, _write, _close

    # --- read-only files cannot be deleted ----------------------------------------------------------------------
    _real_unlink = os.unlink

    def _unlink(path, *, dir_fd=None):
        try:
            st = os.lstat(path, dir_fd=dir_fd)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IWUSR:
            raise PermissionError(errno.EACCES, "Access is denied", os.fspath(path))
        return _real_unlink(path, dir_fd=dir_fd)

    os.unlink = os.remove = _unlink
    if "shutil" in sys.modules:  # (not normally imported yet) its fd-based rmtree would bypass os.unlink
        sys.modules["shutil"]._use_fd_functions = False

    # --- msvcrt -------------------------------------------------------------------------------------------------
    if _MODE == "windows":
        # subprocess and getpass take "msvcrt imports" to mean "this is Windows": they choose before it exists
        # (processes are still started the Linux way: this is Linux).
        import getpass  # noqa: F401
        import subprocess  # noqa: F401

        _OFD_SETLK = getattr(_fcntl, "F_OFD_SETLK", 37)

        def _ofd(fd: int, kind: int, start: int, length: int) -> None:
            # struct flock on 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
            _fcntl.fcntl(fd, _OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0))

        def locking(fd: int, mode: int, nbytes: int) -> None:
            position = os.lseek(fd, 0, os.SEEK_CUR)
            if mode == msvcrt.LK_UNLCK:
                _ofd(fd, _fcntl.F_UNLCK, position, nbytes)
                return
            writable = _fcntl.fcntl(fd, _fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
            try:
                _ofd(fd, _fcntl.F_WRLCK if writable else _fcntl.F_RDLCK, position, nbytes)
            except (BlockingIOError, PermissionError):
                # the C runtime's _locking with _LK_NBLCK: "the file cannot be locked" -> EACCES
                raise PermissionError(errno.EACCES, "Permission denied") from None

        msvcrt = types.ModuleType("msvcrt", "Windows' msvcrt, as far as hfget uses it (tests/nonposix_site)")
        msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK, msvcrt.LK_RLCK, msvcrt.LK_NBRLCK = 0, 1, 2, 3, 4
        msvcrt.locking = locking
        sys.modules["msvcrt"] = msvcrt
