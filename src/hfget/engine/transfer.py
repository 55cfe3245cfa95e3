"""The byte engine: moves files from URLs into verified local files. Knows nothing of hubs, caches or Rich.

Each `FileJob` says where the bytes are (`url`), how many there must be (`size`), what they must hash to
(`algo`, `expected`), where the resumable partial lives (and, through `adopt`, how to gather into it what earlier
runs left elsewhere: the caller knows those names, the engine does not), and what to do with the verified file
(`deliver`).

`Transfer` keeps connections busy on up to `max_workers` files at once. A small file takes one connection; a large
one is cut into pieces fetched by as many connections as are free, in increasing offset order, and a connection
with nothing left to do takes over half of the slowest connection's remaining range. How many of the up to
`connections` connections work at once is decided while the bytes flow (`governor.py`): all of them against a
mirror that throttles each connection, few on a fast link where more would only compete for the CPU. Bytes are
hashed as they arrive, a partial plus a small state file make every run resumable (from any source promising the
same hash), and a file is handed over only when its size and hash match. Progress goes out as events.

The pieces: `segments.py` (byte ranges), `file_task.py` (one file and its connections), `connection.py` (one
request), `partial_file.py` and `resume_state.py` (what is on disk), `digest.py` (hashing), `governor.py` (how
many connections); this module schedules them on threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiskError, HfgetError, Interrupted, NetworkError
from ..fs.fsutil import disk_errors
from ..net.http import HttpClient, TokenGrant
from .connection import Lease, ResponseTracker, Retry, fetch
from .digest import Digest
from .events import (
    Event,
    EventSink,
    FileFailed,
    FileFinished,
    FileProgress,
    FileRetrying,
    FileStarted,
    SourceSwitch,
    TransferFinished,
    TransferStarted,
)
from .file_task import EngineSettings, FileTask, Stop
from .governor import ConnectionGovernor
from .resume_state import pending_bytes
from .segments import PieceSizes

__all__ = [
    "Digest", "Event", "EventSink", "FileFailed", "FileFinished", "FileJob", "FileProgress", "FileRetrying",
    "FileStarted", "SourceSwitch", "Transfer", "TransferFinished", "TransferReport", "TransferStarted",
]

DEFAULT_CONNECTIONS = 64


@dataclass
class FileJob:
    key: str
    url: str
    size: int
    algo: str
    expected: str
    partial: Path  # where this run writes; nobody else writes there
    deliver: Callable[[Path], None]  # moves the verified partial into place
    already_done: Callable[[], bool] = lambda: False  # checked under the lock: another process may have finished
    lock: Path | None = None
    # Called under the lock before `partial` is opened: moves (or copies) into it what an earlier run left.
    adopt: Callable[[], None] | None = None
    # Bytes already on disk for this file, wherever they are (default: those in `partial`).
    resumable: Callable[[], int] | None = None
    grant: TokenGrant | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Turns an HTTP error response into the source's own error (the engine knows no hub semantics).
    explain: Callable[[object], HfgetError] | None = None

    def pending(self) -> int:
        """Bytes still to fetch, given what an earlier run left on disk."""
        if self.resumable is not None:
            return self.size - self.resumable()
        return pending_bytes(self.partial, self.size, self.algo, self.expected)


@dataclass
class TransferReport:
    done: list[str] = field(default_factory=list)
    downloaded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, HfgetError] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def bytes_downloaded(self) -> int:
        return sum(self.downloaded.values())


class _Scheduler:
    """Decides what each idle connection does next: start a file, fetch a piece, or take over half a range."""

    def __init__(self, tasks: list[FileTask], max_files: int, cancel: threading.Event, limit: int) -> None:
        # Files worth splitting first, largest first: they get their connections going while small ones fill the
        # gaps. Small ones keep their order, so the byte rate the governor watches does not drift with file size.
        self.pending = sorted(tasks, key=lambda t: -t.size if t.engine.sizes.worth_splitting(t.size) else 0)
        self.active: list[FileTask] = []
        self.max_files = max_files
        self.cancel = cancel
        self.cond = threading.Condition()
        # Connections numbered at or above the limit wait here, without polling, until the governor raises it: on a
        # fast link the limit stays at 2-4, and dozens of idle threads waking to look for work every few ms cost
        # the working ones the GIL (measured: 1 GB took 4.0 s with 64 polling threads, 2.2 s with them parked).
        self.parked = threading.Condition(self.cond._lock)  # same lock: one state, two queues of waiters
        self.limit = limit  # connections allowed to work at once (the governor moves it)
        self.busy = 0  # connections working on a unit right now
        # Closed until every connection thread exists: starting a thread takes a GIL switch (~5 ms) once others are
        # busy, which would stretch a 64-thread start-up over a second of half-used bandwidth.
        self.open = threading.Event()

    def next(self, was_working: bool, index: int) -> tuple[FileTask, object | None] | None:
        """(task, None) means "start this file"; (task, segment) means "fetch this segment"; None: stop.

        `index` is the connection's number: those at or above the limit park until it rises."""
        self.open.wait()
        with self.cond:
            if was_working:
                self.busy -= 1
            while not self.cancel.is_set():
                now = time.monotonic()
                self.active = [t for t in self.active if not t.finished]
                if not self.pending and not self.active:
                    self.cond.notify_all()  # everything is finished: let the idle connections go too
                    self.parked.notify_all()
                    return None
                if index >= self.limit:
                    self.parked.wait()
                    continue
                unit = self._pick(now) if self.busy < self.limit else None
                if unit is not None:
                    self.busy += 1
                    return unit
                self.cond.wait(timeout=self._wait_time(now))
            return None

    def _pick(self, now: float) -> tuple[FileTask, object | None] | None:
        if len(self.active) < self.max_files:
            for task in self.pending:
                if task.retry_at <= now:
                    self.pending.remove(task)
                    self.active.append(task)
                    return task, None
        ranked = sorted(
            ((p, i, t) for i, t in enumerate(self.active) if (p := t.priority(now)) is not None),
            key=lambda item: (item[0], -item[1]),
            reverse=True,
        )
        for _, _, task in ranked:
            segment = task.take_segment(now)
            if segment is not None:
                return task, segment
        return None

    def saturation(self) -> int:
        """Busy connections, counted as the whole limit when the file slots are what holds work back (many small
        files): either way, more concurrency is what would change the rate."""
        with self.cond:
            files_full = bool(self.pending) and len(self.active) >= self.max_files and self.busy >= len(self.active)
            return self.limit if files_full else self.busy

    def set_limit(self, limit: int) -> None:
        with self.cond:
            raised = limit > self.limit
            self.limit = limit
            if raised:
                self.cond.notify_all()
                self.parked.notify_all()

    def _wait_time(self, now: float) -> float:
        waits = [t.retry_at - now for t in (*self.pending, *self.active) if t.retry_at > now]
        return max(0.005, min([0.25, *waits]))

    def defer(self, task: FileTask) -> None:
        """Another process holds the file's lock: free the slot and come back to it later."""
        with self.cond:
            if task in self.active:
                self.active.remove(task)
            self.pending.append(task)
            self.cond.notify()

    def wake(self, everyone: bool = False) -> None:
        with self.cond:
            if everyone:
                self.cond.notify_all()
                if self.cancel.is_set():
                    self.parked.notify_all()
            else:
                self.cond.notify()


