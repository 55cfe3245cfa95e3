"""`hfget download`: find a source that answers, decide what must move, move it, land it in the cache or a folder.

Returns a `DownloadResult` (data, never output); the CLI renders it. Order of work, so that bad input and
unreachable servers leave the cache exactly as it was: validate, check the target is writable, plan and probe the
sources, resolve the snapshot's metadata from the first source that answers, check free space, and only then create
folders and move bytes. The metadata source fixes what every file must hash to; when it fails mid-download, the next
sources take over the remaining files (and the rest of partial ones), and their bytes are accepted only if they hash
to the same values.

The transfer stack (the engine, the HTTP client, the sources) is imported when a download starts, not with this
module: the CLI imports it to read a request, and a bad request must fail fast.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .chain.attempts import Attempt, attempt_of, best_error, combined_failure, with_attempts
from .chain.resolve import first_snapshot
from .config import Settings, expand_path
from .errors import ConnectError, DnsError, HfgetError, NetworkError, UsageError, is_fall_through
from .fs.fsutil import forget_resolved_paths
from .net.proxy import resolve as resolve_proxies
from .redact import mask_url
from .repo import RemoteFile, RepoRef, RepoSpec, Snapshot, is_commit_sha, select_files, validate_revision
from .store.hub_cache import HubCache
from .store.pathnames import refuse_name_collisions, refuse_windows_names
from .store.targets import CacheTarget, LocalDirTarget, Target

if TYPE_CHECKING:
    from .chain.route import Candidate
    from .engine.transfer import EventSink, FileJob


@dataclass(frozen=True)
class DownloadRequest:
    repo: RepoRef
    revision: str = "main"
    files: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    local_dir: Path | None = None
    dry_run: bool = False
    notes: tuple[str, ...] = ()  # how the request was understood (a pasted URL), for the result's notes


@dataclass
class FileOutcome:
    path: str
    size: int
    status: str  # "downloaded" | "cached" | "planned" | "failed"
    downloaded: int = 0
    error: str | None = None
    source: str | None = None  # which source's bytes landed


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


def request_from(
    spec: RepoSpec,
    revision: str | None = None,
    *,
    files: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    local_dir: Path | None = None,
    dry_run: bool = False,
) -> DownloadRequest:
    """The request a repo argument in any form (`repo.parse_repo_spec`) and the options make: a revision, file or
    folder named by a pasted URL joins the options; one that contradicts them is a usage error."""
    given = validate_revision(revision) if revision else None
    if given and spec.revision and given != spec.revision:
        raise UsageError(f"The repo URL names the revision {spec.revision!r}, and --revision says {given!r}.",
                         "Keep one of them: leave out --revision, or paste the URL without /tree/REV.")
    if spec.modelscope_id:
        from .modelscope import hf_id_for

    repo = RepoRef(hf_id_for(spec.modelscope_id), "model") if spec.modelscope_id else spec.repo
    return DownloadRequest(
        repo=repo,
        revision=given or spec.revision or "main",
        files=tuple(dict.fromkeys((*files, spec.file) if spec.file else files)),
        include=(*include, f"{spec.folder}/*") if spec.folder else include,
        exclude=exclude,
        local_dir=local_dir,
        dry_run=dry_run,
        notes=(spec.note,) if spec.note else (),
    )


def spec_settings(spec: RepoSpec, flags: dict[str, str | None]) -> dict[str, str | None]:
    """The settings a pasted URL implies, under the flags given: a mirror's URL makes it the endpoint for this run
    (unless --endpoint is given); a ModelScope URL puts ModelScope first (unless --source is given), under its id."""
    flags = dict(flags)
    if spec.endpoint and not flags.get("HF_ENDPOINT"):
        flags["HF_ENDPOINT"] = spec.endpoint
    if spec.modelscope_id:
        if not flags.get("HFGET_SOURCES"):
            flags["USE_MODELSCOPE"] = "1"
        if not flags.get("HFGET_MODELSCOPE_ID"):
            flags["HFGET_MODELSCOPE_ID"] = spec.modelscope_id
    return flags


def download(
    request: DownloadRequest,
    settings: Settings,
    *,
    on_event: EventSink | None = None,
    max_workers: int | None = None,
) -> DownloadResult:
    from .chain.route import plan, probe
    from .net.clients import client_factory

    started = time.monotonic()
    forget_resolved_paths()  # nothing resolved by an earlier call (of the API, in the same process) is trusted
    emit = on_event or (lambda event: None)
    target = _target(request, settings)
    target.check_writable()
    route = plan(settings, client_factory(settings))
    attempts: list[Attempt] = []
    try:
        probe(route.candidates, min(5.0, settings.seconds("HFGET_CONNECT_TIMEOUT")))
        winner, snapshot = _resolve(route.candidates, request, attempts)
        target.begin(snapshot)
        selected = _select(request, snapshot)
        refuse_name_collisions(target, request.repo, selected, snapshot.files)
        refuse_windows_names(target, request.repo, selected, settings.flag("HFGET_WINDOWS_NAMES"))
        result = DownloadResult(
            repo_id=request.repo.repo_id,
            repo_type=request.repo.repo_type,
            revision=request.revision,
            commit=snapshot.commit,
            source=winner.source.name,
            endpoint=mask_url(winner.source.endpoint),
            location=str(target.location()),
            dry_run=request.dry_run,
            attempts=attempts,
        )
        failures: dict[str, HfgetError] = {}
        if request.dry_run:
            present = {f.path for f in selected if target.is_present(f)}
            result.files = [FileOutcome(f.path, f.size, "cached" if f.path in present else "planned") for f in selected]
        else:
            moving = _Moving(route.candidates, winner, snapshot, target, attempts, emit)
            failures = moving.run(selected, max_workers or settings.max_workers, settings)
            result.location = moving.location
            result.files = _outcomes(selected, moving.present, failures, moving.moved, moving.delivered)
            result.elapsed = time.monotonic() - started
        result.notes = _notes(request, settings, route.candidates, attempts)
        if failures:
            raise with_attempts(_final_failure(failures, len(selected), moving.closed_gates, attempts), attempts)
        return result
    except HfgetError as error:
        error.notes = _notes(request, settings, route.candidates, attempts)
        raise
    finally:
        route.close()


def _final_failure(failures: dict[str, HfgetError], total: int, closed_gates: list[HfgetError],
                   attempts: list[Attempt]) -> HfgetError:
    """What failed, or — when a source that has the files refused for want of access and the ones left could not be
    reached — that refusal: opening the gate (a token, the license accepted) is what the user can do."""
    if closed_gates and all(isinstance(e, NetworkError) for e in failures.values()):
        return best_error(closed_gates, attempts)
    return combined_failure(failures, total)


@dataclass
class _Moving:
    """One download's bytes: the files missing from the target, moved by the takers and landed in it."""

    candidates: list[Candidate]
    winner: Candidate
    snapshot: Snapshot
    target: Target
    attempts: list[Attempt]
    emit: EventSink
    present: set[str] = field(default_factory=set)
    delivered: dict[str, tuple[RemoteFile, str]] = field(default_factory=dict)  # path -> (file as placed, source)
    moved: dict[str, int] = field(default_factory=dict)  # path -> bytes received over the network in this run
    location: str = ""
    closed_gates: list[HfgetError] = field(default_factory=list)  # sources that refused for want of access

    def run(self, selected: list[RemoteFile], workers: int | None, settings: Settings) -> dict[str, HfgetError]:
        """Move what is missing; returns the files that failed. The order keeps the cache exactly as it was when
        nothing can be had: free space and the gate are checked before the first write."""
        target, snapshot, attempts = self.target, self.snapshot, self.attempts
        present = {f.path for f in selected if target.is_present(f)}
        missing = [f for f in selected if f.path not in present]
        # Partials from an earlier run (any source, any program) already hold some of the bytes; each blob counts once.
        target.check_free_space(sum(target.space_needed(f) for f in {f.content_key: f for f in missing}.values()))
        takers = _ready_takers(self.candidates, self.winner, snapshot, missing, attempts, self.closed_gates) \
            if missing else None
        failures: dict[str, HfgetError] = {}
        # From the first write to the last, the repo is held: a `cache clean` of it waits for us (and we for it).
        with target.hold():
            # Again, under the lock: a clean may have run since the first look, or another program finished files.
            self.present = present = {f.path for f in selected if target.is_present(f)}
            missing = [f for f in selected if f.path not in present]
            if missing:
                takers = takers or _ready_takers(self.candidates, self.winner, snapshot, missing, attempts,
                                                 self.closed_gates)
                target.prepare()
                failures = _transfer(
                    takers, self.winner, snapshot, target, missing, self.delivered, self.moved, attempts, self.emit,
                    workers, settings.retries, settings.connections,
                )
            landed = [self.delivered[f.path][0] if f.path in self.delivered else f for f in selected
                      if f.path in present or f.path in self.delivered]
            source = (self.winner.source.name, mask_url(self.winner.source.endpoint))  # in the cache: no password
            self.location = str(target.finish(landed, complete=not failures, source=source))
            target.sweep(landed)  # hfget's own leftovers of blobs now in place, whoever placed them
        return failures


