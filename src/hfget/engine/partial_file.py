"""The partial of one file while it downloads: one descriptor written at any offset by many connections, and the
state file that says which of its bytes are good. (Its name is the caller's business: see FileJob.partial. The
blob lock taken around it lives in fs/locks.py.)

The caller (a `FileTask`) serialises the bookkeeping methods with its own lock and does the disk work (`pwrite`,
`save`, `close`) without it. Saving follows one policy: at most one connection saves at a time, and only when
`SAVE_EVERY` new bytes are written and `SAVE_INTERVAL` has passed, so writers never wait for each other's saves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..fs.fileio import open_binary, pwrite_all
from .resume_state import SAVE_EVERY, SAVE_INTERVAL, StateWriter
from .segments import IntervalSet

Snapshot = tuple  # (StateWriter, sequence number, ranges): what to save, taken under the lock


class PartialFile:
    def __init__(self, path: Path, size: int, algo: str, expected: str, *, stateful: bool) -> None:
        self.path = path
        self._identity = (size, algo, expected)
        self.fd = open_binary(path, os.O_RDWR | os.O_CREAT)
        self.state = StateWriter(path, size, algo, expected, exists=stateful)
        self.stateful = stateful  # the partial has (or may have) holes, so the state file describes it
        self._unsaved = 0
        self._saving = False
        self._last_save = 0.0

    def pwrite(self, at: int, data: memoryview) -> None:
        pwrite_all(self.fd, data, at)

    # --- bookkeeping (under the caller's lock) --------------------------------------------------------------

    def snapshot(self, done: IntervalSet) -> Snapshot | None:
        if not self.stateful or self.fd < 0:
            return None
        return (self.state, *self.state.snapshot(done))

    def make_stateful(self, done: IntervalSet) -> Snapshot | None:
        """Several connections are about to write: the state file must exist before the first hole does."""
        if self.stateful:
            return None
        self.stateful = True
        return self.snapshot(done)

    def wrote(self, n: int, done: IntervalSet) -> Snapshot | None:
        """Count `n` new bytes; a snapshot to save if one is due and nobody else is saving (then call
        `save(snapshot, periodic=True)`)."""
        self._unsaved += n
        if not self.stateful or self._saving or self._unsaved < SAVE_EVERY:
            return None
        now = time.monotonic()
        if now - self._last_save < SAVE_INTERVAL:
            return None
        self._saving, self._unsaved, self._last_save = True, 0, now
        return self.snapshot(done)

    def saved(self) -> None:
        self._saving = False

    def reset(self) -> None:
        """Start over from nothing: no state file, an empty partial."""
        self.state.remove()
        self.state = StateWriter(self.path, *self._identity)
        os.ftruncate(self.fd, 0)
        self.stateful = False
        self._unsaved = 0

    # --- disk work (without the lock) -----------------------------------------------------------------------

    @staticmethod
    def save(snapshot: Snapshot | None) -> None:
        if snapshot:
            writer, seq, ranges = snapshot
            writer.save(seq, ranges)

    def close(self) -> None:
        """Leave it for the next run (the caller saved the last snapshot)."""
        self.state.close()
        self._close_fd()

    def complete(self) -> None:
        """The bytes are verified: no state is needed any more; the partial is about to be moved into place."""
        self.state.remove()
        self._close_fd()

    def discard(self) -> None:
        """The bytes are bad: nothing of this partial may be used again."""
        self.state.remove()
        self._close_fd()
        self.path.unlink(missing_ok=True)

    def _close_fd(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self.fd < 0
