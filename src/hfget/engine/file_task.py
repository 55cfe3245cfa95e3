"""One file in flight: its partial, its byte ranges, its hash, its lock, and how its connections share the work.

Shared by every connection working on the file; all bookkeeping happens under `self.lock`, and no network or disk
call is made while holding it. Life: pending --start()--> running --> done (every byte written, hash matches) |
failed (too many failures in a row, hash mismatch twice) | stopped (cancelled; partial and state kept).

Range support is unknown until the first response: the first connection (the *lead*) asks for the first piece,
and only when the server answers 206 with the right Content-Range do other connections join. A 200 instead means
the server ignores Range: the task drops what it had and that one response streams the whole file. Each restart
(Range ignored, a hash mismatch, a partial the server rejects) begins a new *generation*: a fresh `SegmentPlan`
and hasher; connections still holding segments of an older plan notice on their next claim and stop. Once the
server has answered ranges, an odd answer to one piece (a 200 with the whole file, a 416) is a failed request of
that piece, not a restart: one connection's bad answer never throws away what the others fetched. Failures are
counted per wave, and waves and held ranges tell how many connections the server tolerates (`server_limits.py`).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConnectError, HfgetError, IntegrityError, ServerError, UnreachableRedirect
from ..fs.locks import BlobLock
from ..net.urls import host_label, origin_of
from .digest import Digest, FrontierHasher
from .events import FileFailed, FileFinished, FileProgress, FileRetrying, FileStarted
from .links import SharedLink
from .partial_file import PartialFile
from .resume_state import load_done
from .segments import IntervalSet, PieceSizes, Segment, SegmentPlan
from .server_limits import FailureWaves, HoldWatch, OriginCaps


@dataclass
class EngineSettings:
    """What every task needs to know about the engine it runs in."""

    connections: int  # the budget: whether splitting a file is allowed at all
    sizes: PieceSizes
    attempts: int
    lock_timeout: float | None
    backoff: Callable[[int, str | None], float]  # (failures so far, Retry-After) -> seconds
    emit: Callable
    wake: Callable[[bool], None] = lambda everyone: None  # tell idle connections there is new work
    # Connections the governor lets work right now: pieces are sized for these, not for the whole budget. Two
    # connections on a fast link then fetch 32 MiB pieces instead of 4 MiB ones (fewer requests, fewer bytes landing
    # ahead of the hash); when the limit rises, pieces shrink and stealing rebalances what was handed out.
    limit: int = 1
    caps: OriginCaps = field(default_factory=OriginCaps)  # connections per file each server tolerates


class Stop(Exception):
    """This connection must stop: the task finished, failed, restarted or was cancelled."""


class FileTask:
    def __init__(self, job, engine: EngineSettings) -> None:
        self.job = job
        self.key = job.key
        self.size = job.size
        self.engine = engine
        self.lock = threading.Lock()
        self.status = "pending"  # pending | running | done | failed | stopped
        self.error: HfgetError | None = None
        self.retry_at = 0.0  # no new connection before this (backoff, lock held by another process)
        self.lock_wait_started: float | None = None
        self.link = SharedLink(job.url)  # where requests go: the resolve URL or the (signed) link it redirects to
        self.origin = origin_of(job.url)
        self.connections = 0  # connections currently working on this task
        self.waves = FailureWaves()
        self.holds = HoldWatch()
        self.bad_hash = 0
        self.received = 0  # bytes written in this run
        self._file_lock: BlobLock | None = None
        self._inflight_writes = 0  # claimed bytes being written: the partial may not be closed or moved yet
        self._idle = threading.Condition(self.lock)
        self._finishing = False
        self._resetting = False  # the partial is being emptied: no new work until it is
        self.partial: PartialFile | None = None
        self.plan: SegmentPlan | None = None
        self.hasher: FrontierHasher | None = None
        self.split = False  # may use several connections
        self.ranged = False  # the server answered a Range request correctly in this generation
        self.ranges_seen = False  # ... in any generation of this run

    # --- starting -------------------------------------------------------------------------------------------

    def start(self) -> str:
        """Take the file's lock and look at what is on disk: "running", "done", "deferred" or "failed"."""
        job = self.job
        if job.lock is not None:
            lock = BlobLock(job.lock)
            if not lock.try_acquire():
                return self._lock_busy()
            self._file_lock = lock
        if job.already_done():  # another process finished it while we waited
            self.engine.emit(FileStarted(self.key, self.size, self.size))
            self._end("done")
            self.engine.emit(FileFinished(self.key, self.size, 0))
            return "done"
        job.partial.parent.mkdir(parents=True, exist_ok=True)
        if job.adopt is not None:  # under the lock: what earlier runs left becomes this run's partial
            job.adopt()
        done, stateful = load_done(job.partial, self.size, job.algo, job.expected)
        with self.lock:
            self.partial = PartialFile(job.partial, self.size, job.algo, job.expected, stateful=stateful)
            self._new_generation(done)
            self.status = "running"
        self.engine.emit(FileStarted(self.key, self.size, done.total))
        return "running"

    def _lock_busy(self) -> str:
        now = time.monotonic()
        if self.lock_wait_started is None:
            self.lock_wait_started = now
        timeout = self.engine.lock_timeout
        if timeout is not None and now - self.lock_wait_started > timeout:
            self.fail(
                ServerError(
                    f"Another process has been downloading {self.key} for too long (lock {self.job.lock}).",
                    "Wait for the other hfget/huggingface_hub process to finish, or stop it.",
                )
            )
            return "failed"
        self.retry_at = now + 0.25  # work on other files meanwhile; look again soon
        return "deferred"

    def _start_over(self) -> int:
        """(Under the lock.) Throw the partial away and begin an empty generation; returns the bytes dropped.

        The old generation's segments stop at their next claim, but bytes they claimed may still be on their way
        to the disk: the partial is emptied only once they have landed, or they would land in the new file."""
        dropped = self.plan.done.total
        self._new_generation(IntervalSet())
        self._resetting = True
        while self._inflight_writes:
            self._idle.wait(1.0)
        self._resetting = False
        self.partial.reset()
        self.ranged = False
        self.link.reset()
        return dropped

    def _new_generation(self, done: IntervalSet) -> None:
        """(Under the lock.) Start over from `done` with a fresh plan and hasher."""
        if self.hasher is not None:
            self.hasher.abandoned = True
        self.plan = SegmentPlan(self.size, done, self.engine.sizes)
        digest = Digest(self.job.algo, self.job.expected, self.size)
        self.hasher = FrontierHasher(digest, self.partial.fd, self.lock, self.plan.done.run_end)
        holes = len(done.ranges()) > 1 or (bool(done) and done.ranges()[0][0] != 0)
        self.split = holes or (self.engine.connections > 1 and self.engine.sizes.worth_splitting(self.size))
        self._finishing = False
        self.holds = HoldWatch()

    # --- handing out work (called by the scheduler) ---------------------------------------------------------

    def _idle_now(self, now: float) -> bool:
        """(Under the lock.) Whether no new connection may start on this file now."""
        if self.status != "running" or self._finishing or self._resetting or now < self.retry_at:
            return True
        cap = self.engine.caps.cap(self.origin)
        return cap is not None and self.connections >= cap

    def _one_stream(self) -> bool:
        """(Under the lock.) Whether the next request reads the rest of the file as one stream: the server ignores
        Range, the file is not worth splitting, or the server shows it cannot take parallel ranges."""
        return not (self.ranged and self.split) or self.engine.caps.cap(self.origin) == 1

    def take_segment(self, now: float) -> Segment | None:
        with self.lock:
            if self._idle_now(now):
                return None
            plan = self.plan
            if self._one_stream():
                if self.connections:
                    return None  # one stream at a time, or the lead is still finding out whether Range works
                # The lead asks for a first piece where other connections may join; otherwise the rest of the file.
                pieces = self.split and not self.ranged and self.engine.caps.cap(self.origin) != 1
                segment = plan.lead(pieces, self.engine.limit, now)
                if self.holds.lead is None:
                    self.holds.lead = segment
            else:
                segment = plan.next_piece(self.engine.limit, now) or plan.steal(now)
            if segment is not None:
                self.connections += 1
            return segment

    def priority(self, now: float) -> tuple | None:
        """How much this task wants another connection (higher first); None if it cannot use one now."""
        with self.lock:
            if self._idle_now(now):
                return None
            if self._one_stream():
                return None if self.connections else (2, 0)
            if self.plan.has_free():
                return (1, self.plan.free.total)
            if self.plan.can_steal(now):
                return (0, 0)
            return None

    def is_current(self, segment: Segment) -> bool:
        return self.plan is not None and segment in self.plan.active

    # --- what the lead learns -------------------------------------------------------------------------------

    def confirm_ranges(self, segment: Segment) -> None:
        """The server honours Range: let other connections join (after the state file exists, as they leave
        holes)."""
        snapshot = None
        with self.lock:
            if not self.is_current(segment) or self.ranged:
                return
            self.ranged = self.ranges_seen = True
            if self.split:
                snapshot = self.partial.make_stateful(self.plan.done)
            more_work = self.split
        PartialFile.save(snapshot)
        if more_work:
            self.engine.wake(True)  # every idle connection may join now

    def restart_whole_body(self, segment: Segment) -> Segment:
        """The server ignored Range and is sending the whole file: drop everything, and stream it from byte 0."""
        with self.lock:
            if not self.is_current(segment) or self.status != "running":
                raise Stop
            self.plan.release(segment)
            dropped = self._start_over()
            self.split = False  # this server cannot do ranges: one stream from now on
            whole = self.plan.lead(False, 1, time.monotonic())
        if dropped:
            self.engine.emit(FileProgress(self.key, -dropped))
        return whole

    def restart_fresh(self, segment: Segment, why: str) -> None:
        """The server rejected our resume point (416): the partial is not a prefix of its file. Start over."""
        with self.lock:
            if not self.is_current(segment):
                return
            self.waves.count += 1  # counted like a failed request, so a server that always says 416 ends it
            if not self.plan.done or self.waves.count >= self.engine.attempts:
                raise ServerError(
                    f"{host_label(self.job.url)} refused a range of {self.key} that exists ({why}).",
                    "The server's range support is broken; use another source.",
                )
            self.plan.release(segment)
            dropped = self._start_over()
        self.engine.emit(FileRetrying(self.key, 1, f"the server rejected the partial file ({why}); starting over"))
        self.engine.emit(FileProgress(self.key, -dropped))

    # --- writing --------------------------------------------------------------------------------------------

    def claim(self, segment: Segment, n: int) -> tuple[int, int]:
        with self.lock:
            if self.status != "running" or not self.is_current(segment):
                raise Stop
            at, take = self.plan.claim(segment, n)
            first = bool(take) and at == segment.start
            held = first and self.holds.first_byte(segment, time.monotonic())
            joiner = first and segment is not self.holds.lead
            if take:
                self._inflight_writes += 1
        if held:
            self.engine.caps.lower(self.origin, 1)
        elif joiner and self.engine.caps.parallel_works(self.origin):
            self.engine.wake(True)  # files may take more connections now
        return at, take

    def check_holds(self, now: float) -> None:
        """(Called while the file runs.) A later range held far longer than the first: one stream from now on."""
        if self.engine.caps.cap(self.origin) == 1:
            return
        with self.lock:
            held = self.status == "running" and self.ranged and self.holds.holding(self.plan.active, now)
        if held:
            self.engine.caps.lower(self.origin, 1)

    def write(self, segment: Segment, at: int, data: memoryview) -> bool:
        """Write claimed bytes, record them, hash what can be hashed. True when this write completed the file.

        One lock round per write: this runs for every block of every connection.
        """
        try:
            self.partial.pwrite(at, data)
        except BaseException:
            with self.lock:
                self._write_done()
            raise
        snapshot = None
        completed = False
        with self.lock:
            self._write_done()
            if not self.is_current(segment):
                return False  # a restart happened meanwhile; these bytes belong to nothing
            n = len(data)
            self.plan.mark_written(at, n)
            self.received += n
            self.waves.progressed(n)
            # A kill -9 loses at most about SAVE_EVERY bytes (or SAVE_INTERVAL of work at high rates).
            snapshot = self.partial.wrote(n, self.plan.done)
            if self.plan.complete and not self._finishing:
                self._finishing = completed = True
            hasher = self.hasher
            hashing = hasher.begin(at)
        if snapshot:
            try:
                PartialFile.save(snapshot)
            finally:
                with self.lock:
                    self.partial.saved()
        if hashing:
            hasher.run(data if hashing == "inline" else None)
        return completed

    def _write_done(self) -> None:
        self._inflight_writes -= 1
        if not self._inflight_writes:
            self._idle.notify_all()

    # --- ending a connection --------------------------------------------------------------------------------

    def connection_failed(
        self, segment: Segment, error: HfgetError, *, sent_at: float, retry_after: str | None = None,
        crowded: bool = False,
    ) -> None:
        """A request sent at `sent_at` (or its body) failed. `crowded`: it stalled or the server refused it, which
        among parallel ranges says the server takes fewer. Gives up after `attempts` waves in a row with no byte
        in between, or at once where retrying cannot help (nothing listens; the redirect leads nowhere)."""
        with self.lock:
            if not self.is_current(segment) or self.status != "running":
                return
            now = time.monotonic()
            new_wave = self.waves.failed(sent_at, now, self.connections)
            failures = self.waves.count
            hopeless = isinstance(error, UnreachableRedirect) or (isinstance(error, ConnectError) and error.refused)
            give_up = hopeless or failures >= self.engine.attempts
            if not give_up and new_wave:
                self.retry_at = max(self.retry_at, now + self.engine.backoff(failures - 1, retry_after))
            cap = self.waves.survivors() if crowded else None
        if cap is not None:
            self.engine.caps.lower(self.origin, cap)
        if give_up:
            self.fail(error)
        elif new_wave:
            self.engine.emit(FileRetrying(self.key, failures, error.message))

    def connection_ended(self, segment: Segment | None) -> bool:
        """This connection is done with the task. Returns True if it was the last one and the task just ended."""
        with self.lock:
            if segment is not None and self.is_current(segment):
                self.plan.release(segment)
            self.connections -= 1
            last = self.connections == 0 and self.status in ("failed", "stopped") and self._open()
        if last:
            self._close()
        return last

    def fail(self, error: HfgetError) -> None:
        self._stop("failed", error)

    def cancel(self) -> None:
        self._stop("stopped", None)

    def _stop(self, status: str, error: HfgetError | None) -> None:
        with self.lock:
            if self.status in ("done", "failed", "stopped"):
                return
            was_running = self.status == "running"
            self.status, self.error = status, error
            idle = self.connections == 0
        if error is not None:
            self.engine.emit(FileFailed(self.key, error))
        if idle or not was_running:
            self._close()

    def _open(self) -> bool:  # the partial is open: the task has not been closed yet
        return self.partial is not None and not self.partial.closed

    def _close(self) -> None:
        """Leave a resumable partial: record what is on disk, close the file, let other processes in."""
        with self.lock:
            while self._inflight_writes:
                self._idle.wait(1.0)
            partial, snapshot, empty = self.partial, None, False
            if self._open():
                snapshot = partial.snapshot(self.plan.done)
                empty = not self.plan.done
        if partial is not None and not partial.closed:
            if empty:  # nothing worth resuming: leave no file behind (a failed first request, a refused gate)
                partial.discard()
            else:
                try:
                    PartialFile.save(snapshot)
                except OSError:
                    pass  # (a full disk) the state saved before still lists only bytes that are on disk
                partial.close()
        self._release_file_lock()

    # --- finishing ------------------------------------------------------------------------------------------

    def claim_completion(self) -> bool:
        """True (once) if every byte is already on disk: an empty file, or a run killed just before the end."""
        with self.lock:
            if self.status == "running" and self.plan.complete and not self._finishing:
                self._finishing = True
                return True
            return False

    def complete(self) -> bool:
        """Verify, then deliver or start again (the caller wrote the last byte). False: it starts over."""
        hasher = self.hasher
        while True:
            hasher.pump()
            with self.lock:
                if hasher.cursor >= self.size and not hasher.busy:
                    break
            time.sleep(0.001)  # another connection is hashing the last bytes; it cannot stop before the end
        with self.lock:
            while self._inflight_writes:
                self._idle.wait(1.0)
        digest = hasher.digest
        if digest.matches():
            self.partial.complete()
            self.job.deliver(self.job.partial)
            self._end("done")
            self.engine.emit(FileFinished(self.key, self.size, self.received))
            return True
        self.bad_hash += 1
        if self.bad_hash >= 2:
            self.partial.discard()
            error = IntegrityError(
                f"{self.key} from {host_label(self.link.resolve_url)} does not match its expected {self.job.algo} "
                f"({self.job.expected[:16]}..., got {digest.actual[:16]}...), twice. The bad bytes were discarded; "
                "nothing entered the cache.",
                "The server (or something between you and it) is corrupting data; use another source.",
            )
            self.engine.emit(FileFailed(self.key, error))
            self._end("failed", error)
            return True
        with self.lock:
            dropped = self._start_over()  # the lead asks again: the bytes may have come from a bad cache node
        self.engine.emit(FileRetrying(self.key, self.bad_hash, f"hash mismatch ({self.job.algo}); downloading again"))
        self.engine.emit(FileProgress(self.key, -dropped))
        return False

    def _end(self, status: str, error: HfgetError | None = None) -> None:
        with self.lock:
            self.status, self.error = status, error
        self._release_file_lock()

    def _release_file_lock(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "stopped")