# --- resolving metadata -----------------------------------------------------------------------------------------


def _resolve(candidates: list[Candidate], request: DownloadRequest, attempts: list[Attempt]) -> tuple[Candidate, Snapshot]:
    """The first candidate that resolves the snapshot; every one tried (or skipped) is recorded in `attempts`."""
    return first_snapshot(candidates, request.repo, request.revision, attempts)


def _outcomes(selected, present, failures, moved, delivered) -> list[FileOutcome]:
    outcomes = []
    for f in selected:
        if f.path in present:
            outcomes.append(FileOutcome(f.path, f.size, "cached"))
        elif f.path in failures:
            outcomes.append(FileOutcome(f.path, f.size, "failed", error=failures[f.path].message))
        else:
            got, source = moved.get(f.path, 0), delivered[f.path][1]
            # 0 bytes: another process finished it while we waited for its lock
            outcomes.append(FileOutcome(f.path, f.size, "downloaded" if got else "cached", got, source=source))
    return outcomes


# --- moving bytes -----------------------------------------------------------------------------------------------


def _ready_takers(
    candidates: list[Candidate], winner: Candidate, snapshot: Snapshot, missing: list[RemoteFile],
    attempts: list[Attempt], closed_gates: list[HfgetError],
) -> list[Candidate]:
    takers = _takers(candidates, winner, snapshot)
    if snapshot.gated:  # before the first write: a gate nobody opens must leave the cache as it was
        takers = _past_the_gate(takers, snapshot, missing[0], attempts, closed_gates)
    return takers



