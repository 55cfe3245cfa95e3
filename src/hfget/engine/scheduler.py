"""Which file and which range each idle connection of the transfer engine works on next, and how many connections
may work at once (the governor moves that limit; connections above it park until it rises).

Files in flight follow the same limit unless the caller fixed a number (`--max-workers N`): a small file takes one
connection, so on a distant server, where each file is mostly round trips, the governor's higher limit means more
files at once. No origin ever gets more than `per_host` units at once (`--max-per-host`); the HTTP client's pool
holds the same cap, so a connection thread never waits there for a free connection."""

from __future__ import annotations

import threading
import time

from .file_task import FileTask


class Scheduler:
    """Decides what each idle connection does next: start a file, fetch a piece, or take over half a range."""

    def __init__(
        self, tasks: list[FileTask], max_files: int | None, cancel: threading.Event, limit: int, per_host: int = 1 << 30
    ) -> None:
        # Files worth splitting first, largest first: they get their connections going while small ones fill the
        # gaps. Small ones keep their order, so the byte rate the governor watches does not drift with file size.
        self.pending = sorted(tasks, key=lambda t: -t.size if t.engine.sizes.worth_splitting(t.size) else 0)
        self.active: list[FileTask] = []
        self.finished_bytes = 0  # received by the files no longer active (so the governor's total is cheap)
        self.max_files = max_files  # None: as many as the limit
        self.per_host = per_host
        self.at_origin: dict[object, int] = {}  # units at work per origin
        self._origin_of: dict[int, object] = {}  # connection index -> the origin its unit is counted at
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
                origin = self._origin_of.pop(index, None)
                if origin is not None:
                    self.at_origin[origin] -= 1
            while not self.cancel.is_set():
                now = time.monotonic()
                self._prune()
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
                    origin = unit[0].origin
                    self._origin_of[index] = origin
                    self.at_origin[origin] = self.at_origin.get(origin, 0) + 1
                    return unit
                self.cond.wait(timeout=self._wait_time(now))
            return None

    def _prune(self) -> None:
        if any(t.finished for t in self.active):
            self.finished_bytes += sum(t.received for t in self.active if t.finished)
            self.active = [t for t in self.active if not t.finished]

    def received(self) -> int:
        """Bytes written by every file so far (without summing thousands of finished small files each tick)."""
        with self.cond:
            return self.finished_bytes + sum(t.received for t in self.active)

    def files_cap(self) -> int:
        return self.max_files if self.max_files is not None else self.limit

    def _full(self, task: FileTask) -> bool:
        return self.at_origin.get(task.origin, 0) >= self.per_host

    def _pick(self, now: float) -> tuple[FileTask, object | None] | None:
        if len(self.active) < self.files_cap():
            for task in self.pending:
                if task.retry_at <= now and not self._full(task):
                    self.pending.remove(task)
                    self.active.append(task)
                    return task, None
        ranked = sorted(
            ((p, i, t) for i, t in enumerate(self.active) if (p := t.priority(now)) is not None),
            key=lambda item: (item[0], -item[1]),
            reverse=True,
        )
        for _, _, task in ranked:
            if self._full(task):
                continue
            segment = task.take_segment(now)
            if segment is not None:
                return task, segment
        return None

    def files_waiting(self) -> bool:
        """Whether whole files wait for a slot: what holds work back is how many files are in flight."""
        with self.cond:
            return bool(self.pending) and len(self.active) >= self.files_cap()

    def saturation(self) -> int:
        """Busy connections, counted as the whole limit when the file slots are what holds work back (many small
        files): either way, more concurrency is what would change the rate."""
        with self.cond:
            files_full = bool(self.pending) and len(self.active) >= self.files_cap() and self.busy >= len(self.active)
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
