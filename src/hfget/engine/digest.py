"""Content hashes: sha256 for LFS files, git's blob sha1 for the rest, computed while the bytes arrive.

`FrontierHasher` lets several connections write one file out of order and still hash it in a single pass: the
bytes at the hash frontier are hashed straight from the connection's buffer, and bytes that landed ahead of the
frontier (fetched by other connections) are read back once the gap before them closes. Because the engine hands out
pieces in increasing order, those bytes were written moments ago and are read from the page cache, not the disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ..fs.fileio import pread_into

READ_BACK = 8 << 20  # large: the hashing thread competes for the GIL with every connection, once per read


def content_hasher(algo: str, size: int):
    """A fresh hashlib object for a file's content id: "sha256" (LFS files) or "git-sha1", git's blob id, the sha1
    of `blob {size}\\0` followed by the content. The one place that knows how a git blob id is made."""
    if algo == "sha256":
        return hashlib.sha256()
    if algo == "git-sha1":
        return hashlib.sha1(b"blob %d\0" % size)
    raise ValueError(algo)


def git_blob_sha1(path: Path) -> str:
    """git's id for a file's content (read in chunks: constant memory)."""
    h = content_hasher("git-sha1", os.stat(path).st_size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(READ_BACK), b""):
            h.update(block)
    return h.hexdigest()


def lfs_pointer_oid(sha256: str, size: int) -> str:
    """The git blob id of an LFS pointer file: what the hub lists as an LFS file's `oid`."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    h = content_hasher("git-sha1", len(pointer))
    h.update(pointer)
    return h.hexdigest()


class Digest:
    """Streaming hash: sha256 (LFS files) or git's blob sha1 (`sha1("blob {size}\\0" + content)`)."""

    def __init__(self, algo: str, expected: str, size: int) -> None:
        self.algo, self.expected, self.size = algo, expected, size
        self.reset()

    def reset(self) -> None:
        self._h = content_hasher(self.algo, self.size)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def matches(self) -> bool:
        return self._h.hexdigest() == self.expected

    @property
    def actual(self) -> str:
        return self._h.hexdigest()

    @classmethod
    def of_file(cls, path: Path, algo: str, expected: str, size: int) -> bool:
        """Whether the file at `path` hashes to `expected` (read in chunks: constant memory)."""
        digest = cls(algo, expected, size)
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(READ_BACK), b""):
                    digest.update(block)
        except OSError:
            return False
        return digest.matches()


class FrontierHasher:
    """Hashes a file that is written out of order, in order, exactly once.

    `cursor` is the number of leading bytes hashed. Only one thread hashes at a time (`busy`); the others just
    record their writes. The caller supplies `contiguous_end(pos)` (how far the written bytes run from `pos`),
    evaluated under the caller's lock, and the same lock object, and records its writes under that lock: "nothing
    more to hash" and "clear busy" then happen atomically with respect to writers, so no write is left unhashed.
    """

    def __init__(self, digest: Digest, fd: int, lock, contiguous_end: Callable[[int], int]) -> None:
        self.digest = digest
        self.fd = fd
        self.lock = lock
        self.contiguous_end = contiguous_end
        self.cursor = 0
        self.busy = False
        self.abandoned = False  # the download started over: this hasher's bytes no longer count
        self._buffer: bytearray | None = None

    def begin(self, at: int) -> str | None:
        """(Under the lock, right after recording a write at `at`.) Whether the calling thread hashes now:
        "inline" (its bytes sit at the frontier: hash them from memory, then catch up), "catch-up", or None."""
        if self.busy or self.contiguous_end(self.cursor) <= self.cursor:
            return None
        self.busy = True
        return "inline" if at == self.cursor else "catch-up"

    def run(self, inline: memoryview | bytes | None = None) -> None:
        """(Without the lock, after `begin` said so.) Hash `inline`, then whatever else is written contiguously."""
        try:
            if inline is not None:
                self.digest.update(inline)
                self.cursor += len(inline)
            while True:
                with self.lock:
                    end = self.contiguous_end(self.cursor)
                    if end <= self.cursor or self.abandoned:
                        self.busy = False
                        return
                while self.cursor < end:
                    if self._buffer is None:  # one buffer per file, reused: no 8 MiB allocation per read
                        self._buffer = bytearray(READ_BACK)
                    view = memoryview(self._buffer)[: min(READ_BACK, end - self.cursor)]
                    n = pread_into(self.fd, view, self.cursor)
                    if not n:
                        if self.abandoned:  # the partial was truncated for a fresh start meanwhile
                            break
                        raise OSError(f"the partial file ended at {self.cursor} while hashing")
                    self.digest.update(view[:n])
                    self.cursor += n
        except BaseException:
            with self.lock:
                self.busy = False
            raise

    def pump(self) -> None:
        """Hash whatever is written and not yet hashed (unless another thread is already at it)."""
        with self.lock:
            mode = self.begin(-1)
        if mode:
            self.run()