def _takers(candidates: list[Candidate], winner: Candidate, snapshot: Snapshot) -> list[Candidate]:
    """Who may move the bytes, in order: the winner, then the later reachable candidates."""
    later = candidates[candidates.index(winner) + 1 :]
    return [winner] + [
        c
        for c in later
        if c.unreachable is None
        # ModelScope cannot serve a Hugging Face commit sha
        and not (c.source.name == "modelscope" and is_commit_sha(snapshot.revision))
    ]


def _past_the_gate(
    takers: list[Candidate], snapshot: Snapshot, probe_file: RemoteFile, attempts: list[Attempt],
    errors: list[HfgetError],
) -> list[Candidate]:
    """Drop the candidates whose gate stays closed (no token, token withheld, access not granted); their errors are
    added to `errors`."""
    for i, candidate in enumerate(takers):
        try:
            candidate.source.check_access(snapshot, probe_file)
        except HfgetError as error:
            if not is_fall_through(error):
                raise with_attempts(error, attempts) from None
            attempts.append(attempt_of(candidate, "failed", error.message))
            errors.append(error)
            continue
        return takers[i:]
    raise with_attempts(best_error(errors, attempts), attempts)


def _transfer(
    takers: list[Candidate],
    winner: Candidate,
    snapshot: Snapshot,
    target: Target,
    missing: list[RemoteFile],
    delivered: dict[str, tuple[RemoteFile, str]],
    moved: dict[str, int],
    attempts: list[Attempt],
    emit: EventSink,
    workers: int | None,
    retries: int,
    connections: int,
) -> dict[str, HfgetError]:
    """Move `missing` from the first taker, handing what fails to the next ones. Returns the final failures."""
    from .engine.transfer import SourceSwitch, Transfer

    remaining = list(missing)
    failures: dict[str, HfgetError] = {}
    for candidate in takers:
        if not remaining:
            break
        if failures:
            emit(SourceSwitch(candidate.label, next(iter(failures.values())).message))
        try:
            jobs = [_job(candidate, snapshot, target, f, delivered) for f in remaining]
            engine = Transfer(
                candidate.source.client, max_workers=workers, connections=connections, on_event=emit, attempts=retries
            )
            report = engine.run(jobs, source=candidate.label)
            moved.update(report.downloaded)
            listed = {f.path: f for f in remaining}
            for path in report.done:  # done without a delivery: another process placed it while we waited
                delivered.setdefault(path, (listed[path], candidate.source.name))
            step = dict(report.failed)
        except HfgetError as error:
            if not is_fall_through(error):
                raise with_attempts(error, attempts) from None
            step = {f.path: error for f in remaining}
        done = len(remaining) - len(step)
        if candidate is not winner or failures or step:  # the metadata source's plain success needs no second line
            outcome = "ok" if not step else ("partial" if done else "failed")
            detail = f"{done} file(s) moved" + (f"; {len(step)} failed: {next(iter(step.values())).message}" if step else "")
            attempts.append(attempt_of(candidate, outcome, detail))
        failures = {path: more_telling(failures.get(path), error) for path, error in step.items()}
        remaining = [f for f in remaining if f.path in step]
    return failures


