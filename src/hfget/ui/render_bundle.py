"""How `hfget bundle export | import | ls` look on a terminal (JSON goes through `render.emit_json`)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..bundle import BundleListing, ExportResult, ImportResult
from ..units import human_bytes, human_duration
from .progress import Wording

EXPORTING = Wording("Exporting", "exported", "into")
IMPORTING = Wording("Importing", "verified", "from")


def export_result(console: Console, result: ExportResult) -> None:
    shared = result.file_bytes - result.blob_bytes
    saved = f"; {human_bytes(shared)} shared between revisions, stored once" if shared > 0 else ""
    console.print(
        f"[bold green]✓[/] Wrote {escape(result.path)} ({human_bytes(result.bundle_size)}) in "
        f"{human_duration(result.elapsed)}: {len(result.revisions)} revision(s), {result.blobs} distinct files{saved}",
        highlight=False, soft_wrap=True,
    )
    table = _table("repo", "refs", "commit", "files", "size", "came from", ids=_ids(result.revisions))
    for r in result.revisions:
        origin = (r.source or "unknown") + (" (downloaded now)" if r.downloaded else "")
        table.add_row(_repo(r.repo_id, r.repo_type), escape(", ".join(r.refs) or "(commit)"), r.commit[:10],
                      str(r.files), human_bytes(r.size), escape(origin))
    console.print(table)
    _notes(console, result.notes)
    console.print(f"  Carry it over, then: hfget bundle import {escape(result.path.rsplit('/', 1)[-1])}",
                  highlight=False)


def import_result(console: Console, result: ImportResult) -> None:
    done = [r for r in result.revisions if r.status == "imported"]
    head = (f"{len(done)} revision(s) imported" if done else "everything was already in the cache")
    moved = f"; {result.blobs_written} files verified and written ({human_bytes(result.bytes_written)})"
    resumed = f"; {result.blobs_resumed} verified by an earlier, interrupted run" if result.blobs_resumed else ""
    present = f"; {result.blobs_present} already in the cache" if result.blobs_present else ""
    console.print(
        f"[bold green]✓[/] {escape(result.bundle)} → {escape(result.cache)}: {head}{moved if done else ''}{resumed}"
        f"{present} ({human_duration(result.elapsed)})",
        highlight=False, soft_wrap=True,
    )
    table = _table("repo", "refs", "commit", "files", "size", "status", ids=_ids(result.revisions))
    for r in result.revisions:
        table.add_row(_repo(r.repo_id, r.repo_type), escape(", ".join(r.refs) or "(commit)"), r.commit[:10],
                      str(r.files), human_bytes(r.size), r.status)
    console.print(table)
    _notes(console, result.notes)
    console.print("  Load offline with HF_HUB_OFFLINE=1 (transformers, huggingface_hub).", highlight=False)


def listing(console: Console, found: BundleListing) -> None:
    console.print(
        f"{escape(found.path)}: {human_bytes(found.bundle_size)}, made {escape(found.created)} by hfget "
        f"{escape(found.hfget_version)}; {found.blobs} distinct files ({human_bytes(found.blob_bytes)})",
        highlight=False, soft_wrap=True,
    )
    table = _table("repo", "refs", "commit", "files", "size", "came from", "in cache", ids=_ids(found.revisions))
    for r in found.revisions:
        files = f"{r.files}" if r.files == r.listed_files or not r.complete_listing else f"{r.files} of {r.listed_files}"
        if r.cached_files == r.files:
            cached = "[green]yes[/]"
        else:
            cached = f"{r.cached_files} of {r.files} files" if r.cached_files else "no"
        origin = r.source or "unknown"
        table.add_row(_repo(r.repo_id, r.repo_type), escape(", ".join(r.refs) or "(commit)"), r.commit[:10], files,
                      human_bytes(r.size), escape(origin), cached)
    console.print(table)
    console.print(f"  local cache: {escape(found.cache)}", highlight=False, soft_wrap=True)
    if found.problem:
        console.print(f"[bold red]✗[/] {escape(found.problem)}", highlight=False, soft_wrap=True)
    else:
        console.print("[bold green]✓[/] Every file is in place (contents are verified when it is imported).",
                      highlight=False)


def _table(*columns: str, ids: list[str] = ()) -> Table:
    """Repo ids keep their line where the terminal allows (up to 40 columns); the other columns fold first."""
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in columns:
        width = min(40, max([len(i) for i in ids] + [4])) if name == "repo" else None
        table.add_column(name, overflow="fold", justify="right" if name in ("files", "size") else "left",
                         min_width=width)
    return table


def _ids(revisions) -> list[str]:
    return [r.repo_id if r.repo_type == "model" else f"{r.repo_type}s/{r.repo_id}" for r in revisions]


def _repo(repo_id: str, repo_type: str) -> str:
    return escape(repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}")


def _notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
