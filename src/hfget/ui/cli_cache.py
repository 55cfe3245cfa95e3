"""`hfget cache list` and `hfget cache clean`: one view over the Hugging Face and ModelScope caches."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .cli_common import CacheDir, EnvFile, JsonOut, boundary, stderr_console

cache_app = typer.Typer(
    help="See what the Hugging Face and ModelScope caches hold, check it, and delete what you choose (after a preview).",
    no_args_is_help=True,
)


class CacheName(str, Enum):
    huggingface = "huggingface"
    modelscope = "modelscope"


ModelScopeCache = Annotated[
    Optional[Path], typer.Option("--modelscope-cache", help="ModelScope cache (overrides MODELSCOPE_CACHE).")
]
Only = Annotated[Optional[CacheName], typer.Option("--only", help="Work on one cache only.", show_default=False)]
Filters = Annotated[
    Optional[list[str]],
    typer.Option("--filter", help="Only repos matching KEY OP VALUE, e.g. 'size>1GB', 'accessed>30d' (repeatable).",
                 show_default=False),
]


def _cache_flags(cache_dir: Optional[Path], modelscope_cache: Optional[Path]) -> dict[str, Optional[str]]:
    return {
        "HF_HUB_CACHE": str(cache_dir) if cache_dir else None,
        "MODELSCOPE_CACHE": str(modelscope_cache) if modelscope_cache else None,
    }


@cache_app.command("list")
def cache_list(
    patterns: Annotated[
        Optional[list[str]], typer.Argument(help="Only repos with these ids or globs ('Qwen/*').", show_default=False)
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="size, name, accessed or modified; add :asc or :desc.")
    ] = "name",
    filters: Filters = None,
    revisions: Annotated[bool, typer.Option("--revisions", help="A row per cached revision too.")] = False,
    only: Only = None,
    cache_dir: CacheDir = None,
    modelscope_cache: ModelScopeCache = None,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """List every cached repo of both caches: size on disk, revisions, last use, partial downloads, source."""
    with boundary(json_out):
        from .. import cache, config
        from .render import emit_json
        from .render_cache import cache_list as render_list

        settings = config.resolve(_cache_flags(cache_dir, modelscope_cache), env_file=env_file)
        found = cache.scan(settings, only=only.value if only else None, patterns=tuple(patterns or ()),
                           filters=tuple(filters or ()), sort=sort)
        if json_out:
            emit_json({"ok": True, **found.to_dict()})
        else:
            render_list(_table_console(), found, show_revisions=revisions)


@cache_app.command("clean")
def cache_clean(
    targets: Annotated[
        Optional[list[str]], typer.Argument(help="Repo ids or globs to delete ('Qwen/*').", show_default=False)
    ] = None,
    older_than: Annotated[
        Optional[str], typer.Option("--older-than", help="Only repos not used for this long: 30d, 12h, 2w.",
                                    show_default=False)
    ] = None,
    keep_latest: Annotated[
        bool, typer.Option("--keep-latest", help="Only drop revisions no branch or tag points to any more.")
    ] = False,
    incomplete: Annotated[
        bool, typer.Option("--incomplete", help="Only drop partial downloads and their state files.")
    ] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every cached repo and partial download.")] = False,
    filters: Filters = None,
    only: Only = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (the plan is still shown).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; delete nothing.")] = False,
    cache_dir: CacheDir = None,
    modelscope_cache: ModelScopeCache = None,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """Delete cached repos, old revisions or partial downloads: a plan first, then your confirmation."""
    with boundary(json_out):
        from .. import cache, config
        from ..errors import EXIT_FAILURE
        from .render import emit_json
        from .render_cache import clean_plan, clean_result

        settings = config.resolve(_cache_flags(cache_dir, modelscope_cache), env_file=env_file)
        request = cache.CleanRequest(
            targets=tuple(targets or ()), older_than=older_than, keep_latest=keep_latest, incomplete=incomplete,
            all=all_, filters=tuple(filters or ()), only=only.value if only else None,
        )
        plan = cache.plan_clean(settings, request)
        stdout = _table_console()
        if not json_out:
            clean_plan(stdout, plan, dry_run)
        if dry_run or not plan.steps:
            if json_out:
                emit_json({"ok": True, "dry_run": dry_run, "plan": plan.to_dict(), "result": None})
            return
        if not yes and not _confirm(f"Delete these ({_size(plan.size)})?"):
            if json_out:
                emit_json({"ok": False, "declined": True, "plan": plan.to_dict(), "result": None})
            stderr_console().print("Nothing was deleted.")
            raise typer.Exit(EXIT_FAILURE)
        result = plan.execute()
        if json_out:
            emit_json({"ok": not result.failed, "dry_run": False, "plan": plan.to_dict(), "result": result.to_dict()})
        else:
            clean_result(stdout, result)
        if result.failed:
            raise typer.Exit(EXIT_FAILURE)


def _table_console() -> Console:
    """Tables fit the terminal; into a pipe or a log they keep one line per row (grep-able), up to 200 columns."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=200)
    return console


def _confirm(question: str) -> bool:
    """Ask on stderr (stdout may be a pipe or JSON). No answer (end of input) is a no."""
    try:
        answer = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        answer = False
    if not sys.stdin.isatty():
        print(file=sys.stderr)  # the answer came from a pipe and was not echoed: end the prompt's line
    return answer


def _size(n: int) -> str:
    from ..units import human_bytes

    return human_bytes(n)
