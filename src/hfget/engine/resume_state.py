"""What an interrupted download left on disk, and the small state file that says which of its bytes are good.

A partial (named by the caller: in the cache `{key}.hfget-{owner}.partial`, see store/partials.py) written by one
stream is a prefix of the file and needs nothing else. Written by several connections it has holes, so a state file
next to it, `{partial}.state.json`, lists the byte ranges that are on disk, with the file's size and expected hash:

    {"version": 1, "size": 1073741824, "algo": "sha256", "expected": "<hex>", "done": [[0, 4194304], ...]}

The state is rewritten every `SAVE_EVERY` written bytes (at most every `SAVE_INTERVAL`) and when the file stops,
so a run killed with `kill -9` loses about that many bytes of work (or 50 ms of it, at high rates). It only ever lists bytes that were written before
it was saved. The next run, from any source that promises the same hash and size, fetches only the gaps; the final
hash check covers everything else (a machine crash that lost written pages, a source serving other bytes).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..fs.fileio import open_binary, pwrite_all
from ..fs.fsutil import file_size
from .segments import IntervalSet

STATE_SUFFIX = ".state.json"
FORMAT_VERSION = 1
SAVE_EVERY = 512 * 1024
SAVE_INTERVAL = 0.05  # at most 20 saves a second per file, however fast the bytes come


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + STATE_SUFFIX)


def load_done(partial: Path, size: int, algo: str, expected: str) -> tuple[IntervalSet, bool]:
    """The byte ranges of `partial` that can be kept, and whether a state file describes them.

    Anything that cannot belong to this file (a state for another size or hash, a partial longer than the file, a
    state file that cannot be read) is deleted here, so the caller starts from a clean slate.
    """
    on_disk = file_size(partial)
    state = _read(state_path(partial), remove_unreadable=True)
    if state is not None and (state.get("size"), state.get("algo"), state.get("expected")) != (size, algo, expected):
        discard(partial)
        return IntervalSet(), False
    if state is None:
        if on_disk > size:
            discard(partial)
            return IntervalSet(), False
        return IntervalSet([(0, on_disk)]), False
    try:
        done = IntervalSet((int(a), int(b)) for a, b in state.get("done", []))
    except (TypeError, ValueError):
        discard(partial)
        return IntervalSet(), False
    return done.clipped(min(on_disk, size)), True


def pending_bytes(partial: Path, size: int, algo: str, expected: str) -> int:
    """Bytes still to fetch for this file (read-only: nothing is deleted)."""
    on_disk = file_size(partial)
    state = _read(state_path(partial))
    if state is None:
        return size - on_disk if on_disk <= size else size
    if (state.get("size"), state.get("algo"), state.get("expected")) != (size, algo, expected):
        return size
    try:
        done = IntervalSet((int(a), int(b)) for a, b in state.get("done", [])).clipped(min(on_disk, size))
    except (TypeError, ValueError):
        return size
    return size - done.total


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    state_path(partial).unlink(missing_ok=True)


def _read(path: Path, remove_unreadable: bool = False) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        if remove_unreadable:  # torn by a power cut, or another format: the partial is then read as a prefix
            path.unlink(missing_ok=True)
        return None
    return data


class StateWriter:
    """Saves snapshots of a file's written ranges, newest wins, from any thread.

    The state file is rewritten in place with one `pwrite` (padded with spaces so it never shrinks, which JSON
    allows): a killed process leaves either the old or the new text, never a mix, and there is no per-save rename.
    (Renaming over a file makes ext4 flush the new file's data first, which made saves the bottleneck.) Only a
    power cut can tear the text; an unreadable state is treated as absent, and the final hash check still guards
    the bytes.
    """

    def __init__(self, partial: Path, size: int, algo: str, expected: str, *, exists: bool = False) -> None:
        self.path = state_path(partial)
        self._may_exist = exists  # a state file from an earlier run, or one this writer created
        self.header = {"version": FORMAT_VERSION, "size": size, "algo": algo, "expected": expected}
        self._lock = threading.Lock()
        self._fd = -1
        self._length = 0
        self._saved_seq = -1
        self._seq = 0
        self._removed = False

    def snapshot(self, done: IntervalSet) -> tuple[int, list[tuple[int, int]]]:
        """Call under the file's lock: a numbered copy of `done`, to be saved after the lock is released."""
        self._seq += 1
        return self._seq, done.ranges()

    def save(self, seq: int, ranges: list[tuple[int, int]]) -> None:
        with self._lock:
            if seq <= self._saved_seq or self._removed:
                return  # a newer snapshot is already on disk, or the file is finished
            data = json.dumps({**self.header, "done": ranges}, separators=(",", ":")).encode()
            if self._fd < 0:
                self._fd = open_binary(self.path, os.O_WRONLY | os.O_CREAT)
                self._may_exist = True
                self._length = os.fstat(self._fd).st_size
            padded = data.ljust(self._length)
            pwrite_all(self._fd, padded, 0)
            self._length = len(padded)
            self._saved_seq = seq

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def remove(self) -> None:
        with self._lock:
            self._removed = True  # no late snapshot may bring it back
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._may_exist:  # (most files never have one: no syscall for them)
                self.path.unlink(missing_ok=True)
