"""`hfget bundle export | import | ls`: cached snapshots carried to machines with no route to any hub."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_common import (
    CacheDir,
    Endpoint,
    EnvFile,
    JsonOut,
    Proxy,
    Quiet,
    RepoType,
    Token,
    boundary,
    known_secrets,
    progress_mode,
    show_result,
    stderr_console,
)

bundle_app = typer.Typer(
    help="Carry cached models to machines with no route to any hub: one tar file, every byte verified on import.",
    no_args_is_help=True,
)

BundleFile = Annotated[Path, typer.Argument(help="The bundle (.tar) file.", show_default=False)]


@bundle_app.command("export")
def bundle_export(
    specs: Annotated[
        list[str],
        typer.Argument(help="Repos to bundle: owner/name or owner/name@REVISION (branch, tag or commit; default "
                            "main). Repeat for several revisions or repos.", show_default=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The bundle file to write (.tar).", show_default=False)],
    repo_type: Annotated[RepoType, typer.Option("--repo-type", help="Kind of the repos.")] = RepoType.model,
    include: Annotated[
        Optional[list[str]], typer.Option("--include", help="Glob of files to take (repeatable).", show_default=False)
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Glob of files to skip (repeatable).", show_default=False)
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Download what the cache lacks first (through the usual routes).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
    cache_dir: CacheDir = None,
    endpoint: Endpoint = None,
    token: Token = None,
    proxy: Proxy = None,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    env_file: EnvFile = None,
) -> None:
    """Write cached revisions (blobs once, with a manifest of every file's hash) into one tar file."""
    flags = {
        "HF_HUB_CACHE": str(cache_dir) if cache_dir else None,
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HFGET_PROXY": proxy,
    }
    settings_box: list = []
    with boundary(json_out, secrets=lambda: known_secrets(settings_box, token, urls=(proxy, endpoint)), quiet=quiet):
        from .. import config
        from ..bundle import ExportRequest, export_bundle
        from .progress import for_mode
        from .render_bundle import EXPORTING, export_result

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        request = ExportRequest(specs=tuple(specs), output=output, repo_type=repo_type.value,
                                include=tuple(include or ()), exclude=tuple(exclude or ()), download=download,
                                force=force)
        with for_mode(progress_mode(quiet, json_out), stderr_console(), sys.stderr, EXPORTING) as progress:
            result = export_bundle(request, settings, on_event=progress)
        show_result(result, export_result, json_out=json_out, quiet=quiet)


@bundle_app.command("import")
def bundle_import(
    bundle: BundleFile,
    cache_dir: CacheDir = None,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    env_file: EnvFile = None,
) -> None:
    """Verify every file of a bundle and add it to the cache (idempotent; run again to resume)."""
    with boundary(json_out):
        from .. import config
        from ..bundle import import_bundle
        from .progress import for_mode
        from .render_bundle import IMPORTING, import_result

        settings = config.resolve({"HF_HUB_CACHE": str(cache_dir) if cache_dir else None}, env_file=env_file)
        with for_mode(progress_mode(quiet, json_out), stderr_console(), sys.stderr, IMPORTING) as progress:
            result = import_bundle(bundle, settings, on_event=progress)
        show_result(result, import_result, json_out=json_out, quiet=quiet)


@bundle_app.command("ls")
def bundle_ls(
    bundle: BundleFile,
    cache_dir: CacheDir = None,
    json_out: JsonOut = False,
    env_file: EnvFile = None,
) -> None:
    """What a bundle holds, whether it is whole, and what of it the local cache already has."""
    with boundary(json_out):
        from .. import config
        from ..bundle import list_bundle
        from ..errors import EXIT_FAILURE
        from .render_bundle import listing

        settings = config.resolve({"HF_HUB_CACHE": str(cache_dir) if cache_dir else None}, env_file=env_file)
        found = list_bundle(bundle, settings)
        show_result(found, listing, json_out=json_out, ok=found.problem is None)
    if found.problem:
        raise typer.Exit(EXIT_FAILURE)
