"""`hfget download`: resolve a snapshot, decide what must move, move it, and land it in the cache or a folder.

Returns a `DownloadResult` (data, never output); the CLI renders it. Order of work, so that bad input and
unreachable servers leave the cache exactly as it was: validate, check the target is writable, resolve metadata
(network), check free space, and only then create folders and move bytes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import Settings
from .errors import HfgetError, UsageError
from .http import HttpClient
from .hub_cache import HubCache
from .repo import RemoteFile, RepoRef, Snapshot, select_files
from .sources import HubSource, Source
from .targets import CacheTarget, LocalDirTarget, Target
from .tokens import decide
from .transfer import EventSink, FileJob, Transfer, TransferReport


@dataclass(frozen=True)
class DownloadRequest:
    repo: RepoRef
    revision: str = "main"
    files: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    local_dir: Path | None = None
    dry_run: bool = False


@dataclass
class FileOutcome:
    path: str
    size: int
    status: str  # "downloaded" | "cached" | "planned" | "failed"
    downloaded: int = 0
    error: str | None = None


@dataclass
class Attempt:
    source: str
    endpoint: str
    outcome: str  # "ok" | "failed"
    why: str


@dataclass
class DownloadResult:
    repo_id: str
    repo_type: str
    revision: str
    commit: str
    source: str
    endpoint: str
    location: str
    dry_run: bool
    files: list[FileOutcome] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def bytes_downloaded(self) -> int:
        return sum(f.downloaded for f in self.files)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["bytes_downloaded"] = self.bytes_downloaded
        data["total_size"] = self.total_size
        return data


def download(
    request: DownloadRequest,
    settings: Settings,
    *,
    on_event: EventSink | None = None,
    max_workers: int | None = None,
    client: HttpClient | None = None,
) -> DownloadResult:
    started = time.monotonic()
    target = _target(request, settings)
    target.check_writable()
    own_client = client is None
    client = client or HttpClient()
    try:
        source = hub_source(settings, client)
        snapshot = source.resolve(request.repo, request.revision)
        selected = _select(request, snapshot)
        present = {f.path for f in selected if target.is_present(f)}
        result = DownloadResult(
            repo_id=request.repo.repo_id,
            repo_type=request.repo.repo_type,
            revision=request.revision,
            commit=snapshot.commit,
            source=source.name,
            endpoint=source.endpoint,
            location=str(target.location(snapshot)),
            dry_run=request.dry_run,
            attempts=[Attempt(source.name, source.endpoint, "ok", _reason(settings))],
            notes=_notes(settings, source),
        )
        missing = [f for f in selected if f.path not in present]
        if request.dry_run:
            result.files = [
                FileOutcome(f.path, f.size, "cached" if f.path in present else "planned") for f in selected
            ]
            return result
        if missing and snapshot.gated:
            source.check_access(snapshot, missing[0])
        jobs = [_job(source, snapshot, target, f) for f in missing]
        # Partials from an earlier run (any source) already hold some of the bytes; each blob counts once.
        target.check_free_space(sum(job.pending() for job in {job.partial: job for job in jobs}.values()))
        target.prepare(snapshot)
        workers = max_workers or settings.max_workers
        report = TransferReport()
        if jobs:
            transfer = Transfer(client, max_workers=workers, connections=settings.connections, on_event=on_event)
            report = transfer.run(jobs, source=source.label)
        landed = [f for f in selected if f.path in present or f.path in report.done]
        result.location = str(
            target.finish(snapshot, landed, complete=not report.failed, source=(source.name, source.endpoint))
        )
        for f in selected:
            if f.path in present:
                result.files.append(FileOutcome(f.path, f.size, "cached"))
            elif f.path in report.failed:
                result.files.append(FileOutcome(f.path, f.size, "failed", error=report.failed[f.path].message))
            else:
                downloaded = report.downloaded.get(f.path, 0)
                status = "downloaded" if downloaded else "cached"
                result.files.append(FileOutcome(f.path, f.size, status, downloaded))
        result.elapsed = time.monotonic() - started
        if report.failed:
            raise _combined_failure(report.failed, len(selected))
        return result
    finally:
        if own_client:
            client.close()


def hub_source(settings: Settings, client: HttpClient) -> HubSource:
    endpoint = settings.endpoint.value
    _check_endpoint(endpoint, settings)
    decision = decide(endpoint, settings)
    name = "hub" if settings.endpoint.origin == "default" else "mirror"
    if endpoint.rstrip("/") in ("https://huggingface.co", "https://hf.co"):
        name = "hub"
    return HubSource(
        name=name,
        endpoint=endpoint,
        client=client,
        grant=decision.grant,
        token_note=decision.note,
        has_token=settings.token.is_set,
    )


def _check_endpoint(endpoint: str, settings: Settings) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        origin = settings.endpoint.describe()
        raise UsageError(
            f"The endpoint {endpoint!r} (from {origin}) is not an http(s) URL.",
            "Use a full URL such as https://hf-mirror.com (for --endpoint or HF_ENDPOINT).",
        )


def _target(request: DownloadRequest, settings: Settings) -> Target:
    if request.local_dir is not None:
        return LocalDirTarget(request.local_dir, request.repo)
    return CacheTarget(HubCache(settings.hub_cache.value), request.repo)


def _select(request: DownloadRequest, snapshot: Snapshot) -> list[RemoteFile]:
    selected = select_files(
        snapshot.files,
        names=request.files,
        include=request.include,
        exclude=request.exclude,
        repo=request.repo,
        commit=snapshot.commit,
    )
    if not selected and (request.include or request.exclude):
        raise UsageError(
            f"No file of {request.repo} matches the --include/--exclude patterns "
            f"({len(snapshot.files)} files at commit {snapshot.commit[:10]}).",
            "Patterns are globs over repo paths, e.g. --include '*.safetensors' --include 'config.json'; "
            "see all files with --dry-run and no patterns.",
        )
    return selected


def _job(source: Source, snapshot: Snapshot, target: Target, file: RemoteFile) -> FileJob:
    url, grant = source.file_location(snapshot, file)
    algo, expected = file.digest
    explain: Callable = lambda response: source.error_for(response, snapshot.repo, snapshot.revision)  # noqa: E731
    return FileJob(
        key=file.path,
        url=url,
        size=file.size,
        algo=algo,
        expected=expected,
        partial=target.partial_path(file),
        deliver=lambda verified, f=file: target.deliver(f, verified),
        already_done=lambda f=file: target.is_present(f),
        lock=target.lock_path(file),
        grant=grant,
        explain=explain,
    )


def _reason(settings: Settings) -> str:
    value = settings.endpoint
    if value.origin == "default":
        return "the official hub (no HF_ENDPOINT set)"
    return f"HF_ENDPOINT from {value.describe()}" if value.origin != "flag" else "--endpoint given"


def _notes(settings: Settings, source: HubSource) -> list[str]:
    notes = []
    if source.token_note:
        notes.append(source.token_note)
    if settings.offline:
        notes.append(
            f"HF_HUB_OFFLINE=1 is set ({settings['HF_HUB_OFFLINE'].describe()}): hfget downloaded anyway because you "
            "asked it to; transformers and huggingface_hub will load from this cache without network."
        )
    return notes


def _combined_failure(failed: dict[str, HfgetError], total: int) -> HfgetError:
    first_path, first = next(iter(failed.items()))
    done = total - len(failed)
    kept = f" The other {done} file(s) are in place." if done else ""
    if len(failed) == 1:
        message = f"{first.message}{kept}"
    else:
        message = f"{len(failed)} of {total} files failed; the first, {first_path}: {first.message}{kept}"
    error = copy.copy(first)  # same class and kind (network, integrity...) for callers that branch on it
    error.message, error.args = message, (message,)
    return error
