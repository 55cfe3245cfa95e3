"""`hfget cache verify [REPO...] [--repair]`: re-hash cached files; re-fetch exactly the bad ones."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .cli_cache import ModelScopeCache, Only, _cache_flags, _table_console
from .cli_common import (
    CacheDir,
    Endpoint,
    EnvFile,
    JsonOut,
    ModelScopeEndpoint,
    Proxy,
    Quiet,
    Token,
    boundary,
    known_secrets,
    progress_mode,
    stderr_console,
)


def verify(
    patterns: Annotated[
        Optional[list[str]], typer.Argument(help="Repo ids or globs to check (default: every cached repo).",
                                            show_default=False)
    ] = None,
    revision: Annotated[
        Optional[str], typer.Option("--revision", "-r", help="Only this revision: a ref, a commit (prefix) or a "
                                    "ModelScope revision folder.", show_default=False)
    ] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Re-fetch exactly the bad files through the source chain.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Ask no source: check against what the cache recorded only.")
    ] = False,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Files hashed at once (default: one per core, up to 8).",
                                    show_default=False, min=1, max=64)
    ] = None,
    only: Only = None,
    cache_dir: CacheDir = None,
    modelscope_cache: ModelScopeCache = None,
    endpoint: Endpoint = None,
    proxy: Proxy = None,
    token: Token = None,
    modelscope_endpoint: ModelScopeEndpoint = None,
    json_out: JsonOut = False,
    quiet: Quiet = False,
    env_file: EnvFile = None,
) -> None:
    """Re-hash cached files and name the bad ones; --repair re-fetches exactly those.

    sha256 for LFS files, git blob sha1 for the rest, against the listing recorded in the cache (or a source's,
    online). Exit 1 when a file is bad or missing.
    """
    flags = {**_cache_flags(cache_dir, modelscope_cache), "HF_ENDPOINT": endpoint, "HFGET_PROXY": proxy,
             "HF_TOKEN": token, "MODELSCOPE_ENDPOINT": modelscope_endpoint}
    settings_box: list = []
    secrets = lambda: known_secrets(settings_box, token, urls=(proxy, endpoint, modelscope_endpoint))  # noqa: E731
    with boundary(json_out, secrets=secrets):
        from .. import config
        from ..flows.verify import VerifyRequest
        from .render import emit_json
        from .render_verify import verify_report

        settings = config.resolve(flags, env_file=env_file)
        settings_box.append(settings)
        request = VerifyRequest(tuple(patterns or ()), revision, only.value if only else None, online=not offline,
                                repair=repair, workers=workers)
        report = _run(settings, request, progress_mode(quiet, json_out))
        if json_out:
            emit_json(report.to_dict())
        elif not quiet or report.bad:
            verify_report(_table_console(), report)
    failed = not report.ok if report.repair is None else not report.repair.ok
    raise typer.Exit(1 if failed else 0)


def _run(settings, request, mode: str):
    """Hash (and repair) with the progress display of `mode`."""
    from ..flows.verify import run
    from .render_verify import HashProgress, LateProgress

    if request.repair:
        from ..engine.transfer import limit_malloc_arenas

        limit_malloc_arenas()  # this process is ours, as for hfget download
    with HashProgress(mode, stderr_console(), sys.stderr) as on_hash, \
            LateProgress(mode, stderr_console(), sys.stderr) as on_transfer:
        return run(settings, request, on_hash=on_hash, on_transfer=on_transfer)