class Transfer:
    """Runs jobs on a pool of daemon threads, one connection each. Per-file failures are collected; fatal ones
    (a full disk, a bug) stop everything."""

    def __init__(
        self,
        client: HttpClient,
        *,
        max_workers: int = 8,
        connections: int = DEFAULT_CONNECTIONS,
        on_event: EventSink | None = None,
        attempts: int = 5,
        lock_timeout: float | None = None,
        stall_timeout: float | None = None,
        piece_sizes: PieceSizes | None = None,
        adaptive: bool = True,
    ) -> None:
        self.client = client
        self.max_workers = max_workers
        self.connections = max(1, connections)
        self.emit = on_event or (lambda event: None)
        self.attempts = attempts
        self.lock_timeout = lock_timeout
        # A connection that delivers nothing for this long is replaced: the client's read timeout unless given.
        self.stall_timeout = stall_timeout if stall_timeout is not None else client.timeout[1]
        self.piece_sizes = piece_sizes or PieceSizes()
        self.adaptive = adaptive  # let the governor find how many of the connections pay (else use them all)
        self.cancel = threading.Event()
        self._responses = ResponseTracker()
        self._fatal: list[BaseException] = []

    def run(self, jobs: Sequence[FileJob], *, source: str | None = None) -> TransferReport:
        report = TransferReport()
        started = time.monotonic()
        pending = {job.key: job.pending() for job in jobs}
        self.emit(
            TransferStarted(
                files=len(jobs),
                total_bytes=sum(pending.values()),
                source=source,
                resumed_bytes=sum(job.size - pending[job.key] for job in jobs),
            )
        )
        engine = EngineSettings(
            connections=self.connections,
            sizes=self.piece_sizes,
            attempts=self.attempts,
            lock_timeout=self.lock_timeout,
            backoff=self.client.retry.delay,
            emit=self.emit,
        )
        tasks = [FileTask(job, engine) for job in jobs]
        pool = self._pool_size(jobs)
        # The governor's ceiling is what the jobs can use at all: many small files cannot use more connections
        # than --max-workers, so it starts probing downwards at once.
        governor = ConnectionGovernor(pool, floor=min(2, pool)) if self.adaptive else None
        scheduler = _Scheduler(tasks, self.max_workers, self.cancel, governor.limit if governor else self.connections)
        engine.wake = scheduler.wake
        engine.limit = self._piece_basis(governor)
        threads = [
            threading.Thread(target=self._worker, args=(scheduler, i), name=f"hfget-conn-{i}", daemon=True)
            for i in range(pool)
        ]
        for thread in threads:
            thread.start()
        scheduler.open.set()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.05)
                    if governor is not None:
                        moved = sum(task.received for task in tasks)
                        scheduler.set_limit(
                            governor.tick(time.monotonic(), moved, scheduler.saturation(), time.process_time())
                        )
                        engine.limit = self._piece_basis(governor)
        except KeyboardInterrupt:
            self._stop(scheduler, threads, tasks)
            raise Interrupted(
                "Interrupted. Finished files are in the cache; partial files were kept.",
                "Run the same command again to resume where it stopped.",
            ) from None
        if self.cancel.is_set():  # a fatal error: leave every started file resumable
            self._stop(scheduler, threads, tasks)
        for task in tasks:
            if task.status == "done":
                report.done.append(task.key)
                report.downloaded[task.key] = task.received
            elif task.status == "failed" and task.error is not None:
                report.failed[task.key] = task.error
        report.elapsed = time.monotonic() - started
        self.emit(TransferFinished(report.bytes_downloaded, report.elapsed))
        if self._fatal:
            raise self._fatal[0]
        return report

    def _piece_basis(self, governor: ConnectionGovernor | None) -> int:
        """How many connections pieces are sized for. While the governor scouts, the whole budget: should it jump
        (a throttled mirror), the scouts' pieces must not be the big ones that a single slow connection then
        drags out. Once it has chosen, what it chose."""
        if governor is None or governor.phase == "scout":
            return self.connections
        return governor.limit

    def _pool_size(self, jobs: Sequence[FileJob]) -> int:
        """As many threads as connections could be busy: one per small file, up to all of them on large files."""
        sizes = self.piece_sizes
        useful = min(self.max_workers, len(jobs)) + sum(
            max(0, -(-job.size // sizes.min_piece) - 1) for job in jobs if sizes.worth_splitting(job.size)
        )
        return max(1, min(self.connections, useful))

    def _stop(self, scheduler: _Scheduler, threads: list[threading.Thread], tasks: list[FileTask]) -> None:
        self.cancel.set()
        scheduler.wake(everyone=True)
        self._responses.abort_all(self.client)  # wakes threads blocked in a read
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for task in tasks:
            task.cancel()  # records what is on disk, closes the partial, releases the file lock

    # --- one connection -------------------------------------------------------------------------------------

    def _worker(self, scheduler: _Scheduler, index: int) -> None:
        working = False
        while True:
            unit = scheduler.next(working, index)
            working = True
            if unit is None:
                return
            task, segment = unit
            try:
                with disk_errors(task.job.partial.parent):
                    if segment is None:
                        segment = self._start(task, scheduler)
                        if segment is None:
                            continue
                    self._connection(Lease(task, segment), scheduler)
            except HfgetError as error:
                task.fail(error)
                if isinstance(error, DiskError):  # disk full, permissions: no other file can succeed either
                    self._fatal.append(error)
                    self.cancel.set()
            except BaseException as error:  # a bug: stop everything and let the CLI report it
                task.fail(_internal(error))
                self._fatal.append(error)
                self.cancel.set()
            finally:
                if self.cancel.is_set():
                    scheduler.wake(everyone=True)

    def _start(self, task: FileTask, scheduler: _Scheduler):
        outcome = task.start()
        if outcome == "deferred":
            scheduler.defer(task)
            return None
        if outcome != "running":
            return None
        if task.claim_completion():  # all bytes already there (an empty file, a run killed at the very end)
            task.complete()
            return None
        return task.take_segment(time.monotonic())

    def _connection(self, lease: Lease, scheduler: _Scheduler) -> None:
        task = lease.task
        try:
            if fetch(
                lease,
                self.client,
                stall_timeout=self.stall_timeout,
                cancel=self.cancel,
                tracker=self._responses,
                emit=self.emit,
            ):
                task.complete()
        except Stop:
            pass
        except NetworkError as error:
            task.connection_failed(lease.segment, error)
        except Retry as retry:
            task.connection_failed(lease.segment, retry.error, retry.retry_after)
        finally:
            task.connection_ended(lease.segment)


def limit_malloc_arenas() -> None:
    """Ask glibc for few malloc arenas. By default every busy thread may get its own, each keeping the read
    buffers it freed: with dozens of connection threads that grew the process by 100+ MB for nothing (and made it
    slower). Best effort: other C libraries are left alone.

    It tunes the whole process, which is the owner's decision: the `hfget` command calls it; the Python API does
    not (the application calling it owns its allocator, and glibc cannot put the setting back)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _internal(error: BaseException) -> HfgetError:
    return HfgetError(f"Internal error while downloading: {type(error).__name__}: {error}")
