"""What a server shows it tolerates while a file downloads: failures counted per wave, ranges it holds back, and the
connections per file it is worth giving it from then on.

Some servers cannot take parallel ranges of one file. A caching mirror (olah, which teams run) fetches each 64 MiB
block upstream once and holds every other request on that block until the block is saved; with dozens of held
requests it starves its own worker threads and stalls altogether. A CDN may refuse connections beyond a few. The
signs, per file:

- *waves*: the requests already on their way when a failure comes in (64 connections stalling on one busy server)
  fail as one event; a file gives up after `attempts` waves in a row with no progress in between. A wave of stalls
  or refusals among parallel ranges leaves the file only the connections still working in it, down to one stream;
- *held ranges*: a second range of the file waits seconds for its first byte while the first range got its own
  quickly (the server fetches on demand and holds the rest), or the first waited seconds and a later one hardly at
  all (another client's fetch held it): the file goes on as one stream, like `hf download`, which such servers serve
  well.

Either way the limit holds for every file from that origin until the run ends (`OriginCaps`), and no file takes
more than two connections before some second range from its origin was answered promptly; the governor's limit,
found from throughput, applies on top.
"""

from __future__ import annotations

import threading

from .segments import Segment

PROGRESS = 1 << 20  # bytes a file must gain after a failure before its failures are forgiven (a trickle is none)
# A range is held when it waits this long for its first byte, and several times longer than the other kind of range
# of the same file did (the first one, or the later ones). A new connection on a 300 ms link takes about a second
# to its first byte, the first request of a file about as long; olah holds a range for as long as its upstream needs
# to fetch a 64 MiB block, and answers every request a few tenths of a second late even from its cache.
HELD_SECONDS = 1.5
HELD_RATIO = 3.0
UNPROVEN_CAP = 2


class OriginCaps:
    """Connections per file for each origin, as far as the origin showed a limit during this run.

    Until a second range of some file from an origin has been answered without being held, files from it use two
    connections: the first range and one more. On most servers that takes one round trip; on a server that holds
    ranges it keeps dozens of requests from piling up before the hold is noticed."""

    def __init__(self) -> None:
        self._caps: dict[object, int] = {}
        self._parallel: set[object] = set()  # origins that answered parallel ranges promptly
        self._lock = threading.Lock()

    def cap(self, origin: object) -> int | None:
        cap = self._caps.get(origin)
        if origin not in self._parallel:
            return min(cap or UNPROVEN_CAP, UNPROVEN_CAP)
        return cap

    def parallel_works(self, origin: object) -> bool:
        """A second range from `origin` was answered promptly; True if that is news."""
        with self._lock:
            news = origin not in self._parallel
            self._parallel.add(origin)
            return news

    def lower(self, origin: object, cap: int) -> None:
        with self._lock:
            if cap < self._caps.get(origin, cap + 1):
                self._caps[origin] = max(1, cap)


class FailureWaves:
    """The failures of one file, counted per wave. The caller serialises calls (the file's lock)."""

    def __init__(self) -> None:
        self.count = 0  # waves since the file last made progress
        self._at = float("-inf")  # when the current wave's first failure came in
        self._size = 0  # connections working then
        self._failed = 0  # requests failed in it
        self._since = 0  # bytes written since the last failure

    def failed(self, sent_at: float, now: float, connections: int) -> bool:
        """A request sent at `sent_at` failed; True if it starts a new wave (it was sent after the last one began)."""
        new = sent_at >= self._at
        if new:
            self.count += 1
            self._at, self._size, self._failed = now, connections, 0
        self._failed += 1
        self._since = 0
        return new

    def survivors(self) -> int | None:
        """Connections still working in the current wave, if it hit parallel ranges."""
        return self._size - self._failed if self._size > 1 else None

    def progressed(self, n: int) -> None:
        self._since += n
        if self._since >= PROGRESS:
            self.count = 0


class HoldWatch:
    """Notices a server holding ranges of one file (see the module docstring). The caller serialises calls."""

    def __init__(self) -> None:
        self.lead: Segment | None = None  # the file's first request (of this generation)
        self.lead_wait: float | None = None  # seconds it waited for its first byte
        self.joiner_wait: float | None = None  # the shortest wait of a later range

    def first_byte(self, segment: Segment, now: float) -> bool:
        """`segment`'s request got its first byte; True if that shows the server holds ranges."""
        wait = now - segment.began
        if segment is self.lead:
            self.lead_wait = wait
        elif self.joiner_wait is None or wait < self.joiner_wait:
            self.joiner_wait = wait
        lead, joiner = self.lead_wait, self.joiner_wait
        return lead is not None and joiner is not None and lead >= HELD_SECONDS and lead >= HELD_RATIO * joiner

    def holding(self, active: list[Segment], now: float) -> bool:
        """Whether a later range is waiting far longer for its first byte than the first range did."""
        limit = max(HELD_SECONDS, HELD_RATIO * (self.lead_wait or 0.0))
        return any(s is not self.lead and s.pos == s.start and now - s.began >= limit for s in active)
