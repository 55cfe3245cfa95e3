"""One file in flight: its partial, its byte ranges, its hash, its lock, and how its connections share the work.

Shared by every connection working on the file; all bookkeeping happens under `self.lock`, and no network or disk
call is made while holding it. Life: pending --start()--> running --> done (every byte written, hash matches) |
failed (too many failures in a row, hash mismatch twice) | stopped (cancelled; partial and state kept).

Range support is unknown until the first response: the first connection (the *lead*) asks for the first piece,
and only when the server answers 206 with the right Content-Range do other connections join. A 200 instead means
the server ignores Range: the task drops what it had and that one response streams the whole file. Each restart
(Range ignored, a hash mismatch, a partial the server rejects) begins a new *generation*: a fresh `SegmentPlan`
and hasher; connections still holding segments of an older plan notice on their next claim and stop.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import HfgetError, IntegrityError, ServerError
from ..fs.locks import BlobLock
from ..net.urls import host_label
from .digest import Digest, FrontierHasher
from .events import FileFailed, FileFinished, FileProgress, FileRetrying, FileStarted
from .partial_file import PartialFile
from .resume_state import load_done
from .segments import IntervalSet, PieceSizes, Segment, SegmentPlan


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
        self.direct_url: str | None = None  # where the lead's redirects ended (a CDN): later pieces go straight there
        self.connections = 0  # connections currently working on this task
        self.failures = 0  # failed requests since the last byte arrived
        self.bad_hash = 0
        self.received = 0  # bytes written in this run
        self._file_lock: BlobLock | None = None
        self._inflight_writes = 0  # claimed bytes being written: the partial may not be closed or moved yet
        self._idle = threading.Condition(self.lock)
        self._finishing = False
        self.generation = 0
        self.partial: PartialFile | None = None
        self.plan: SegmentPlan | None = None
        self.hasher: FrontierHasher | None = None
        self.split = False  # may use several connections
        self.ranged = False  # the server answered a Range request correctly in this generation

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
        """(Under the lock.) Throw the partial away and begin an empty generation; returns the bytes dropped."""
        dropped = self.plan.done.total
        self.partial.reset()
        self._new_generation(IntervalSet())
        self.ranged = False
        self.direct_url = None
        return dropped

    def _new_generation(self, done: IntervalSet) -> None:
        """(Under the lock.) Start over from `done` with a fresh plan and hasher."""
        self.generation += 1
        if self.hasher is not None:
            self.hasher.abandoned = True
        self.plan = SegmentPlan(self.size, done, self.engine.sizes)
        digest = Digest(self.job.algo, self.job.expected, self.size)
        self.hasher = FrontierHasher(digest, self.partial.fd, self.lock, self.plan.done.run_end)
        holes = len(done.ranges()) > 1 or (bool(done) and done.ranges()[0][0] != 0)
        self.split = holes or (self.engine.connections > 1 and self.engine.sizes.worth_splitting(self.size))
        self._finishing = False

    # --- handing out work (called by the scheduler) ---------------------------------------------------------

    def take_segment(self, now: float) -> Segment | None:
        with self.lock:
            if self.status != "running" or self._finishing or now < self.retry_at:
                return None
            plan = self.plan
            if not (self.ranged and self.split):
                if self.connections:
                    return None  # one stream at a time, or the lead is still finding out whether Range works
                segment = plan.lead(self.split, self.engine.limit, now)
            else:
                segment = plan.next_piece(self.engine.limit, now) or plan.steal(now)
            if segment is not None:
                self.connections += 1
            return segment

    def priority(self, now: float) -> tuple | None:
        """How much this task wants another connection (higher first); None if it cannot use one now."""
        with self.lock:
            if self.status != "running" or self._finishing or now < self.retry_at:
                return None
            if not (self.ranged and self.split):
                return None if self.connections else (2, 0)
            if self.plan.has_free():
                return (1, self.plan.free.total)
            if self.plan.can_steal(now):
                return (0, 0)
            return None

    def url(self) -> str:
        return self.direct_url or self.job.url

    def is_current(self, segment: Segment) -> bool:
        return self.plan is not None and segment in self.plan.active

    # --- what the lead learns -------------------------------------------------------------------------------

    def confirm_ranges(self, segment: Segment, final_url: str) -> None:
        """The server honours Range: let other connections join (after the state file exists, as they leave
        holes)."""
        snapshot = None
        with self.lock:
            if not self.is_current(segment) or self.ranged:
                return
            self.ranged = True
            if final_url != self.job.url:
                self.direct_url = final_url
            if self.split:
                snapshot = self.partial.make_stateful(self.plan.done)
            more_work = self.split
        PartialFile.save(snapshot)
        if more_work:
            self.engine.wake(True)  # every idle connection may join now

    def forget_direct_url(self) -> None:
        with self.lock:
            self.direct_url = None

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
            self.failures += 1  # counted like a failed request, so a server that always says 416 ends it
            if not self.plan.done or self.failures >= self.engine.attempts:
                raise ServerError(
                    f"{host_label(self.url())} refused a range of {self.key} that exists ({why}).",
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
            if take:
                self._inflight_writes += 1
            return at, take

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
            self.failures = 0
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

    def connection_failed(self, segment: Segment, error: HfgetError, retry_after: str | None = None) -> None:
        """A request or body failed. Give up after `attempts` failures in a row with no byte in between."""
        with self.lock:
            if not self.is_current(segment) or self.status != "running":
                return
            self.failures += 1
            failures = self.failures
            give_up = failures >= self.engine.attempts or getattr(error, "refused", False)
            if not give_up:
                self.retry_at = max(self.retry_at, time.monotonic() + self.engine.backoff(failures - 1, retry_after))
        if give_up:
            self.fail(error)
        else:
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
            partial, snapshot = self.partial, None
            if self._open():
                snapshot = partial.snapshot(self.plan.done)
        if partial is not None and not partial.closed:
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
                f"{self.key} from {host_label(self.url())} does not match its expected {self.job.algo} "
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

