"""How `hfget cache list` and `hfget cache clean` look on a terminal (JSON goes through `render.emit_json`)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..cache import HF, CachedRepo, CacheRoot, CacheScan, CleanPlan, CleanResult
from ..cache.clean import PARTIALS, REPO, REVISIONS, Step
from ..cache.select import last_used
from ..units import human_age, human_bytes

_SHORT = {HF: "hf", "modelscope": "ms"}
_LABEL = {HF: "Hugging Face", "modelscope": "ModelScope"}


def cache_list(console: Console, found: CacheScan, show_revisions: bool = False) -> None:
    _roots(console, found.roots, found.sizes)
    if not found.repos:
        console.print("No cached repo matches." if found.scanned else "Nothing cached.", highlight=False)
        _notes(console, found.notes)
        return
    repos = found.repos
    console.print(_repos_table(console.width, repos, show_revisions))
    partials = sum(len(r.partials) for r in repos)
    shown = f"{len(repos)} repo{'s' if len(repos) != 1 else ''}"
    if len(repos) != found.scanned:
        shown = f"{len(repos)} of {found.scanned} repos"
    line = f"{shown}, {human_bytes(sum(r.size for r in repos))} on disk"
    if partials:
        line += (f"; {partials} partial download{'s' if partials > 1 else ''} "
                 f"({human_bytes(sum(r.partial_size for r in repos))}): hfget cache clean --incomplete")
    console.print(line, highlight=False)
    notes = list(found.notes)
    for repo in repos:
        if repo.problem:
            notes.append(f"{repo.key}: damaged ({repo.problem}); `hfget cache clean {repo.key}` removes it.")
        if repo.in_use:
            notes.append(f"{repo.key}: a download is running in it right now; cache clean leaves it alone.")
    _notes(console, notes)


def _repos_table(width: int, repos, show_revisions: bool) -> Table:
    now = time.time()
    # Columns that would be empty for every row are left out: the table has to fit 80 columns where it can.
    with_partials = any(r.partials for r in repos)
    with_sources = any(r.sources for r in repos)
    # Under 100 columns "accessed" and "modified" become one column, "used": the later of the two, which is what
    # `cache clean --older-than` goes by (--json and a wider terminal show both).
    narrow = width < 100
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    # On a narrow terminal the refs fold first: an id is what you copy into `hfget cache clean`, so it keeps a line
    # of its own as far as the other columns let it (26 characters on 80 columns; a longer one folds); every other
    # column keeps its header readable.
    id_width = min(max(16, width - 54), max(Text.from_markup(escape(r.key) + _flags(r)).cell_len for r in repos))
    table.add_column("cache", no_wrap=True)
    table.add_column("id", overflow="fold", ratio=1, min_width=id_width)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("refs", min_width=6)
    for name in ("used",) if narrow else ("accessed", "modified"):
        table.add_column(name, no_wrap=True)
    if with_partials:
        table.add_column("incomplete", justify="right", no_wrap=True)
    if with_sources:
        table.add_column("served by", min_width=9)
    for repo in repos:
        used = [human_age(now - last_used(repo))] if narrow else [
            human_age(now - repo.last_accessed), human_age(now - repo.last_modified)]
        row = [_SHORT[repo.cache], escape(repo.key) + _flags(repo), human_bytes(repo.size), str(repo.files),
               escape(_refs(repo)), *used]
        row += [human_bytes(repo.partial_size) if repo.partials else ""] if with_partials else []
        row += [escape(", ".join(repo.sources))] if with_sources else []
        table.add_row(*row)
        for rev in repo.revisions if show_revisions else ():
            sub = ["", f"[dim]└[/] {escape(rev.name[:12] if repo.cache == HF else rev.name)}", human_bytes(rev.size),
                   str(rev.files), escape(", ".join(rev.refs) or "(detached)"),
                   *([] if narrow else [""]), human_age(now - rev.last_modified)]
            sub += [""] if with_partials else []
            sub += [escape(rev.source or "")] if with_sources else []
            table.add_row(*sub, style="dim")
    return table


def _roots(console: Console, roots: tuple[CacheRoot, ...], sizes: dict[str, int]) -> None:
    for root in roots:
        size = human_bytes(sizes[root.name]) if root.name in sizes else "not there"
        console.print(f"[bold]{_LABEL[root.name]}[/] cache: {escape(str(root.path))} "
                      f"[dim](from {escape(root.origin)})[/] — {size}", highlight=False, soft_wrap=True)
    console.print()


def _flags(repo: CachedRepo) -> str:
    marks = []
    if repo.layout == "legacy":
        marks.append("[dim](old layout)[/]")
    if repo.problem:
        marks.append("[red](damaged)[/]")
    if repo.in_use:
        marks.append("[yellow](in use)[/]")
    return (" " + " ".join(marks)) if marks else ""


def _refs(repo: CachedRepo) -> str:
    """The refs, and how many revisions no ref points to ('main, v1.0 +1 detached')."""
    detached = sum(1 for r in repo.revisions if r.detached)
    text = ", ".join(repo.refs)
    if detached:
        text = f"{text} +{detached} detached" if text else f"{detached} detached"
    return text or "-"


def _notes(console: Console, notes: list[str] | tuple[str, ...]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


# --- clean ------------------------------------------------------------------------------------------------------


def clean_plan(console: Console, plan: CleanPlan, dry_run: bool) -> None:
    if not plan.steps and not plan.skipped:
        console.print("Nothing to clean: no cached repo or partial download matches.", highlight=False)
        return
    if plan.steps:
        table = Table(title="Would delete (dry run)" if dry_run else "Will delete",
                      title_justify="left", show_edge=False, box=None, pad_edge=False, header_style="bold")
        table.add_column("cache", no_wrap=True)
        table.add_column("id", overflow="fold", ratio=1)
        table.add_column("what", overflow="fold", ratio=1)
        table.add_column("frees", justify="right", no_wrap=True)
        for step in plan.steps:
            table.add_row(_SHORT[step.repo.cache], escape(step.repo.key), escape(_what(step)), human_bytes(step.size))
        console.print(table)
    _skipped(console, plan.skipped)
    if plan.steps:
        where = " and ".join(f"{r.path} ({_LABEL[r.name]})" for r in plan.roots
                             if any(s.repo.cache == r.name for s in plan.steps))
        console.print(f"{_count(plan.steps)}, {human_bytes(plan.size)} in all, from {escape(where)}.",
                      highlight=False, soft_wrap=True)
    if dry_run:
        console.print("Dry run: nothing was deleted.", highlight=False)


def clean_result(console: Console, result: CleanResult) -> None:
    if result.done:
        console.print(f"[bold green]✓[/] Freed {human_bytes(result.freed)}: {_count(result.done)}.", highlight=False)
    elif not result.failed:
        console.print("Nothing was deleted.", highlight=False)
    _skipped(console, result.skipped)
    for step in result.failed:
        console.print(f"[bold red]failed:[/] {escape(step.repo.key)} ({_what(step)}): {escape(step.note or '')}",
                      highlight=False, soft_wrap=True)


def _skipped(console: Console, steps: list[Step]) -> None:
    for step in steps:
        console.print(f"[yellow]skipped:[/] {escape(step.repo.key)} ({_what(step)}, {human_bytes(step.size)}): "
                      f"{escape(step.note or '')}", highlight=False, soft_wrap=True)


def _what(step: Step) -> str:
    if step.action == REPO:
        n = len(step.repo.revisions)
        return f"whole repo, {n} revision{'s' if n != 1 else ''}" if n else "whole repo"
    if step.action == REVISIONS:
        names = ", ".join(r.name[:10] if step.repo.cache == HF else r.name for r in step.revisions)
        n = len(step.revisions)
        return f"{n} revision{'s' if n != 1 else ''} no ref points to: {names}"
    n = len(step.partials)
    return f"{n} partial download{'s' if n != 1 else ''}"


def _count(steps: list[Step]) -> str:
    repos = sum(1 for s in steps if s.action == REPO)
    revisions = sum(len(s.revisions) for s in steps if s.action == REVISIONS)
    partials = sum(len(s.partials) for s in steps if s.action == PARTIALS)
    parts = []
    if repos:
        parts.append(f"{repos} repo{'s' if repos != 1 else ''}")
    if revisions:
        parts.append(f"{revisions} old revision{'s' if revisions != 1 else ''}")
    if partials:
        parts.append(f"{partials} partial download{'s' if partials != 1 else ''}")
    return ", ".join(parts)