def more_telling(earlier: HfgetError | None, later: HfgetError) -> HfgetError:
    """The error to report for a file that two sources failed, one after the other. A source that could not be
    reached at all (refused, no such host: handed the file while its probe had not answered yet, on a loaded
    machine) says less than one that answered: a mirror's redirect to a blocked CDN host, a server error."""
    unreached = (ConnectError, DnsError)
    if earlier is not None and isinstance(later, unreached) and not isinstance(earlier, unreached):
        return earlier
    return later


def _job(
    candidate: Candidate, snapshot: Snapshot, target: Target, file: RemoteFile, delivered: dict
) -> FileJob:
    from .engine.transfer import FileJob
    from .sources import unreachable_redirect

    source = candidate.source
    url, grant = source.file_location(snapshot, file)
    algo, expected = file.digest

    def deliver(verified: Path) -> None:
        delivered[file.path] = (target.deliver(file, verified), source.name)

    return FileJob(
        key=file.path,
        url=url,
        size=file.size,
        algo=algo,
        expected=expected,
        partial=target.partial_path(file),
        deliver=deliver,
        already_done=lambda: target.is_present(file),
        lock=target.lock_path(file),
        adopt=target.adopter(file),
        resumable=lambda: target.resumable(file),
        grant=grant,
        explain=lambda response: source.error_for(response, snapshot.repo, snapshot.revision),
        explain_unreachable=lambda error: unreachable_redirect(source, file.path, error),
    )


# --- helpers ----------------------------------------------------------------------------------------------------


def _target(request: DownloadRequest, settings: Settings) -> Target:
    if request.local_dir is not None:
        return LocalDirTarget(expand_path(str(request.local_dir), settings.home), request.repo)
    cache = HubCache(settings.hub_cache.value, disable_symlinks=settings.flag("HF_HUB_DISABLE_SYMLINKS"))
    return CacheTarget(cache, request.repo)


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


def _notes(
    request: DownloadRequest, settings: Settings, candidates: list[Candidate], attempts: list[Attempt]
) -> list[str]:
    """What the run has to tell, once each: how the request and settings were read, where the token was withheld,
    and every host other than huggingface.co that the token was sent to."""
    from .net.tokens import destination_note

    notes = [*request.notes, *settings.notes, *resolve_proxies(settings).notes]
    notes += [c.source.token_note for c in candidates if c.source.token_note]
    tried = {(a.source, a.endpoint) for a in attempts if a.outcome != "skipped"}
    granted = [c for c in candidates if getattr(c.source, "grant", None) is not None]
    notes += [destination_note(c.source.endpoint, settings) for c in granted
              if (c.source.name, attempt_of(c, "", "").endpoint) in tried]
    notes = [n for n in dict.fromkeys(notes) if n]
    if settings.offline:
        notes.append(
            f"HF_HUB_OFFLINE=1 is set ({settings['HF_HUB_OFFLINE'].describe()}): hfget downloaded anyway because you "
            "asked it to; transformers and huggingface_hub will load from this cache without network."
        )
    return notes
