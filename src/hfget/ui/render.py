"""Turn results and errors into Rich output or JSON. The only place that decides how hfget's answers look."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import HfgetError
from ..flows.appenv import LoadHint
from ..units import human_bytes, human_duration, human_rate, plural

if TYPE_CHECKING:  # annotations only: importing it would load the transfer stack
    from ..download import DownloadResult


def emit_json(data: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(data, indent=2, default=str) + "\n")
    stream.flush()


def error(console: Console, err: HfgetError, quiet: bool = False) -> None:
    """The error paragraph and its fix; before it (unless `quiet`: errors only) the sources tried and the notes."""
    if not quiet:
        if len(err.attempts) > 1:
            attempts_table(console, err.attempts)
        notes(console, err.notes)
    console.print(f"[bold red]Error:[/] {escape(err.message)}", highlight=False)
    if err.hint:
        console.print(f"[bold]Fix:[/] {escape(err.hint)}", highlight=False)


def attempts_table(console: Console, attempts: list[dict]) -> None:
    table = Table(title="Sources tried", show_edge=False, title_justify="left")
    for column in ("source", "endpoint", "outcome", "why"):
        table.add_column(column, overflow="fold")
    colors = {"ok": "green", "partial": "yellow", "skipped": "dim"}
    for a in attempts:
        color = colors.get(a["outcome"], "red")
        table.add_row(escape(a["source"]), escape(a["endpoint"]), f"[{color}]{escape(a['outcome'])}[/]", escape(a["why"]))
    console.print(table)


def download_summary(console: Console, result: DownloadResult) -> None:
    repo = result.repo_id if result.repo_type == "model" else f"{result.repo_type} {result.repo_id}"
    where = f"{result.source} ({result.endpoint})"
    if len(result.attempts) > 1:
        attempts_table(console, [asdict(a) for a in result.attempts])
    downloaded = result.count("downloaded")
    cached = result.count("cached")
    moved = result.bytes_downloaded
    speed = f" at {human_rate(moved / result.elapsed)}" if moved and result.elapsed > 0 else ""
    sources = sorted({f.source for f in result.files if f.source and f.source != result.source})
    also = f", with files from {', '.join(sources)}" if sources else ""
    console.print(
        f"[bold green]✓[/] {escape(repo)} @ {escape(result.revision)} "
        f"(commit {result.commit[:10]}) from {escape(where)}{also}",
        highlight=False,
    )
    parts = [f"{plural(len(result.files), 'file')}, {human_bytes(result.total_size)}"]
    if downloaded:
        parts.append(f"{downloaded} downloaded ({human_bytes(moved)} in {human_duration(result.elapsed)}{speed})")
    if cached:
        parts.append(f"{cached} already cached")
    console.print("  " + "; ".join(parts), highlight=False)
    console.print(f"  → {escape(result.location)}", highlight=False, soft_wrap=True)
    notes(console, result.notes, indent="  ")


def notes(console: Console, lines: list[str] | tuple[str, ...], indent: str = "") -> None:
    for note in lines:
        console.print(f"{indent}[yellow]note:[/] {escape(note)}", highlight=False)


def dry_run_table(console: Console, result: DownloadResult) -> None:
    table = Table(
        title=f"{escape(result.repo_id)} @ {escape(result.revision)} (commit {result.commit[:10]}) — dry run, nothing "
              "written",
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
        f"{plural(len(result.files), 'file')}, {human_bytes(result.total_size)} in all; "
        f"{human_bytes(to_move)} would be downloaded from {escape(result.source)} ({escape(result.endpoint)}) "
        f"into {escape(result.location)}",
        highlight=False,
        soft_wrap=True,
    )
    notes(console, result.notes)


def load_line(console: Console, hint: LoadHint) -> None:
    """The summary's last line: how your code loads what was fetched."""
    env = " ".join(f"{k}={v}" for k, v in hint.env.items())
    how = f"with {escape(env)}: " if env else ""
    shell = " [dim](hfget env prints it for your shell)[/]" if env else ""
    console.print(f"  load it {how}[bold]{escape(hint.code)}[/]{shell}", highlight=False, soft_wrap=True)
    if hint.note:
        console.print(f"  [dim]({escape(hint.note)})[/]", highlight=False, soft_wrap=True)
