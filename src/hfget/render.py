"""Turn results and errors into Rich output or JSON. The only place that decides how hfget's answers look."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .download import DownloadResult
from .errors import HfgetError
from .units import human_bytes, human_duration, human_rate


def emit_json(data: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(data, indent=2, default=str) + "\n")
    stream.flush()


def error(console: Console, err: HfgetError) -> None:
    console.print(f"[bold red]Error:[/] {escape(err.message)}", highlight=False)
    if err.hint:
        console.print(f"[bold]Fix:[/] {escape(err.hint)}", highlight=False)


def download_summary(console: Console, result: DownloadResult) -> None:
    repo = result.repo_id if result.repo_type == "model" else f"{result.repo_type} {result.repo_id}"
    where = f"{result.source} ({result.endpoint})"
    if len(result.attempts) > 1:
        attempts = Table(title="Sources tried", show_edge=False, title_justify="left")
        for column in ("source", "endpoint", "outcome", "why"):
            attempts.add_column(column)
        for a in result.attempts:
            color = "green" if a.outcome == "ok" else "red"
            attempts.add_row(a.source, a.endpoint, f"[{color}]{a.outcome}[/]", escape(a.why))
        console.print(attempts)
    downloaded = result.count("downloaded")
    cached = result.count("cached")
    moved = result.bytes_downloaded
    speed = f" at {human_rate(moved / result.elapsed)}" if moved and result.elapsed > 0 else ""
    console.print(
        f"[bold green]✓[/] {escape(repo)} @ {escape(result.revision)} "
        f"(commit {result.commit[:10]}) from {escape(where)}",
        highlight=False,
    )
    parts = [f"{len(result.files)} files, {human_bytes(result.total_size)}"]
    if downloaded:
        parts.append(f"{downloaded} downloaded ({human_bytes(moved)} in {human_duration(result.elapsed)}{speed})")
    if cached:
        parts.append(f"{cached} already cached")
    console.print("  " + "; ".join(parts), highlight=False)
    console.print(f"  → {escape(result.location)}", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False)


def dry_run_table(console: Console, result: DownloadResult) -> None:
    table = Table(
        title=f"{result.repo_id} @ {result.revision} (commit {result.commit[:10]}) — dry run, nothing written",
        title_justify="left",
        show_edge=False,
    )
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("action")
    to_move = 0
    for f in result.files:
        if f.status == "cached":
            action = "[dim]already cached[/]"
        else:
            action = "download"
            to_move += f.size
        table.add_row(escape(f.path), human_bytes(f.size), action)
    console.print(table)
    console.print(
        f"{len(result.files)} files, {human_bytes(result.total_size)} in all; "
        f"{human_bytes(to_move)} would be downloaded from {result.source} ({escape(result.endpoint)}) "
        f"into {escape(result.location)}",
        highlight=False,
        soft_wrap=True,
    )
