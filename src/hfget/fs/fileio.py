"""Reading and writing a file at an offset from many threads, and opening files in binary mode, on every platform.

- `pwrite_all` / `pread_into`: `os.pwrite` and `os.preadv` where the platform has them (Linux, macOS 11+); `os.pread`
  where only that exists (older macOS); elsewhere (Windows, which has none of them) a seek and a write (or read)
  under a lock per descriptor, because the descriptor's position is shared by every thread using it. The choice is
  made at each call, by what `os` offers: a test can take the functions away and exercise the fallback for real.
- `open_binary`: `os.open` with `O_BINARY` where it exists. On Windows a descriptor from `os.open` is in *text* mode
  unless asked otherwise: the C runtime turns every b"\\n" written into b"\\r\\n" and stops reading at b"\\x1a",
  which would corrupt every partial (Python's own `open()` adds O_BINARY itself; `os.open` does not).
"""

from __future__ import annotations

import os
import threading

# The fallback's locks, striped by descriptor number: a fixed table, so nothing grows with the files a long-lived
# process opens, and two descriptors rarely share a stripe (sharing one only serialises them, harmlessly).
_STRIPES = tuple(threading.Lock() for _ in range(64))


def open_binary(path, flags: int, mode: int = 0o666) -> int:
    return os.open(path, flags | getattr(os, "O_BINARY", 0), mode)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, at: int) -> None:
    """Write all of `data` at offset `at` of `fd`, whatever other threads do with the same descriptor."""
    view = memoryview(data)
    pwrite = getattr(os, "pwrite", None)
    if pwrite is not None:
        while view:
            written = pwrite(fd, view, at)
            view, at = view[written:], at + written
        return
    with _STRIPES[fd % len(_STRIPES)]:
        os.lseek(fd, at, os.SEEK_SET)
        while view:
            view = view[os.write(fd, view):]


def pread_into(fd: int, buffer: memoryview, at: int) -> int:
    """Read up to len(buffer) bytes at offset `at` of `fd` into `buffer`; the number read (0 at the end)."""
    preadv = getattr(os, "preadv", None)
    if preadv is not None:
        return preadv(fd, [buffer], at)
    pread = getattr(os, "pread", None)
    if pread is not None:
        data = pread(fd, len(buffer), at)
    else:
        with _STRIPES[fd % len(_STRIPES)]:
            os.lseek(fd, at, os.SEEK_SET)
            data = os.read(fd, len(buffer))
    buffer[: len(data)] = data
    return len(data)
