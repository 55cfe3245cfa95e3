"""The `hfget` command line. Thin: parse options, resolve settings, call one library function, render its result.

Heavy modules (requests, huggingface_hub, the transfer engine) are imported inside the commands so that
`hfget --help` starts fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import EXIT_INTERRUPTED, HfgetError

app = typer.Typer(
    name="hfget",
    help="Fetch Hugging Face models through whatever route works here, into the standard cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class RepoType(str, Enum):
    model = "model"
    dataset = "dataset"
    space = "space"


# --- shared options ---------------------------------------------------------------------------------------------

EnvFile = Annotated[
    Optional[Path], typer.Option("--env-file", help="Read settings from this .env file instead of the nearest one.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; errors only.")]
Endpoint = Annotated[
    Optional[str],
    typer.Option("--endpoint", "--mirror", help="Hub endpoint or mirror URL (overrides HF_ENDPOINT).", show_default=False),
]
Token = Annotated[
    Optional[str],
    typer.Option("--token", help="HF token (overrides HF_TOKEN). Sent only to huggingface.co unless allowed.", show_default=False),
]
Proxy = Annotated[
    Optional[str],
    typer.Option(
        "--proxy",
        help="Proxy for every source: http://, https://, socks5:// or socks5h:// (overrides HTTPS_PROXY etc.).",
        show_default=False,
    ),
]
CacheDir = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Hugging Face hub cache (overrides HF_HUB_CACHE / HF_HOME).")
]


def _version(value: bool) -> None:
    if value:
        print(f"hfget {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """Fetch Hugging Face models through whatever route works here, into the standard cache."""


# --- the error boundary -----------------------------------------------------------------------------------------


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def boundary(json_mode: bool = False, secrets: Callable[[], list[str]] = lambda: []):
    """Map every failure to a friendly message and an exit code; a traceback only with HFGET_DEBUG=1."""
    from .tokens import redact

    debug = os.environ.get("HFGET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        yield
    except typer.Exit:
        raise
    except HfgetError as err:
        err.message = redact(err.message, *secrets())
        err.hint = redact(err.hint, *secrets()) if err.hint else err.hint
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": err.to_dict()})
        from .render import error

        error(_stderr(), err)
        if debug:
            _print_traceback(secrets())
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        _stderr().print("[yellow]Interrupted.[/] Run the same command again to resume.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback for HFGET_DEBUG=1
        from .tokens import redact as _redact

        message = _redact(f"{type(exc).__name__}: {exc}", *secrets())
        if json_mode:
            from .render import emit_json

            emit_json({"ok": False, "error": {"kind": "internal", "message": message, "exit_code": 1}})
        _stderr().print(f"[bold red]Internal error:[/] {message}")
        _stderr().print("Run again with HFGET_DEBUG=1 for the traceback, and please report it.")
        if debug:
            _print_traceback(secrets())
        raise typer.Exit(1) from None


def _print_traceback(secrets: list[str]) -> None:
    from .tokens import redact

    print(redact(traceback.format_exc(), *secrets), file=sys.stderr)


def _progress_mode(quiet: bool, json_mode: bool) -> str:
    if quiet or json_mode:
        return "none"
    return "rich" if sys.stdout.isatty() and sys.stderr.isatty() else "plain"


# --- commands ---------------------------------------------------------------------------------------------------


@app.command()
def download(
    repo: Annotated[
        Optional[str], typer.Argument(help="Repo id, owner/name (default: DEFAULT_MODEL from the settings).", show_default=False)
    ] = None,
    files: Annotated[
        Optional[list[str]], typer.Argument(help="Only these files (paths in the repo).", show_default=False)
    ] = None,
    revision: Annotated[str, typer.Option("--revision", "-r", help="Branch, tag or commit.")] = "main",
    repo_type: Annotated[RepoType, typer.Option("--repo-type", help="Kind of repo.")] = RepoType.model,
    include: Annotated[
        Optional[list[str]], typer.Option("--include", help="Glob of files to take (repeatable).", show_default=False)
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Glob of files to skip (repeatable).", show_default=False)
    ] = None,
    cache_dir: CacheDir = None,
    local_dir: Annotated[
        Optional[Path], typer.Option("--local-dir", help="Write a plain folder here instead of the cache.")
    ] = None,
    endpoint: Endpoint = None,
    token: Token = None,
    allow_token_to_mirror: Annotated[
        bool, typer.Option("--allow-token-to-mirror", help="Also send the HF token to a non-official endpoint.")
    ] = False,
    allow_insecure_token: Annotated[
        bool, typer.Option("--allow-insecure-token", help="Allow sending the token over plain http to a remote host.")
    ] = False,
    source: Annotated[
        Optional[list[str]],
        typer.Option(
            "--source",
            help="auto, hub, mirror or modelscope; repeat to set the order (default: auto).",
            show_default=False,
        ),
    ] = None,
    proxy: Proxy = None,
    modelscope_endpoint: Annotated[
        Optional[str],
        typer.Option("--modelscope-endpoint", help="ModelScope URL (overrides MODELSCOPE_ENDPOINT).", show_default=False),
    ] = None,
    modelscope_id: Annotated[
        Optional[str],
        typer.Option("--modelscope-id", help="The repo's id on ModelScope, when it differs.", show_default=False),
    ] = None,
    max_workers: Annotated[
        Optional[int], typer.Option("--max-workers", help="Files downloaded at once (default 8).", show_default=False)
    ] = None,
    connections: Annotated[
        Optional[int],
        typer.Option(
            "--connections",
            help="Connections open at once, shared by the files in flight; a large file gets many (default 64).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be downloaded; write nothing.")] = False,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    env_file: EnvFile = None,
) -> None:
    """Download a repo (or some of its files) into the Hugging Face cache, verified and resumable."""
    flags = {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HUB_CACHE": str(cache_dir) if cache_dir else None,
        "HFGET_MAX_WORKERS": str(max_workers) if max_workers is not None else None,
        "HFGET_CONNECTIONS": str(connections) if connections is not None else None,
        "HFGET_ALLOW_TOKEN_TO_MIRROR": "1" if allow_token_to_mirror else None,
        "HFGET_ALLOW_INSECURE_TOKEN": "1" if allow_insecure_token else None,
        "HFGET_SOURCES": ",".join(source) if source else None,
        "HFGET_PROXY": proxy,
        "MODELSCOPE_ENDPOINT": modelscope_endpoint,
        "HFGET_MODELSCOPE_ID": modelscope_id,
    }
    settings_box: list = []
    with boundary(json_out, secrets=lambda: _secrets(settings_box, token, _password(proxy))):
        from . import config
        from .download import DownloadRequest
        from .download import download as run_download
        from .errors import UsageError
        from .progress import for_mode
        from .render import download_summary, dry_run_table, emit_json
        from .repo import parse_repo_id, validate_revision

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        repo_text = repo or settings.get("DEFAULT_MODEL")
        if not repo_text:
            raise UsageError(
                "No repo given, and DEFAULT_MODEL is not set.",
                "Pass a repo id (hfget download Qwen/Qwen3-4B) or set DEFAULT_MODEL=owner/name in .env.",
            )
        request = DownloadRequest(
            repo=parse_repo_id(repo_text, repo_type.value),
            revision=validate_revision(revision),
            files=tuple(files or ()),
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            local_dir=local_dir,
            dry_run=dry_run,
        )
        settings.max_workers, settings.connections  # validate before any network traffic
        stdout = Console(highlight=False, soft_wrap=True)
        mode = "none" if dry_run else _progress_mode(quiet, json_out)
        with for_mode(mode, _stderr(), sys.stderr) as progress:
            result = run_download(request, settings, on_event=progress)
        if json_out:
            emit_json({"ok": True, **result.to_dict()})
        elif dry_run:
            dry_run_table(stdout, result)
        elif not quiet:
            download_summary(stdout, result)


@app.command()
def diagnose(
    repo: Annotated[
        Optional[str],
        typer.Argument(help="Repo to ask every route for (default: DEFAULT_MODEL, else a small public model).", show_default=False),
    ] = None,
    endpoint: Endpoint = None,
    proxy: Proxy = None,
    token: Token = None,
    modelscope_endpoint: Annotated[
        Optional[str],
        typer.Option("--modelscope-endpoint", help="ModelScope URL (overrides MODELSCOPE_ENDPOINT).", show_default=False),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", help="Seconds each step may take (default 4; the whole run takes at most ~3x).", show_default=False),
    ] = None,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """Test every route to the hub here (DNS, TCP, TLS, API, speed; direct and via proxy) and say which to use."""
    flags = {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HFGET_PROXY": proxy,
        "MODELSCOPE_ENDPOINT": modelscope_endpoint,
        "HFGET_DIAGNOSE_TIMEOUT": str(timeout) if timeout is not None else None,
    }
    settings_box: list = []
    with boundary(json_out, secrets=lambda: _secrets(settings_box, token, _password(proxy))):
        from . import config
        from .diagnose import run

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        report = run(settings, repo)
        from .render_diagnose import diagnose as render

        _show(report, render, json_out, _secrets(settings_box, token, _password(proxy)))
    raise typer.Exit(report.exit_code)


@app.command("token-check")
def token_check(
    repo: Annotated[
        Optional[str], typer.Argument(help="Also check whether the token opens this repo (owner/name).", show_default=False)
    ] = None,
    repo_type: Annotated[RepoType, typer.Option("--repo-type", help="Kind of repo.")] = RepoType.model,
    token: Token = None,
    endpoint: Endpoint = None,
    proxy: Proxy = None,
    allow_token_to_mirror: Annotated[
        bool, typer.Option("--allow-token-to-mirror", help="Also validate the token against a non-official endpoint.")
    ] = False,
    allow_insecure_token: Annotated[
        bool, typer.Option("--allow-insecure-token", help="Allow sending the token over plain http to a remote host.")
    ] = False,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """Which HF / ModelScope token is in effect, which are shadowed, are they valid, and do they open REPO."""
    flags = {
        "HF_TOKEN": token,
        "HF_ENDPOINT": endpoint,
        "HFGET_PROXY": proxy,
        "HFGET_ALLOW_TOKEN_TO_MIRROR": "1" if allow_token_to_mirror else None,
        "HFGET_ALLOW_INSECURE_TOKEN": "1" if allow_insecure_token else None,
    }
    settings_box: list = []
    with boundary(json_out, secrets=lambda: _secrets(settings_box, token, _password(proxy))):
        from . import config
        from .repo import parse_repo_id
        from .tokencheck import inspect

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        repo_ref = parse_repo_id(repo, repo_type.value) if repo else None
        report = inspect(settings, repo_ref)
        from .render_diagnose import token_check as render

        _show(report, render, json_out, _secrets(settings_box, token, _password(proxy)))
    raise typer.Exit(0 if report.ok else 1)


def _show(report, render: Callable, json_out: bool, secrets: list[str]) -> None:
    """Print a report (JSON or Rich), with every known secret masked once more on the way out.

    Reports hold masked values only; this catches what a server might echo back (an error message quoting a
    header, say), so no output path can show a token or a proxy password in full.
    """
    import io
    import json

    from .tokens import redact

    if json_out:
        text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    else:
        terminal = Console()
        buffer = io.StringIO()
        render(Console(file=buffer, highlight=False, soft_wrap=False, width=terminal.width,
                       force_terminal=terminal.is_terminal, color_system=terminal.color_system), report)
        text = buffer.getvalue()
    sys.stdout.write(redact(text, *secrets))
    sys.stdout.flush()


# --- cache list / cache clean ----------------------------------------------------------------------------------

cache_app = typer.Typer(
    help="See what the Hugging Face and ModelScope caches hold, and delete what you choose (after a preview).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


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
        from . import cache, config
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
        from . import cache, config
        from .errors import EXIT_FAILURE
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
            _stderr().print("Nothing was deleted.")
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
    from .units import human_bytes

    return human_bytes(n)


def _secrets(settings_box: list, *explicit: str | None) -> list[str]:
    """Every secret a message could contain: tokens, and the passwords inside proxy URLs (not the URLs)."""
    found = [s for s in explicit if s]
    for settings in settings_box:
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN"):
            if settings.get(key):
                found.append(settings.get(key))
        if settings.token.is_set:
            found.append(settings.token.value)
        for key in ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            password = _password(settings.get(key))
            if password:
                found.append(password)
    return found


def _password(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password if url and "://" in url else None
    except ValueError:
        return None


def main() -> None:
    app()
