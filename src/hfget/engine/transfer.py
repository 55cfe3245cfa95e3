"""The byte engine: moves files from URLs into verified local files. Knows nothing of hubs, caches or Rich.

Each `FileJob` says where the bytes are (`url`), how many there must be (`size`), what they must hash to
(`algo`, `expected`), where the resumable partial lives (and, through `adopt`, how to gather into it what earlier
runs left elsewhere: the caller knows those names, the engine does not), and what to do with the verified file
(`deliver`).

`Transfer` keeps connections busy on several files at once (`max_workers`, or as many as the governor's limit). A
small file takes one connection, kept alive for the next file from the same server; a large
one is cut into pieces fetched by as many connections as are free, in increasing offset order, and a connection
with nothing left to do takes over half of the slowest connection's remaining range. How many of the up to
`connections` connections work at once is decided while the bytes flow (`governor.py`): all of them against a
mirror that throttles each connection, few on a fast link where more would only compete for the CPU. Bytes are
hashed as they arrive, a partial plus a small state file make every run resumable (from any source promising the
same hash), and a file is handed over only when its size and hash match. Progress goes out as events.

The pieces: `segments.py` (byte ranges), `file_task.py` (one file and its connections), `connection.py` (one
request), `links.py` (the signed link a file's requests share), `partial_file.py` and `resume_state.py` (what is
on disk), `digest.py` (hashing), `governor.py` (how many connections), `server_limits.py` (what a server
tolerates), `scheduler.py` (which unit of work next); this module runs them on threads and stops them: a stop
(Ctrl-C, a full disk) wakes every connection at once and reports nothing it broke.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiskError, HfgetError, Interrupted, NetworkError, NetworkTimeout, UnreachableRedirect
from ..fs.fsutil import disk_errors
from ..net.http import Cancelled, HttpClient, TokenGrant
from .connection import Lease, Retry, fetch
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
from .governor import SCOUT_WINDOW, ConnectionGovernor
from .resume_state import pending_bytes
from .scheduler import Scheduler
from .segments import PieceSizes
from .server_limits import OriginCaps

__all__ = [
    "Digest", "Event", "EventSink", "FileFailed", "FileFinished", "FileJob", "FileProgress", "FileRetrying",
    "FileStarted", "SourceSwitch", "Transfer", "TransferFinished", "TransferReport", "TransferStarted",
]

DEFAULT_CONNECTIONS = 64
FIRST_BYTE_SAMPLES = 64


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
    # Says what it means that the file's redirect leads to a host that cannot be reached (the source's words).
    explain_unreachable: Callable[[UnreachableRedirect], HfgetError] | None = None

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


class Transfer:
    """Runs jobs on a pool of daemon threads, one connection each. Per-file failures are collected; fatal ones
    (a full disk, a bug) stop everything."""

    def __init__(
        self,
        client: HttpClient,
        *,
        max_workers: int | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        on_event: EventSink | None = None,
        attempts: int = 5,
        lock_timeout: float | None = None,
        stall_timeout: float | None = None,
        piece_sizes: PieceSizes | None = None,
        adaptive: bool = True,
    ) -> None:
        self.client = client
        self.max_workers = max_workers  # files at once; None: as many as the governor's limit
        self.connections = max(1, connections)
        self.per_host = client.max_per_host  # the client's pools hold the same cap
        self.emit = on_event or (lambda event: None)
        self.attempts = attempts
        self.lock_timeout = lock_timeout
        # A connection that delivers nothing for this long is replaced: the client's read timeout unless given.
        self.stall_timeout = stall_timeout if stall_timeout is not None else client.timeout[1]
        self.piece_sizes = piece_sizes or PieceSizes()
        self.adaptive = adaptive  # let the governor find how many of the connections pay (else use them all)
        self.cancel = threading.Event()
        self.caps = OriginCaps()  # what each server showed it tolerates, for the rest of the run
        self._fatal: list[BaseException] = []
        self._leases: dict[int, Lease] = {}  # what each connection works on now
        self._last_byte: dict[int, float] = {}  # when each connection last received bytes (earlier leases)
        self._first_bytes: deque[float] = deque(maxlen=FIRST_BYTE_SAMPLES)  # recent requests' waits for an answer

    def run(self, jobs: Sequence[FileJob], *, source: str | None = None) -> TransferReport:
        started = time.monotonic()
        self._announce(jobs, source)
        engine = EngineSettings(
            connections=self.connections,
            sizes=self.piece_sizes,
            attempts=self.attempts,
            lock_timeout=self.lock_timeout,
            backoff=self.client.retry.delay,
            emit=self.emit,
            caps=self.caps,
        )
        tasks = [FileTask(job, engine) for job in jobs]
        pool = self._pool_size(jobs)
        budget = self._budget(tasks, pool)
        governor = ConnectionGovernor(budget, floor=min(2, budget)) if self.adaptive else None
        limit = governor.limit if governor else budget
        scheduler = Scheduler(tasks, self.max_workers, self.cancel, limit, per_host=self.per_host)
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
            self._supervise(threads, scheduler, governor, engine)
        except KeyboardInterrupt:
            self._stop(scheduler, threads, tasks)
            raise Interrupted(
                "Interrupted. Finished files are in the cache; partial files were kept.",
                "Run the same command again to resume where it stopped.",
            ) from None
        if self.cancel.is_set():  # a fatal error: leave every started file resumable
            self._stop(scheduler, threads, tasks)
        report = _report(tasks, time.monotonic() - started)
        self.emit(TransferFinished(report.bytes_downloaded, report.elapsed))
        if self._fatal:
            raise self._fatal[0]
        return report

    def _announce(self, jobs: Sequence[FileJob], source: str | None) -> None:
        pending = {job.key: job.pending() for job in jobs}
        self.emit(
            TransferStarted(
                files=len(jobs),
                total_bytes=sum(pending.values()),
                source=source,
                resumed_bytes=sum(job.size - pending[job.key] for job in jobs),
            )
        )

    def _supervise(self, threads, scheduler: Scheduler, governor: ConnectionGovernor | None, engine) -> None:
        """Wait for the connections, watching for held ranges and feeding the governor every 50 ms."""
        for thread in threads:
            # A fatal error (a full disk) stops everything now, not when the last stalled connection gives up.
            while thread.is_alive() and not self.cancel.is_set():
                thread.join(timeout=0.05)
                now = time.monotonic()
                for task in list(scheduler.active):
                    task.check_holds(now)
                if governor is not None:
                    moved = scheduler.received()
                    busy, quiet = scheduler.saturation(), self._quiet(now)
                    first_byte = self._first_byte() if scheduler.files_waiting() else None
                    limit = governor.tick(now, moved, busy, time.process_time(), quiet, first_byte)
                    scheduler.set_limit(limit)
                    engine.limit = self._piece_basis(governor)

    def _first_byte(self) -> float | None:
        """The median wait for an answer of the recent requests, once there are enough of them to say."""
        samples = sorted(self._first_bytes)
        return samples[len(samples) // 2] if len(samples) >= 4 else None

    def _budget(self, tasks: list[FileTask], pool: int) -> int:
        """Connections that can work at once: the threads, and no more than the per-host cap allows for the
        origins the files come from. The governor looks for the best limit below it."""
        origins = len({task.origin for task in tasks}) or 1
        return max(1, min(pool, self.per_host * origins))

    def _piece_basis(self, governor: ConnectionGovernor | None) -> int:
        """How many connections pieces are sized for. While the governor scouts, the whole budget: should it jump
        (a throttled mirror), the scouts' pieces must not be the big ones that a single slow connection then
        drags out. Once it has chosen, what it chose."""
        if governor is None or governor.phase == "scout":
            return self.connections
        return governor.limit

    def _quiet(self, now: float) -> int:
        """Connections at work that received nothing in the last scout window: held back by the server, or a
        request still on its way. They say nothing about how fast a connection is."""
        since = now - SCOUT_WINDOW
        return sum(
            1 for index, lease in list(self._leases.items())
            if max(lease.last_byte, self._last_byte.get(index, 0.0)) < since
        )

    def _pool_size(self, jobs: Sequence[FileJob]) -> int:
        """As many threads as connections could be busy: one per small file, up to all of them on large files."""
        sizes = self.piece_sizes
        files = self.max_workers or self.connections
        useful = min(files, len(jobs)) + sum(
            max(0, -(-job.size // sizes.min_piece) - 1) for job in jobs if sizes.worth_splitting(job.size)
        )
        return max(1, min(self.connections, useful))

    def _stop(self, scheduler: Scheduler, threads: list[threading.Thread], tasks: list[FileTask]) -> None:
        self.cancel.set()
        scheduler.wake(everyone=True)
        # Wakes threads blocked in a read (a body, headers a server holds back) or in a retry pause. What they then
        # see is our own stop, not the server's failure: they report nothing (see _worker, _connection).
        self.client.interrupt()
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for task in tasks:
            task.cancel()  # records what is on disk, closes the partial, releases the file lock

    # --- one connection -------------------------------------------------------------------------------------

    def _worker(self, scheduler: Scheduler, index: int) -> None:
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
                    self._leases[index] = lease = Lease(task, segment)
                    try:
                        self._connection(lease, scheduler)
                    finally:
                        self._last_byte[index] = self._leases.pop(index).last_byte
                        self._first_bytes.extend(lease.first_bytes)
            except (Stop, Cancelled):
                pass
            except HfgetError as error:
                if self.cancel.is_set():
                    continue  # the stop broke it (or a second full disk): the first fatal error is what counts
                task.fail(error)
                if isinstance(error, DiskError):  # disk full, permissions: no other file can succeed either
                    self._fatal.append(error)
                    self.cancel.set()
            except BaseException as error:  # a bug: stop everything and let the CLI report it
                if self.cancel.is_set() and isinstance(error, OSError):
                    continue
                task.fail(_internal(error))
                self._fatal.append(error)
                self.cancel.set()
            finally:
                if self.cancel.is_set():
                    scheduler.wake(everyone=True)

    def _start(self, task: FileTask, scheduler: Scheduler):
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

    def _connection(self, lease: Lease, scheduler: Scheduler) -> None:
        task = lease.task
        try:
            if fetch(lease, self.client, stall_timeout=self.stall_timeout, cancel=self.cancel, emit=self.emit):
                task.complete()
        except (Stop, Cancelled):
            pass
        except (NetworkError, Retry) as failure:
            if not self.cancel.is_set():  # a connection our own stop broke is no failure of the server
                error = failure.error if isinstance(failure, Retry) else failure
                task.connection_failed(
                    lease.segment,
                    error,
                    sent_at=lease.sent_at,
                    retry_after=failure.retry_after if isinstance(failure, Retry) else None,
                    crowded=failure.crowded if isinstance(failure, Retry) else isinstance(failure, NetworkTimeout),
                )
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


def _report(tasks: list[FileTask], elapsed: float) -> TransferReport:
    report = TransferReport(elapsed=elapsed)
    for task in tasks:
        if task.status == "done":
            report.done.append(task.key)
            report.downloaded[task.key] = task.received
        elif task.status == "failed" and task.error is not None:
            report.failed[task.key] = task.error
    return report


def _internal(error: BaseException) -> HfgetError:
    return HfgetError(f"Internal error while downloading: {type(error).__name__}: {error}")
