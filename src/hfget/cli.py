"""The `hfget` command line. Thin: parse options, resolve settings, call one library function, render its result.

Heavy modules (requests, huggingface_hub, the transfer engine) are imported inside the commands so that
`hfget --help` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .ui.cli_bundle import bundle_app
from .ui.cli_cache import cache_app
from .ui.cli_common import (
    CacheDir,
    Endpoint,
    EnvFile,
    JsonOut,
    JsonUsageGroup,
    ModelScopeEndpoint,
    Proxy,
    Quiet,
    RepoType,
    Token,
    boundary,
    known_secrets,
    progress_mode,
    stderr_console,
)
from .ui.cli_env import Shell, verdict_shells
from .ui.cli_env import env as env_command
from .ui.cli_verify import verify as verify_command

app = typer.Typer(
    name="hfget",
    help="Fetch Hugging Face models through whatever route works here, into the standard cache.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=JsonUsageGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cache_app, name="cache")
app.add_typer(bundle_app, name="bundle")


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


# --- commands ---------------------------------------------------------------------------------------------------


# --- hfget download's options (the shared ones are in ui/cli_common.py) --------------------------------------------

_RepoArg = Annotated[
    Optional[str],
    typer.Argument(help="Repo id, owner/name, or the URL of its page (huggingface.co, a mirror, modelscope.cn; "
                   "hf://) (default: DEFAULT_MODEL from the settings).", show_default=False),
]
_FilesArg = Annotated[
    Optional[list[str]], typer.Argument(help="Only these files (paths in the repo).", show_default=False)
]
_Revision = Annotated[
    Optional[str], typer.Option("--revision", "-r", help="Branch, tag or commit (default: main).", show_default=False)
]
_RepoTypeOpt = Annotated[
    Optional[RepoType], typer.Option("--repo-type", help="Kind of repo (default: model).", show_default=False)
]
_Include = Annotated[
    Optional[list[str]], typer.Option("--include", help="Glob of files to take (repeatable).", show_default=False)
]
_Exclude = Annotated[
    Optional[list[str]], typer.Option("--exclude", help="Glob of files to skip (repeatable).", show_default=False)
]
_LocalDir = Annotated[
    Optional[Path], typer.Option("--local-dir", help="Write a plain folder here instead of the cache.")
]
_AllowTokenToMirror = Annotated[
    bool, typer.Option("--allow-token-to-mirror", help="Also send the HF token to a non-official endpoint.")
]
_AllowInsecureToken = Annotated[
    bool, typer.Option("--allow-insecure-token", help="Allow sending the token over plain http to a remote host.")
]
_Sources = Annotated[
    Optional[list[str]],
    typer.Option("--source", help="auto, hub, mirror or modelscope; repeat to set the order (default: auto).",
                 show_default=False),
]
_ModelScopeId = Annotated[
    Optional[str],
    typer.Option("--modelscope-id", help="The repo's id on ModelScope, when it differs.", show_default=False),
]
_MaxWorkers = Annotated[
    Optional[int],
    typer.Option("--max-workers", show_default=False,
                 help="Files downloaded at once (default: sized by the link, up to --connections; many on a distant "
                      "server)."),
]
_Connections = Annotated[
    Optional[int],
    typer.Option("--connections", show_default=False,
                 help="Connections open at once, shared by the files in flight; a large file gets many (default 64)."),
]
_MaxPerHost = Annotated[
    Optional[int],
    typer.Option("--max-per-host", show_default=False,
                 help="Connections open to one host at once, never more (default 64; lower it for a CDN that "
                      "throttles)."),
]
_DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be downloaded; write nothing.")]


@app.command()
def download(
    repo: _RepoArg = None,
    files: _FilesArg = None,
    revision: _Revision = None,
    repo_type: _RepoTypeOpt = None,
    include: _Include = None,
    exclude: _Exclude = None,
    cache_dir: CacheDir = None,
    local_dir: _LocalDir = None,
    endpoint: Endpoint = None,
    token: Token = None,
    allow_token_to_mirror: _AllowTokenToMirror = False,
    allow_insecure_token: _AllowInsecureToken = False,
    source: _Sources = None,
    proxy: Proxy = None,
    modelscope_endpoint: ModelScopeEndpoint = None,
    modelscope_id: _ModelScopeId = None,
    max_workers: _MaxWorkers = None,
    connections: _Connections = None,
    max_per_host: _MaxPerHost = None,
    dry_run: _DryRun = False,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    env_file: EnvFile = None,
) -> None:
    """Download a repo (or some of its files) into the Hugging Face cache, verified and resumable."""
    number = lambda value: str(value) if value is not None else None  # noqa: E731
    flags = {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HUB_CACHE": str(cache_dir) if cache_dir else None,
        "HFGET_MAX_WORKERS": number(max_workers),
        "HFGET_CONNECTIONS": number(connections),
        "HFGET_MAX_PER_HOST": number(max_per_host),
        "HFGET_ALLOW_TOKEN_TO_MIRROR": "1" if allow_token_to_mirror else None,
        "HFGET_ALLOW_INSECURE_TOKEN": "1" if allow_insecure_token else None,
        "HFGET_SOURCES": ",".join(source) if source else None,
        "HFGET_PROXY": proxy,
        "MODELSCOPE_ENDPOINT": modelscope_endpoint,
        "HFGET_MODELSCOPE_ID": modelscope_id,
    }
    settings_box: list = []
    secrets = lambda: known_secrets(settings_box, token, urls=(proxy, endpoint, repo))  # noqa: E731
    with boundary(json_out, secrets=secrets, quiet=quiet):
        from .download import download as run_download
        from .flows.appenv import Selection
        from .ui.progress import for_mode

        selection = Selection(tuple(files or ()), tuple(include or ()), tuple(exclude or ()))
        request, settings = _download_request(repo, repo_type, revision, selection, local_dir, dry_run, flags,
                                              env_file)
        settings_box.append(settings)
        from .engine.transfer import limit_malloc_arenas

        limit_malloc_arenas()  # this process is ours (the Python API leaves the allocator to its application)
        mode = "none" if dry_run else progress_mode(quiet, json_out)
        with for_mode(mode, stderr_console(), sys.stderr) as progress:
            result = run_download(request, settings, on_event=progress)
        _show_download(result, settings, selection, local_dir is not None, json_out=json_out, quiet=quiet)


def _download_request(repo, repo_type, revision, selection, local_dir, dry_run, flags, env_file):
    """The request and the settings for it: the repo argument in any form (or DEFAULT_MODEL), validated before any
    network traffic."""
    from . import config
    from .download import request_from, spec_settings
    from .errors import UsageError
    from .repo import parse_repo_spec

    repo_text = repo or config.resolve(flags, env_file=env_file).get("DEFAULT_MODEL")
    if not repo_text:
        raise UsageError(
            "No repo given, and DEFAULT_MODEL is not set.",
            "Pass a repo id (hfget download Qwen/Qwen3-4B) or set DEFAULT_MODEL=owner/name in .env.",
        )
    spec = parse_repo_spec(repo_text, repo_type.value if repo_type else None)
    settings = config.resolve(spec_settings(spec, flags), env_file=env_file)
    request = request_from(spec, revision, files=selection.files, include=selection.include,
                           exclude=selection.exclude, local_dir=local_dir, dry_run=dry_run)
    settings.max_workers, settings.connections, settings.max_per_host  # noqa: B018 - validated here, not mid-download
    return request, settings


def _show_download(result, settings, selection, local_dir: bool, *, json_out: bool, quiet: bool) -> None:
    """The summary (or the dry run's table, or the JSON), ending with how to load what was fetched."""
    from .flows.appenv import load_instructions
    from .ui.render import download_summary, dry_run_table, emit_json, load_line

    load = None if result.dry_run else load_instructions(result, settings, local_dir, selection)
    stdout = Console(highlight=False, soft_wrap=True)
    if json_out:
        emit_json({"ok": True, **result.to_dict(), "load": load.to_dict() if load else None})
    elif result.dry_run:
        dry_run_table(stdout, result)
    elif not quiet:
        download_summary(stdout, result)
        load_line(stdout, load)


@app.command()
def diagnose(
    repo: Annotated[
        Optional[str],
        typer.Argument(help="Repo to ask every route for (default: DEFAULT_MODEL, else a small public model).", show_default=False),
    ] = None,
    endpoint: Endpoint = None,
    proxy: Proxy = None,
    token: Token = None,
    modelscope_endpoint: ModelScopeEndpoint = None,
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", help="Seconds each step may take (default 4; the whole run takes at most ~3x).", show_default=False),
    ] = None,
    shell: Annotated[
        Optional[list[Shell]],
        typer.Option("--shell", show_default=False,
                     help="Also write the verdict's settings for this shell (repeatable; on Windows: powershell, cmd)."),
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
    secrets = lambda: known_secrets(settings_box, token, urls=(proxy, endpoint, modelscope_endpoint, repo))  # noqa: E731
    with boundary(json_out, secrets=secrets):
        from . import config
        from .diagnose import run
        from .repo import parse_repo_spec

        # A broken .env is one of the findings, not a reason to stop: strict=False keeps its problems as data.
        settings = config.resolve(flags, env_file=env_file, strict=False)
        settings_box.append(settings)
        report = run(settings, str(parse_repo_spec(repo).repo) if repo else None, verdict_shells(shell))
        from .ui.render_diagnose import diagnose as render

        _show(report, render, json_out, secrets())
    raise typer.Exit(report.exit_code)


@app.command("token-check")
def token_check(
    repo: Annotated[
        Optional[str], typer.Argument(help="Also check whether the token opens this repo (owner/name).", show_default=False)
    ] = None,
    repo_type: Annotated[
        Optional[RepoType], typer.Option("--repo-type", help="Kind of repo (default: model).", show_default=False)
    ] = None,
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
    secrets = lambda: known_secrets(settings_box, token, urls=(proxy, endpoint, repo))  # noqa: E731
    with boundary(json_out, secrets=secrets):
        from . import config
        from .doctor.tokencheck import inspect
        from .repo import parse_repo_spec

        spec = parse_repo_spec(repo, repo_type.value if repo_type else None) if repo else None
        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        report = inspect(settings, spec.repo if spec else None)
        if spec is not None and spec.note:
            report.notes.insert(0, spec.note)
        from .ui.render_diagnose import token_check as render

        _show(report, render, json_out, secrets())
    raise typer.Exit(0 if report.ok else 1)


def _show(report, render: Callable, json_out: bool, secrets: list[str]) -> None:
    """Print a report (JSON or Rich), with every known secret masked once more on the way out.

    Reports hold masked values only; this catches what a server might echo back (an error message quoting a
    header, say), so no output path can show a token or a proxy password in full.
    """
    import io
    import json

    from .redact import redact

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


app.command("env")(env_command)
cache_app.command("verify")(verify_command)


def main() -> None:
    app()
