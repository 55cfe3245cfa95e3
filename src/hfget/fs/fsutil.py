"""Small file-system helpers shared by the cache writer and the transfer engine."""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from pathlib import Path

from ..errors import CachePermissionError, DiskError, DiskFullError, ProtocolError


class disk_errors:
    """Context manager: turn ENOSPC/EACCES/EROFS from the file system into hfget's disk errors."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, OSError) or isinstance(exc, DiskError):
            return False
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"The disk holding {self.root} is full ({exc.strerror}).",
                "Free some space and run the same command again: finished files are kept and partial ones resume.",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            raise permission_error(self.root, Path(exc.filename or self.root), exc.strerror) from None
        raise DiskError(
            f"Writing to the cache at {self.root} failed: {exc.strerror or exc} ({exc.filename}).",
            "Check the disk and the directory's permissions, then run the same command again.",
        ) from None


def permission_error(root: Path, where: Path, why: str | None = None) -> CachePermissionError:
    return CachePermissionError(
        f"The cache directory {root} is not writable ({why or 'permission denied'} at {where}).",
        "Point --cache-dir (or HF_HUB_CACHE / HF_HOME) at a directory you can write, or fix its permissions.",
    )


TEMP_ROOM = 14  # characters atomic_write's temporary name adds to the final one: "." + name + ".XXXXXXXX.tmp"


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        chmod_like_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask now: read at every use, because an application calling hfget's API may change it
    between calls. Linux shows it in /proc without changing it; elsewhere it is set and put back, which is safe
    only while no other thread creates files, so that is done once per process, on first use."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for row in fh:
                if row.startswith(b"Umask:"):
                    return int(row.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_by_setting_it()


@functools.lru_cache(maxsize=1)
def _umask_by_setting_it() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def chmod_like_umask(path: Path, umask: int | None = None) -> None:
    """`umask`: the caller's reading of `current_umask()` (a cache placing thousands of small files reads it once per
    call instead of once per file)."""
    # mkstemp creates 0600 files; cache files should be readable like any file the user creates (0644 by default).
    try:
        os.chmod(path, 0o666 & ~(current_umask() if umask is None else umask))
    except OSError as exc:
        # FAT and exFAT (USB drives, shared Windows folders) have no Unix modes: there is nothing to set, as
        # huggingface_hub also shrugs off. Any other failure is a real one.
        if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
            raise


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


@functools.lru_cache(maxsize=4096)
def _resolved_base(folder: str) -> Path:
    # Folders of hfget's own targets (a snapshot and its subfolders, a --local-dir), checked once per file: resolving
    # each once per run instead of once per file matters for repos of thousands of files. hfget never turns one of
    # them into a symlink while it runs; between runs someone else may, so every download starts afresh
    # (forget_resolved_paths).
    return Path(folder).resolve()


def forget_resolved_paths() -> None:
    """Drop the folders resolved by earlier calls: a folder replaced by a symlink since must be seen as one."""
    _resolved_base.cache_clear()


def ensure_inside(target: Path, base: Path, shown: str) -> None:
    """Refuse a path whose folder resolves outside `base` (`..`, or a symlinked folder pointing elsewhere).

    The file itself is not resolved: in the cache it is a symlink into blobs/, which is expected.
    """
    try:
        (_resolved_base(str(target.parent)) / target.name).relative_to(_resolved_base(str(base)))
        if target.name in ("", ".", ".."):
            raise ValueError(target.name)
    except ValueError:
        raise ProtocolError(
            f"The file path {shown!r} would be written outside {base}; hfget refuses.",
            "This server is broken or hostile; use another source.",
        ) from None
