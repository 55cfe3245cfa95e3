#!/usr/bin/env python3
"""quirkyfs: a FUSE pass-through file system with switchable quirks, for tests.

Mirrors BACKING_DIR at MOUNTPOINT and can add, one by one:
  --case-insensitive   names match whatever their case (like macOS/Windows):
                       'FOO.json' opens 'foo.json', creating 'Foo.json' when
                       'foo.json' exists opens it, case-only renames work,
                       listings keep the stored case (like ciopfs, but the
                       backing folder keeps the real names)
  --no-symlinks        symlink() fails with EPERM (like vfat, or Windows without
                       the privilege); use --symlink-errno to pick another
  --no-hardlinks       link() fails with EPERM
  --flock MODE         local (default): the kernel locks locally (like ext4);
                       fail: flock() -> ENOLCK (like NFS without a lock manager);
                       noop: flock() always succeeds, excludes nothing
  --posix-lock MODE    the same for fcntl/lockf locks

Needs libfuse3 (apt-get install fuse3) and `pip install mfusepy` (pure Python; the tests build a venv for it).
The tests use it as the stand-in for a shared cache on NFS where locks exclude nothing (test_shared_cache_nfs.py).
Runs in the foreground until unmounted: `fusermount3 -u MOUNTPOINT`.

Usage: quirkyfs.py BACKING_DIR MOUNTPOINT [--case-insensitive] [--no-symlinks] ...
"""
import argparse
import errno
import fcntl
import os
import sys
import threading

import mfusepy as fuse
from mfusepy import FuseOSError


class QuirkyFS(fuse.Operations):
    use_ns = True

    def __init__(self, root, case_insensitive=False, symlink_errno=None, hardlink_errno=None,
                 flock="local", posix_lock="local"):
        self.root = os.path.realpath(root)
        self.ci = case_insensitive
        self.symlink_errno = symlink_errno
        self.hardlink_errno = hardlink_errno
        self._rename_lock = threading.Lock()
        # None -> mfusepy leaves the libfuse callback unset -> kernel-local locks
        if flock == "local":
            self.flock = None
        else:
            self._flock_mode = flock
        if posix_lock == "local":
            self.lock = None
        else:
            self._posix_mode = posix_lock

    # -- path mapping -----------------------------------------------------
    def _real(self, path):
        """Backing path for a FUSE path; with case-insensitivity, existing
        components are matched ignoring case (exact match preferred)."""
        cur = self.root
        parts = [p for p in path.split("/") if p]
        for i, comp in enumerate(parts):
            cand = os.path.join(cur, comp)
            if not self.ci or os.path.lexists(cand):
                cur = cand
                continue
            key = comp.casefold()
            try:
                match = sorted(n for n in os.listdir(cur) if n.casefold() == key)
            except (FileNotFoundError, NotADirectoryError):
                match = []
            if not match:
                return os.path.join(cur, *parts[i:])
            cur = os.path.join(cur, match[0])
        return cur

    # -- metadata ----------------------------------------------------------
    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._real(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blocks")
        d = {k: getattr(st, k) for k in keys}
        d["st_atime"], d["st_mtime"], d["st_ctime"] = d.pop("st_atime_ns"), \
            d.pop("st_mtime_ns"), d.pop("st_ctime_ns")
        return d

    def access(self, path, amode):
        if not os.access(self._real(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.lchown(self._real(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._real(path), ns=times, follow_symlinks=False)
        return 0

    def statfs(self, path):
        sv = os.statvfs(self._real(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}

    # -- directories ---------------------------------------------------------
    def readdir(self, path, fh):
        # st_ino must be given: with use_ino an entry with inode 0 is hidden by readdir(3)
        real = self._real(path)
        out = []
        for name in [".", ".."] + sorted(os.listdir(real)):
            st = os.lstat(os.path.join(real, name)) if name != ".." else os.lstat(real)
            out.append((name, {"st_mode": st.st_mode, "st_ino": st.st_ino}, 0))
        return out

    def mkdir(self, path, mode):
        os.mkdir(self._real(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self._real(path))
        return 0

    # -- names -----------------------------------------------------------------
    def unlink(self, path):
        os.unlink(self._real(path))
        return 0

    def rename(self, old, new):
        with self._rename_lock:
            src, dst = self._real(old), self._real(new)
            literal = os.path.join(os.path.dirname(dst), os.path.basename(new))
            if self.ci and dst != literal and os.path.lexists(dst):
                if os.path.samestat(os.lstat(src), os.lstat(dst)):
                    os.rename(src, literal)          # case-only rename
                    return 0
                os.rename(src, dst)                  # replace, then take the new case
                os.rename(dst, literal)
                return 0
            os.rename(src, dst)
        return 0

    def symlink(self, target, source):  # target: link path in the mount; source: its text
        if self.symlink_errno:
            raise FuseOSError(self.symlink_errno)
        os.symlink(source, self._real(target))
        return 0

    def readlink(self, path):
        return os.readlink(self._real(path))

    def link(self, target, source):  # target: new name; source: existing file
        if self.hardlink_errno:
            raise FuseOSError(self.hardlink_errno)
        os.link(self._real(source), self._real(target))
        return 0

    def mknod(self, path, mode, dev):
        os.mknod(self._real(path), mode, dev)
        return 0

    # -- files -------------------------------------------------------------------
    def create(self, path, mode, fi=None):
        return os.open(self._real(path), os.O_RDWR | os.O_CREAT, mode)

    def open(self, path, flags):
        return os.open(self._real(path), flags & ~(os.O_CREAT | os.O_EXCL))

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._real(path), length)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    # -- locks (only used when not "local") -------------------------------------
    def flock(self, path, fh, op):  # noqa: F811 (replaced by None in "local" mode)
        if self._flock_mode == "fail":
            raise FuseOSError(errno.ENOLCK)
        return 0

    def lock(self, path, fh, cmd, lock):  # noqa: F811
        if self._posix_mode == "fail":
            raise FuseOSError(errno.ENOLCK)
        if cmd == fcntl.F_GETLK and lock:
            lock.contents.l_type = fcntl.F_UNLCK
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--case-insensitive", action="store_true")
    ap.add_argument("--no-symlinks", action="store_true")
    ap.add_argument("--symlink-errno", default="EPERM", help="errno name for --no-symlinks")
    ap.add_argument("--no-hardlinks", action="store_true")
    ap.add_argument("--flock", choices=["local", "fail", "noop"], default="local")
    ap.add_argument("--posix-lock", choices=["local", "fail", "noop"], default="local")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    ops = QuirkyFS(
        a.backing, case_insensitive=a.case_insensitive,
        symlink_errno=getattr(errno, a.symlink_errno) if a.no_symlinks else None,
        hardlink_errno=errno.EPERM if a.no_hardlinks else None,
        flock=a.flock, posix_lock=a.posix_lock)
    quirks = [q for q, on in (("case-insensitive", a.case_insensitive), ("no-symlinks", a.no_symlinks),
                              ("no-hardlinks", a.no_hardlinks)) if on]
    quirks += ["flock=" + a.flock, "posix-lock=" + a.posix_lock]
    print("quirkyfs: %s -> %s (%s)" % (a.backing, a.mountpoint, ", ".join(quirks)), flush=True)
    # timeouts 0: no stale kernel caches when several names reach one file
    fuse.FUSE(ops, a.mountpoint, foreground=True, nothreads=False, debug=a.debug,
              fsname="quirkyfs", subtype="quirkyfs", use_ino=True,
              entry_timeout=0, attr_timeout=0, negative_timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
