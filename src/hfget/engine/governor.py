"""How many connections are worth having open: found by trying, while the bytes flow.

On a mirror that throttles each connection, throughput grows with every connection added, up to the budget
(`--connections`). On a fast link the machine is the limit, and every extra connection only adds threads fighting
over the CPU: fewer do as well or better. The governor starts with a *scout* window on two connections: if each
of them is slow (a throttled mirror, a long fat link) while this machine's CPU is mostly idle, it jumps to the
whole budget at once, goes back if that did not pay (small files are "slow" for other reasons), or else sheds
connections while that costs nothing; if each is fast, or the CPU is already busy (many small files on a fast
link), it doubles only while a doubling brings >= 25% more bytes per second. Either way it then holds the best
limit found, and probes again every few seconds as conditions change.
A window counts only when the limit was actually binding (as many connections busy as allowed), so a tail with
little work left teaches it nothing.

Time to first byte is the other measure. Many small files from a distant server (a proxy, a mirror 100-300 ms
away) are round trips more than bytes: each connection spends most of its time waiting for the answer to start, and
more files in flight overlap those waits. When whole files wait for a slot and the requests' first bytes take
`LATENCY_BOUND` or more, the scout jumps to the budget even though its connections look quiet between answers (the
quiet rule keeps it from piling requests onto a server that *holds* ranges, whose waits run to seconds: a wait of
`HELD_WAIT` or more is not taken for latency). When they take less, the server is near and there is no wait to
overlap: the scout does not jump, and more connections come only by doublings that pay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SETTLE = 0.1  # seconds after a change before measuring: new connections need a round trip to start
WINDOW = 0.25
SCOUT_WINDOW = 0.2
# Bytes/s per connection below which more connections are presumed to pay. Throttled mirrors give each connection
# a few MB/s (their first moments may look two or three times faster: burst allowances); a connection that alone
# moves more than this is on a fast link, where the machine, not the server, is the limit.
SLOW_CONNECTION = 64_000_000
HOLD = 3.0  # seconds at the best limit before probing again
GROW_GAIN = 1.25  # a doubling must bring at least this factor
SHRINK_KEEP = 0.92  # a halving may cost at most this much
SCALING = 0.5  # after the jump: at least this share of "scout rate x connections" means connections still pay
# Process CPU (in cores) at or above which the scout's connections are limited by this machine, not by the server:
# many small files on a fast link are "slow" per connection, yet jumping to the whole budget only makes dozens of
# threads queue for the interpreter (measured: 400 small files took 1.9 s with 8 connections, 1.1 s with 2).
# A throttled or distant server leaves the CPU nearly idle while its connections wait.
CPU_BOUND = 0.7
# Median seconds from sending a request to its first byte above which small files are waiting on the link: a loopback
# or LAN server answers in a millisecond or two, a server across the world in 100-300 ms (two round trips with the
# hub's redirect); below `HELD_WAIT`, since a server holding ranges (olah fetching upstream) makes them wait seconds.
LATENCY_BOUND = 0.02
HELD_WAIT = 1.5


@dataclass
class _Best:
    limit: int
    rate: float


class ConnectionGovernor:
    def __init__(self, budget: int, floor: int = 2) -> None:
        self.budget = max(1, budget)
        self.floor = max(1, min(floor, self.budget))
        self.limit = self.floor
        self.phase = "scout"  # scout | jumped | up | down | hold
        self.best: _Best | None = None
        self._since = None  # when the current measurement started (after settling)
        self._bytes_at_start = 0
        self._cpu_at_start: float | None = None
        self._cpu_share: float | None = None  # cores used in the window just measured, if the caller said
        self._ticks = 0
        self._binding_ticks = 0
        self._changed_at: float | None = None
        self._grew = False  # a step up paid off in the current probe
        self.latency_bound = False  # the last window's files waited on round trips (see LATENCY_BOUND)
        self.answers_at_once = False  # ... or small files were answered at once: a near server, nothing to overlap
        self.history: deque[tuple[float, int, float]] = deque(maxlen=200)  # (time, limit, rate) of decided windows

    def tick(
        self, now: float, total_bytes: int, busy: int, cpu: float | None = None, quiet: int = 0,
        first_byte: float | None = None,
    ) -> int:
        """Feed the clock, the bytes received so far, the connections busy now, optionally the process's CPU seconds
        so far (`time.process_time()`), how many busy connections received nothing in the last SCOUT_WINDOW, and,
        while whole files wait for a slot, the recent requests' median time to first byte; returns the limit."""
        if self._changed_at is None:
            self._changed_at = now
        if self._since is None and now - self._changed_at < SETTLE:
            return self.limit
        if self._since is None:
            self._start_window(now, total_bytes, cpu)
            return self.limit
        self._ticks += 1
        self._binding_ticks += busy >= self.limit
        # The scout and the jump compare rates that differ many times over: a short window tells them apart.
        if now - self._since < (SCOUT_WINDOW if self.phase in ("scout", "jumped") else WINDOW):
            return self.limit
        rate = (total_bytes - self._bytes_at_start) / (now - self._since)
        known = cpu is not None and self._cpu_at_start is not None
        self._cpu_share = (cpu - self._cpu_at_start) / (now - self._since) if known else None
        # Every allowed connection busy most of the time, and (for the scout) the first bytes already flowing.
        # The scout decides only on a window in which each of its connections delivered: a server that holds a range
        # back (a caching mirror fetching the block it is in) is not "slow per connection", and jumping to the whole
        # budget would pile dozens of held requests onto it.
        self.latency_bound = first_byte is not None and LATENCY_BOUND <= first_byte < HELD_WAIT
        self.answers_at_once = first_byte is not None and first_byte < LATENCY_BOUND
        scouting = rate > 0 and (not quiet or self.latency_bound)
        binding = self._binding_ticks >= 0.8 * self._ticks and (scouting or self.phase != "scout")
        if binding:
            self.history.append((now, self.limit, rate))
            self._decide(rate, now)
        if self._since is not None or not binding:
            self._start_window(now, total_bytes, cpu)
        return self.limit

    def _start_window(self, now: float, total_bytes: int, cpu: float | None) -> None:
        self._since, self._bytes_at_start, self._ticks, self._binding_ticks = now, total_bytes, 0, 0
        self._cpu_at_start = cpu

    def _set(self, limit: int, now: float) -> None:
        self.limit = max(self.floor, min(self.budget, limit))
        self._changed_at, self._since = now, None

    def _decide(self, rate: float, now: float) -> None:
        best = self.best
        if self.phase == "scout":
            self._grew = False
            self.best = _Best(self.limit, rate)
            machine_bound = self._cpu_share is not None and self._cpu_share >= CPU_BOUND
            # Small files from a server that answers at once are slow per connection because of this machine (the
            # CPU share misleads when other programs compete for it): grow only as far as doubling pays.
            slow = rate / self.limit < SLOW_CONNECTION and not self.answers_at_once
            if slow and self.limit < self.budget and not machine_bound:
                self._jump(now)
            else:
                self._probe_up(now)
            return
        if self.phase == "jumped":  # at the whole budget now
            if rate < GROW_GAIN * best.rate:
                # Slow per connection, yet more did not help (many small files, a busy machine): back to the scout.
                self._hold(best.limit, now)
            elif rate >= SCALING * best.rate * self.limit / best.limit:
                # The rate grew with the connections (each throttled on its own): halving would halve it. Probing
                # that costs a second at half speed; hold, and probe later from here like any hold.
                self._hold(self.limit, now)
            elif self.limit > self.floor:  # keep the budget only as far as it pays
                self.best, self._grew = _Best(self.limit, rate), True
                self.phase = "down"
                self._set(self.limit // 2, now)
            else:
                self._hold(self.limit, now)
            return
        if self.phase == "hold":
            if best is not None and now - self._changed_at < HOLD:
                self._since = None  # keep holding: the next window starts at the next tick
                return
            # (Re)start probing from here: first upwards.
            self.best, self._grew = _Best(self.limit, rate), False
            self._probe_up(now)
            return
        if best is None:
            self.best, self._grew = _Best(self.limit, rate), False
            self._probe_up(now)
            return
        if self.phase == "up":
            if rate > 0 and rate >= GROW_GAIN * best.rate:  # (nothing at all is no gain, even on nothing)
                self.best, self._grew = _Best(self.limit, rate), True
                self._probe_up(now)
            elif not self._grew and best.limit > self.floor:
                self.phase = "down"  # more did not pay from the start: see whether fewer do as well
                self._set(best.limit // 2, now)
            else:
                self._hold(best.limit, now)
            return
        if rate >= SHRINK_KEEP * best.rate:  # down: fewer did as well
            self.best = _Best(self.limit, max(rate, best.rate))
            if self.limit <= self.floor:
                self._hold(self.limit, now)
            else:
                self._set(self.limit // 2, now)
        else:
            self._hold(best.limit, now)

    def _jump(self, now: float) -> None:
        self.phase = "jumped"
        self._set(self.budget, now)

    def _probe_up(self, now: float) -> None:
        if self.limit >= self.budget:
            if self._grew or self.limit <= self.floor:
                self._hold(self.limit, now)
            else:
                self.phase = "down"
                self._set(self.limit // 2, now)
            return
        self.phase = "up"
        self._set(self.limit * 2, now)

    def _hold(self, limit: int, now: float) -> None:
        self.phase = "hold"
        self._set(limit, now)

