"""A caching mirror's block store, the way olah (the mirror teams run) keeps one: a simulator knob (`sim.block_cache`).

A file is fetched "upstream" in blocks (olah: 64 MiB), each once. The first request touching a block that is not
saved yet *leads*: the block is fetched at `upstream_rate`, the leader's own range streams as it arrives except its
last piece, which waits until the block is saved. Every other request on that block is *held* (headers, then
nothing) until then. Saving needs a worker that held requests do not occupy: with `starve_at` requests held (olah's
thread pool has 40 workers, all busy polling for the block), nothing is saved until the leader's client hangs up,
which abandons the fetch: the next request fetches the block again from the start. `fetched` counts the bytes taken
from upstream, abandoned fetches included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BlockCache:
    def __init__(self, block_size: int, upstream_rate: float, starve_at: int | None = None) -> None:
        self.block_size = block_size
        self.upstream_rate = upstream_rate  # bytes/s of one block fetch
        self.starve_at = starve_at
        self.fetched = 0
        self._saved: set[tuple] = set()
        self._leading: set[tuple] = set()
        self._held = 0
        self._cond = threading.Condition()

    def take(self, block: tuple, stop: threading.Event) -> bool:
        """Wait while another request fetches `block`; True if the caller must fetch it (it leads), False if saved."""
        with self._cond:
            if block in self._leading:
                self._held += 1
                try:
                    while block in self._leading and not stop.is_set():
                        self._cond.wait(0.05)
                finally:
                    self._held -= 1
            if block in self._saved:
                return False
            self._leading.add(block)
            return True

    def fetch(self, block: tuple, length: int, began: float, gone: Callable[[], bool], stop: threading.Event) -> bool:
        """(The leader, after streaming its range.) Wait for the rest of the block, then save it once a worker is
        free; False if the leader's client hung up first (the fetch is abandoned)."""
        done_at = began + length / self.upstream_rate
        while True:
            with self._cond:
                starved = self.starve_at is not None and self._held >= self.starve_at
                if time.monotonic() >= done_at and not starved:
                    self._leading.discard(block)
                    self._saved.add(block)
                    self.fetched += length
                    self._cond.notify_all()
                    return True
            if gone() or stop.wait(0.02):
                self.abandon(block, length, began)
                return False

    def abandon(self, block: tuple, length: int, began: float) -> None:
        with self._cond:
            if block in self._leading:
                self._leading.discard(block)
                self.fetched += min(length, int((time.monotonic() - began) * self.upstream_rate))
                self._cond.notify_all()
