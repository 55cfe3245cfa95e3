"""The Python API: `snapshot_download` and `hf_hub_download`, with huggingface_hub's meaning for every argument they
share, so that swapping the import is the whole migration:

    from hfget import snapshot_download      # was: from huggingface_hub import snapshot_download
    path = snapshot_download("Qwen/Qwen3-4B", allow_patterns=["*.json", "*.safetensors"])

Behind them is what `hfget download` does: the source chain (hub, mirror, proxy, ModelScope), hash verification,
resume, the standard cache layout. Settings resolve as for the command line: the arguments here act as its flags
(argument > environment > `.env` > default), read anew at every call. Failures raise `hfget.errors` classes, each
with a `.hint` (the fix). Progress goes to stderr through the command line's renderer when `progress=True`;
nothing is printed otherwise.

Every call leaves the process as it found it: no setting, connection pool, thread or resolved path outlives it, the
umask is read when a file is written, and the allocator tuning the `hfget` command applies to its own process is
not applied here (the application owns its allocator).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings
    from .download import DownloadResult

PathLike = str | os.PathLike


def snapshot_download(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str | None = None,
    cache_dir: PathLike | None = None,
    local_dir: PathLike | None = None,
    allow_patterns: str | Sequence[str] | None = None,
    ignore_patterns: str | Sequence[str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    proxy: str | None = None,
    source: str | Sequence[str] | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    local_files_only: bool = False,
    etag_timeout: float | None = None,
    library_name: str | None = None,
    library_version: str | None = None,
    user_agent: str | dict | None = None,
) -> str:
    """Download a repo (or the files the patterns select) and return the folder holding them: the cache's
    `snapshots/<commit>` folder, or `local_dir` when given.

    Arguments shared with `huggingface_hub.snapshot_download` mean what they mean there: `revision` (branch, tag or
    commit; default `main`), `repo_type` (`model`, `dataset`, `space`), `cache_dir` (the hub cache, as
    `HF_HUB_CACHE`), `local_dir`, `allow_patterns` / `ignore_patterns` (its glob rules), `endpoint` (as
    `HF_ENDPOINT`: your mirror, tried first), `token` (a token; `True` or None: the one configured; `False`: none),
    `max_workers` (files at once; None: sized by the link), `local_files_only` (no network: the cached snapshot or an error; also what
    `HF_HUB_OFFLINE=1` means, as in huggingface_hub), `etag_timeout` (seconds to connect). `library_name`,
    `library_version` and `user_agent` are accepted and ignored: hfget sends no telemetry.

    hfget's own: `proxy` (http, https, socks5 or socks5h URL, as `--proxy`), `source` (`auto`, `hub`, `mirror`,
    `modelscope`, or a list setting the order, as `--source`), `progress` (a progress display on stderr).

    Raises `hfget.errors.HfgetError` subclasses (`UsageError` for a malformed repo id, `RepoNotFoundError`,
    `GatedRepoError`, `NetworkError`, ...); each has `.message` and `.hint`. Ctrl-C raises KeyboardInterrupt, with
    the partial files kept for the next call to resume.
    """
    call = _Call(repo_id, revision, repo_type, cache_dir, local_dir, endpoint, token, proxy, source, max_workers,
                 etag_timeout)
    return call.run(_patterns(allow_patterns), _patterns(ignore_patterns), (), progress, local_files_only)


def hf_hub_download(
    repo_id: str,
    filename: str,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    repo_type: str | None = None,
    cache_dir: PathLike | None = None,
    local_dir: PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    proxy: str | None = None,
    source: str | Sequence[str] | None = None,
    progress: bool = True,
    local_files_only: bool = False,
    etag_timeout: float | None = None,
    library_name: str | None = None,
    library_version: str | None = None,
    user_agent: str | dict | None = None,
) -> str:
    """Download one file and return its path (in the cache's snapshot folder, or under `local_dir`).

    The arguments mean what they mean for `huggingface_hub.hf_hub_download` (`subfolder` is joined before
    `filename`) and for `snapshot_download` above. A file the repo does not have raises `EntryNotFoundError`,
    with the closest names in its message.
    """
    path = "/".join(p.strip("/") for p in (subfolder or "", filename) if p and p.strip("/"))
    call = _Call(repo_id, revision, repo_type, cache_dir, local_dir, endpoint, token, proxy, source, None,
                 etag_timeout)
    folder = call.run((), (), (path,), progress, local_files_only)
    return str(Path(folder).joinpath(*path.split("/")))


# --- one call -----------------------------------------------------------------------------------------------------


class _Call:
    """The settings of one call, resolved like the CLI's flags, and the work done with them."""

    def __init__(self, repo_id, revision, repo_type, cache_dir, local_dir, endpoint, token, proxy, source,
                 max_workers, etag_timeout) -> None:
        self.repo_id, self.revision, self.repo_type = repo_id, revision or "main", repo_type or "model"
        self.local_dir = Path(local_dir).expanduser() if local_dir is not None else None
        self.token, self.proxy = token, proxy
        sources = [source] if isinstance(source, str) else list(source or ())
        self.flags: dict[str, str | None] = {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_CACHE": os.fspath(cache_dir) if cache_dir is not None else None,
            "HFGET_PROXY": proxy,
            "HFGET_SOURCES": ",".join(sources) if sources else None,
            "HFGET_MAX_WORKERS": str(max_workers) if max_workers is not None else None,
            "HFGET_CONNECT_TIMEOUT": str(etag_timeout) if etag_timeout is not None else None,
        }
        if isinstance(token, str):
            self.flags["HF_TOKEN"] = token
        elif token is False:  # huggingface_hub's "send no token": hide every place a token could come from
            self.flags.update(HF_TOKEN="", HUGGING_FACE_HUB_TOKEN="", HF_TOKEN_PATH=os.devnull)
        self.settings: Settings | None = None

    def run(self, include: tuple[str, ...], exclude: tuple[str, ...], files: tuple[str, ...], progress: bool,
            local_only: bool) -> str:
        from .errors import HfgetError, Interrupted

        try:
            return self._run(include, exclude, files, progress, local_only)
        except Interrupted as error:
            raise KeyboardInterrupt(error.message) from None
        except HfgetError as error:
            self._mask(error)
            raise

    def _run(self, include, exclude, files, progress: bool, local_only: bool) -> str:
        from . import config
        from .download import DownloadRequest, download
        from .repo import parse_repo_id, validate_revision

        self.settings = settings = config.resolve(self.flags)
        request = DownloadRequest(
            repo=parse_repo_id(self.repo_id, self.repo_type),
            revision=validate_revision(self.revision),
            files=files,
            include=include,
            exclude=exclude,
            local_dir=self.local_dir,
        )
        if local_only or settings.offline:
            return self._cached(request, settings)
        settings.max_workers, settings.connections, settings.max_per_host  # bad values fail before any traffic
        with _progress(progress) as on_event:
            result: DownloadResult = download(request, settings, on_event=on_event)
        return result.location

    def _cached(self, request, settings: Settings) -> str:
        """Without the network (`local_files_only`, `HF_HUB_OFFLINE=1`): the folder, if it has what was asked."""
        from .errors import NotCachedError
        from .repo import RemoteFile, select_files
        from .store.cached import find_snapshot
        from .store.hub_cache import HubCache

        why = "local_files_only=True" if not settings.offline else f"HF_HUB_OFFLINE=1 ({settings['HF_HUB_OFFLINE'].describe()})"
        if request.local_dir is not None:
            missing = [f for f in request.files if not request.local_dir.joinpath(*f.split("/")).is_file()]
            if request.local_dir.is_dir() and not missing:
                return str(request.local_dir.absolute())
            raise NotCachedError(f"{request.local_dir} does not hold {missing[0] if missing else request.repo}, "
                                 f"and {why} forbids downloading it.", _online_hint(settings))
        cache = HubCache(settings.hub_cache.value)
        snapshot = find_snapshot(cache, request.repo, request.revision)
        if snapshot is None:
            raise NotCachedError(f"{request.repo} @ {request.revision} is not in the cache at {cache.root}, and {why} "
                                 "forbids downloading it.", _online_hint(settings))
        # Without a listing, what the snapshot holds is all that is known of the commit (as for huggingface_hub).
        listed = snapshot.listing or {p: RemoteFile(p, 0, None) for p in snapshot.entries}
        absent = [name for name in request.files if name not in listed]
        if absent and snapshot.listing is None:
            raise NotCachedError(f"The cached snapshot of {request.repo} @ {request.revision} has no {absent[0]!r}, "
                                 f"and {why} forbids downloading it.", _online_hint(settings))
        wanted = select_files(tuple(listed.values()), names=request.files, include=request.include,
                              exclude=request.exclude, repo=request.repo, commit=snapshot.commit)
        missing = snapshot.missing([f.path for f in wanted])
        if missing:
            raise NotCachedError(
                f"The cached snapshot of {request.repo} @ {request.revision} (commit {snapshot.commit[:10]}) lacks "
                f"{len(missing)} file(s) asked for, e.g. {missing[0]!r}, and {why} forbids downloading them.",
                _online_hint(settings))
        return str(snapshot.path)

    def _mask(self, error) -> None:
        """No token or proxy password in what the application logs."""
        from .redact import redact
        from .ui.cli_common import known_secrets

        secrets = known_secrets([self.settings] if self.settings else [],
                                self.token if isinstance(self.token, str) else None,
                                urls=(self.proxy, self.flags.get("HF_ENDPOINT")))
        error.message = redact(error.message, *secrets)
        error.hint = redact(error.hint, *secrets) if error.hint else error.hint


def _patterns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _online_hint(settings: Settings) -> str:
    if settings.offline:
        return "Unset HF_HUB_OFFLINE (or set it to 0) for this call, or run hfget download first."
    return "Call it without local_files_only=True (or run hfget download first)."


def _progress(enabled: bool):
    """The CLI's renderer on stderr (a live display on a terminal, lines otherwise), or nothing.
    `HF_HUB_DISABLE_PROGRESS_BARS=1` turns it off, as it does huggingface_hub's bars."""
    from .ui.progress import NoProgress, for_mode

    disabled = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    if not enabled or disabled:
        return NoProgress()
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    return for_mode("rich" if console.is_terminal else "plain", console, sys.stderr)
