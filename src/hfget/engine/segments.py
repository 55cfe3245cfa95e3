"""Byte-range bookkeeping for one file: which bytes are on disk, which are being fetched, which are still free.

Pure data structures, no I/O and no locking (the caller holds the file's lock). The transfer engine uses them to
hand out *pieces* to connections in increasing offset order (so the streaming hash can follow the downloaded
prefix closely instead of re-reading the whole file at the end), and to *steal* work: when no free piece is left, an
idle connection takes the second half of the busiest connection's remaining range, so a slow or stalled connection
never holds up the end of a file.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

MIB = 1 << 20


class IntervalSet:
    """Sorted, disjoint, merged half-open ranges [start, end)."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # Every range that touches or overlaps [start, end) is merged into it.
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def remove(self, start: int, end: int) -> None:
        if end <= start:
            return
        kept = [(s, e) for s, e in self.ranges() if e <= start or s >= end]
        kept += [(s, start) for s, e in self.ranges() if s < start < e]
        kept += [(end, e) for s, e in self.ranges() if s < end < e]
        self._starts, self._ends = [], []
        for s, e in sorted(kept):
            self.add(s, e)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends))

    @property
    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def run_end(self, pos: int) -> int:
        """The end of the range that contains `pos` (or `pos` itself if none does)."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and self._ends[i] > pos:
            return self._ends[i]
        return pos

    def covers(self, start: int, end: int) -> bool:
        return end <= start or self.run_end(start) >= end

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not in the set."""
        out, pos = [], start
        for s, e in self.ranges():
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                out.append((pos, min(s, end)))
            pos = max(pos, e)
        if pos < end:
            out.append((pos, end))
        return out

    def clipped(self, limit: int) -> IntervalSet:
        return IntervalSet((s, min(e, limit)) for s, e in self.ranges() if s < limit)

    def first(self) -> tuple[int, int] | None:
        return (self._starts[0], self._ends[0]) if self._starts else None


@dataclass(eq=False)
class Segment:
    """The range one connection is fetching. `end` shrinks when another connection steals the tail."""

    start: int
    end: int
    pos: int  # bytes [start, pos) are claimed by this connection (written, or being written)
    splittable: bool = True
    open_ended: bool = False  # asked for with `bytes=pos-` (or no Range at all), not `bytes=pos-(end-1)`
    began: float = 0.0  # when it was handed out (monotonic seconds)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def seconds_left(self, now: float) -> float:
        """At the rate seen so far; a segment that has received nothing for a while counts as very slow."""
        elapsed = now - self.began
        if elapsed < 0.05:
            return 0.0  # its request is still on its way: no judgement yet
        rate = (self.pos - self.start) / elapsed
        return self.remaining / rate if rate > 0 else float("inf")


@dataclass(frozen=True)
class PieceSizes:
    """How big the pieces handed to connections are.

    A piece is `free bytes / (2 × connections)`, clamped: large enough that the per-request round trip is small next
    to the transfer, shrinking towards the end of the file so connections finish together.
    """

    min_piece: int = 1 * MIB
    max_piece: int = 32 * MIB
    min_steal: int = 1 * MIB  # a connection's remaining range is split only if both halves get at least this much
    # ...and only if it would need at least this long to finish alone: splitting a fast connection gains nothing
    # and throws away what the server already pushed into its socket.
    min_steal_seconds: float = 0.25

    def piece(self, free: int, connections: int) -> int:
        return max(self.min_piece, min(self.max_piece, free // max(1, 2 * connections)))

    def worth_splitting(self, size: int) -> bool:
        return size >= 2 * self.min_piece


class SegmentPlan:
    """Free ranges, active segments and claimed bytes of one file, for one download attempt.

    The caller serialises every call with the file's lock. `done` is only updated through `mark_written`, after the
    bytes are in the file, so a resume state built from it never claims bytes that are not on disk.
    """

    def __init__(self, size: int, done: IntervalSet, sizes: PieceSizes) -> None:
        self.size = size
        self.done = done
        self.sizes = sizes
        self.free = IntervalSet(done.gaps(0, size))
        self.active: list[Segment] = []

    # --- handing out work -----------------------------------------------------------------------------------

    def lead(self, split: bool, connections: int, now: float = 0.0) -> Segment | None:
        """The first request's range: the first free piece (split) or everything from the first free byte."""
        first = self.free.first()
        if first is None:
            return None
        if split:
            return self.next_piece(connections, now)
        start = first[0]
        # One stream writes sequentially; bytes already on disk beyond `start` are simply written again.
        segment = Segment(start, self.size, start, splittable=False, open_ended=True, began=now)
        self.free.remove(start, self.size)
        self.active.append(segment)
        return segment

    def next_piece(self, connections: int, now: float = 0.0) -> Segment | None:
        first = self.free.first()
        if first is None:
            return None
        start, gap_end = first
        end = min(gap_end, start + self.sizes.piece(self.free.total, connections))
        if gap_end - end < self.sizes.min_piece // 2:
            end = gap_end  # don't leave a sliver behind for a request of its own
        self.free.remove(start, end)
        segment = Segment(start, end, start, open_ended=end == self.size, began=now)
        self.active.append(segment)
        return segment

    def _victim(self, now: float) -> Segment | None:
        """The active segment that would take longest to finish, if splitting it is worth a new request."""
        candidates = [s for s in self.active if s.splittable and s.remaining >= 2 * self.sizes.min_steal]
        victim = max(candidates, key=lambda s: (s.seconds_left(now), s.remaining), default=None)
        if victim is None or victim.seconds_left(now) < self.sizes.min_steal_seconds:
            return None
        return victim

    def steal(self, now: float) -> Segment | None:
        """Split the slowest active segment; the new segment takes its second half."""
        victim = self._victim(now)
        if victim is None:
            return None
        middle = victim.pos + victim.remaining // 2
        thief = Segment(middle, victim.end, middle, open_ended=victim.end == self.size, began=now)
        victim.end = middle
        self.active.append(thief)
        return thief

    def has_free(self) -> bool:
        return bool(self.free)

    def can_steal(self, now: float) -> bool:
        return self._victim(now) is not None

    # --- progress -------------------------------------------------------------------------------------------

    def claim(self, segment: Segment, n: int) -> tuple[int, int]:
        """Reserve up to `n` bytes at the segment's position: (offset, count). Count 0: the segment is finished."""
        take = max(0, min(n, segment.end - segment.pos))
        at = segment.pos
        segment.pos += take
        return at, take

    def mark_written(self, at: int, n: int) -> None:
        self.done.add(at, at + n)

    def release(self, segment: Segment) -> None:
        """The connection stopped (finished, failed or cancelled): whatever of its range is not on disk is free again.

        Only the owner calls this, after its last write, so no claimed byte is still in flight.
        """
        if segment in self.active:
            self.active.remove(segment)
        for gap_start, gap_end in self.done.gaps(segment.start, segment.end):
            self.free.add(gap_start, gap_end)

    @property
    def complete(self) -> bool:
        return self.done.covers(0, self.size)
