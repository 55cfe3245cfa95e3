"""How `hfget cache verify` looks: hashing progress on stderr, then one line per revision and one per bad file."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from ..cache.model import HF
from ..cache.verify import Hashed, HashFinished, HashStarted, SnapshotCheck, VerifyReport
from ..units import human_bytes, human_duration, human_rate


class HashProgress:
    """A bar of bytes hashed (terminal) or a line every few seconds (logs); nothing when `mode` is "none"."""

    INTERVAL = 5.0

    def __init__(self, mode: str, console: Console, stream: TextIO) -> None:
        self.mode, self.console, self.stream = mode, console, stream
        self.lock = threading.Lock()
        self.progress = None
        self.task = None
        self.done = self.total = 0
        self.last = time.monotonic()

    def __enter__(self) -> HashProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: object) -> None:
        if self.mode == "none":
            return
        with self.lock:
            if isinstance(event, HashStarted):
                self.total, self.done = event.total_bytes, 0
                self._start(event)
            elif isinstance(event, HashFinished):
                if self.progress is not None:  # one live display at a time: a repair's own comes next
                    self.progress.stop()
                    self.progress = None
            elif isinstance(event, Hashed):
                self.done += event.delta
                if self.progress is not None:
                    self.progress.advance(self.task, event.delta)
                elif time.monotonic() - self.last >= self.INTERVAL:
                    self.last = time.monotonic()
                    print(f"  {human_bytes(self.done)} / {human_bytes(self.total)} hashed", file=self.stream, flush=True)

    def _start(self, event: HashStarted) -> None:
        text = f"Hashing {event.files} files ({human_bytes(event.total_bytes)})"
        if self.mode != "rich":
            print(text, file=self.stream, flush=True)
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(TextColumn(text), BarColumn(), DownloadColumn(binary_units=False),
                                 TransferSpeedColumn(), console=self.console, transient=True)
        self.task = self.progress.add_task("hash", total=event.total_bytes)
        self.progress.start()


class LateProgress:
    """The download renderer for a repair, started only when the repair starts (after hashing has drawn)."""

    def __init__(self, mode: str, console: Console, stream: TextIO) -> None:
        self.args = (mode, console, stream)
        self.renderer = None

    def __enter__(self) -> LateProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.renderer is not None:
            self.renderer.__exit__(*exc)

    def __call__(self, event: object) -> None:
        if self.renderer is None:
            from .progress import for_mode

            self.renderer = for_mode(*self.args)
            self.renderer.__enter__()
        self.renderer(event)


def verify_report(console: Console, report: VerifyReport) -> None:
    if not report.snapshots:
        console.print("Nothing cached to verify.", highlight=False)
        return
    for snapshot in report.snapshots:
        _snapshot_line(console, snapshot)
    files = sum(len(s.files) for s in report.snapshots)
    rate = f", {human_rate(report.bytes_hashed / report.elapsed)}" if report.elapsed > 0 and report.bytes_hashed else ""
    console.print(f"{len(report.snapshots)} revision(s), {files} files, {human_bytes(report.bytes_hashed)} hashed in "
                  f"{human_duration(report.elapsed)}{rate} ({report.workers} at a time)", highlight=False)
    if report.repair is not None:
        _repair_lines(console, report)
    elif report.bad:
        repos = sorted({s.repo_id for s, _ in report.bad})
        console.print(f"[bold red]✗[/] {len(report.bad)} bad file(s) in {len(repos)} repo(s). "
                      f"[bold]Fix:[/] hfget cache verify {escape(' '.join(repos))} --repair re-fetches exactly those.",
                      highlight=False)
    else:
        unverified = sum(1 for s in report.snapshots for f in s.files if f.status == "unverified")
        note = f" ({unverified} could not be checked: nothing to compare with)" if unverified else ""
        console.print(f"[bold green]✓[/] Every file checked matches its hash{note}.", highlight=False)


def _snapshot_line(console: Console, snapshot: SnapshotCheck) -> None:
    cache = "hf" if snapshot.cache == HF else "ms"
    name = snapshot.repo_id if snapshot.kind == "model" else f"{snapshot.kind}/{snapshot.repo_id}"
    revision = snapshot.revision[:10] + (f" ({', '.join(snapshot.refs)})" if snapshot.refs else "")
    counts = {}
    for f in snapshot.files:
        counts[f.status] = counts.get(f.status, 0) + 1
    state = "[green]✓[/]" if not snapshot.bad else "[red]✗[/]"
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{state} {cache}  {escape(name)} @ {escape(revision)}  {summary or 'no files'}  "
                  f"[dim]against the {escape(snapshot.reference)}[/]", highlight=False)
    for f in snapshot.files:
        if f.bad or f.status == "repaired":
            color = "green" if f.status == "repaired" else "red"
            console.print(f"    [{color}]{f.status}[/] {escape(f.path)}: {escape(f.detail)}", highlight=False)
    if snapshot.note:
        console.print(f"    [yellow]note:[/] {escape(snapshot.note)}", highlight=False)


def _repair_lines(console: Console, report: VerifyReport) -> None:
    result = report.repair
    for outcome in result.outcomes:
        where = f" from {escape(outcome.source)}" if outcome.source else ""
        if outcome.error is None and sorted(outcome.fixed) == sorted(outcome.paths):
            console.print(f"[bold green]✓[/] Repaired {len(outcome.fixed)} file(s) of {escape(outcome.repo_id)}{where}: "
                          f"{human_bytes(outcome.bytes_downloaded)} moved; they verify now.", highlight=False)
            continue
        left = [p for p in outcome.paths if p not in outcome.fixed]
        console.print(f"[bold red]✗[/] {escape(outcome.repo_id)}: {len(left)} file(s) still bad "
                      f"({escape(', '.join(left))}).", highlight=False)
        if outcome.error:
            console.print(f"  [bold red]Error:[/] {escape(outcome.error['message'])}", highlight=False)
            if outcome.error.get("hint"):
                console.print(f"  [bold]Fix:[/] {escape(outcome.error['hint'])}", highlight=False)
