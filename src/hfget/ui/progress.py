"""Progress renderers: turn the transfer engine's events into something a person watches.

`RichProgress`: an overall bar (bytes, speed, ETA, source) and a row for each file in flight, for terminals.
`PlainProgress`: one line per finished file and a periodic total, for logs and pipes.
`NoProgress`: nothing (`--quiet`, `--json`). All are context managers and accept events from any thread.

File names, sources and reasons come from servers: every one is escaped before Rich reads the markup (a repo may
hold `data/[train]x.parquet` or `[/]odd.txt`, which Rich would otherwise mangle or refuse with a MarkupError).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple, TextIO

from rich.console import Console
from rich.markup import escape

from ..engine.events import (
    Event,
    FileFailed,
    FileFinished,
    FileProgress,
    FileRetrying,
    FileStarted,
    SourceSwitch,
    TransferFinished,
    TransferStarted,
)
from ..units import human_bytes, human_duration, human_rate, plural


class Wording(NamedTuple):
    """How a renderer words the work: downloads by default; bundle export and import reuse the same events."""

    verb: str = "Downloading"
    done: str = "downloaded"
    via: str = "from"


DOWNLOAD = Wording()


class NoProgress:
    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, event: Event) -> None:
        return None


class RichProgress:
    MAX_ROWS = 8
    MIN_BAR = 6
    NUMBERS_WIDTH = 17 + 10 + 5 + 4  # bytes done/total, speed, time left, and the gaps between the five columns

    def __init__(self, console: Console, wording: Wording = DOWNLOAD) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from rich.table import Column

        self.console = console
        self.wording = wording
        # Every cell on one line, whatever the terminal's width (80 columns included): the numbers keep their room,
        # the bar takes what is left, and a long file name or source is cut (…) rather than wrapped, which would
        # break each row in two and leave the units ("MB") on a line of their own.
        self.name_width = max(12, console.width - self.NUMBERS_WIDTH - self.MIN_BAR)
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis",
                                                                  max_width=self.name_width)),
            BarColumn(bar_width=None, table_column=Column(min_width=self.MIN_BAR)),
            DownloadColumn(binary_units=False, table_column=Column(no_wrap=True, justify="right", min_width=17)),
            TransferSpeedColumn(table_column=Column(no_wrap=True, justify="right", min_width=10)),
            TimeRemainingColumn(compact=True, elapsed_when_finished=True, table_column=Column(no_wrap=True)),
            console=console,
            transient=False,
            refresh_per_second=8,
            expand=True,
        )
        self.overall = None
        self.landed = 0  # bytes of finished files, kept when another source takes over
        self.rows: dict[str, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            for task_id in self.rows.values():
                self.progress.remove_task(task_id)
            self.rows.clear()
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        p = self.progress
        with self.lock:
            if isinstance(event, TransferStarted):
                source = f" {self.wording.via} [bold]{escape(event.source)}[/]" if event.source else ""
                description = f"[bold]{plural(event.files, 'file')}[/]{source}"
                # Resumed bytes count as done from the start (FileStarted reports them per file).
                total = event.total_bytes + event.resumed_bytes
                if self.overall is None:
                    self.overall = p.add_task(description, total=total)
                else:  # another source takes over: what landed stays counted, the rest starts again
                    p.update(self.overall, description=description, total=self.landed + total, completed=self.landed)
            elif isinstance(event, SourceSwitch):
                p.console.print(f"[yellow]↪ switching to {escape(event.source)}[/] [dim]({escape(event.reason)})[/]",
                                highlight=False)
            elif self.overall is None:
                return
            elif isinstance(event, FileStarted):
                p.advance(self.overall, event.resumed_from)
                if event.resumed_from < event.size and len(self.rows) < self.MAX_ROWS:
                    self.rows[event.key] = p.add_task(
                        f"  [cyan]{escape(_short(event.key, self.name_width - 2))}[/]", total=event.size,
                        completed=event.resumed_from,
                    )
                if event.resumed_from and event.resumed_from < event.size:
                    p.console.print(f"[dim]↻ resuming {escape(event.key)} at {human_bytes(event.resumed_from)}[/]",
                                    highlight=False)
            elif isinstance(event, FileProgress):
                p.advance(self.overall, event.delta)
                if event.key in self.rows:
                    p.advance(self.rows[event.key], event.delta)
            elif isinstance(event, FileRetrying):
                p.console.print(f"[yellow]↻ {escape(event.key)}: {escape(event.reason)} (retry {event.attempt})[/]",
                                highlight=False)
            elif isinstance(event, FileFinished):
                self.landed += event.size
                task = self.rows.pop(event.key, None)
                if task is not None:
                    p.remove_task(task)
            elif isinstance(event, FileFailed):
                task = self.rows.pop(event.key, None)
                if task is not None:
                    p.remove_task(task)
                p.console.print(f"[red]✗ {escape(event.key)}: {escape(event.error.message)}[/]", highlight=False)
            elif isinstance(event, TransferFinished):
                p.update(self.overall, completed=p.tasks[self.overall].total)


class PlainProgress:
    """Line-oriented progress for logs: no cursor movement, no colours.

    Lines are written in batches, at most every `FLUSH` seconds (and at once for the first and last lines, retries
    and failures): thousands of small files finish in a few seconds, and a write and flush per "done" line, made
    while every connection thread waits for this lock, cost more than fetching the files."""

    INTERVAL = 5.0
    FLUSH = 0.25

    def __init__(self, stream: TextIO, interval: float | None = None, wording: Wording = DOWNLOAD) -> None:
        self.stream = stream
        self.wording = wording
        self.interval = self.INTERVAL if interval is None else interval
        self.lock = threading.Lock()
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.last = self.started
        self._pending: list[str] = []
        self._flushed = self.started

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            self._flush()

    def _line(self, text: str) -> None:
        self._pending.append(text)

    def _flush(self) -> None:
        if self._pending:
            self.stream.write("".join(f"{line}\n" for line in self._pending))
            self.stream.flush()
            self._pending.clear()
        self._flushed = time.monotonic()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._record(event)
            urgent = isinstance(event, (TransferStarted, TransferFinished, SourceSwitch, FileRetrying, FileFailed))
            if self._pending and (urgent or time.monotonic() - self._flushed >= self.FLUSH):
                self._flush()

    def _record(self, event: Event) -> None:
        if isinstance(event, TransferStarted):
            self.total, self.done, self.started = event.total_bytes + event.resumed_bytes, 0, time.monotonic()
            self.last = self.started
            source = f" {self.wording.via} {event.source}" if event.source else ""
            resumed = f", {human_bytes(event.resumed_bytes)} already on disk" if event.resumed_bytes else ""
            self._line(f"{self.wording.verb} {plural(event.files, 'file')} ({human_bytes(event.total_bytes)}{resumed})"
                       f"{source}")
        elif isinstance(event, SourceSwitch):
            self._line(f"Switching to {event.source} ({event.reason})")
        elif isinstance(event, FileStarted):
            self.done += event.resumed_from
            if 0 < event.resumed_from < event.size:
                self._line(f"  resuming {event.key} at {human_bytes(event.resumed_from)}")
        elif isinstance(event, FileProgress):
            self.done += event.delta
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                rate = self.done / max(now - self.started, 1e-6)
                pct = 100 * self.done / self.total if self.total else 100
                self._line(
                    f"  {pct:5.1f}%  {human_bytes(self.done)} / {human_bytes(self.total)}  {human_rate(rate)}"
                )
        elif isinstance(event, FileRetrying):
            self._line(f"  retry {event.attempt} {event.key}: {event.reason}")
        elif isinstance(event, FileFinished):
            how = self.wording.done if event.downloaded else "already there"
            self._line(f"  done {event.key} ({human_bytes(event.size)}, {how})")
        elif isinstance(event, FileFailed):
            self._line(f"  FAILED {event.key}: {event.error.message}")
        elif isinstance(event, TransferFinished):
            self._line(
                f"Moved {human_bytes(event.downloaded)} in {human_duration(event.elapsed)}"
                f" ({human_rate(event.downloaded / max(event.elapsed, 1e-6))})"
            )


def _short(path: str, width: int = 36) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def for_mode(mode: str, console: Console, stream: TextIO, wording: Wording = DOWNLOAD):
    if mode == "rich":
        return RichProgress(console, wording)
    if mode == "plain":
        return PlainProgress(stream, wording=wording)
    return NoProgress()
