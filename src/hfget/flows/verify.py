"""`hfget cache verify [REPO...] [--repair]`: pick the cached repos, re-hash them (cache/verify.py), ask a source for
the listing of what nothing in the cache vouches for, and re-fetch what is bad (repair.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..cache import ms_scan, select
from ..cache.model import HF, CachedRepo
from ..cache.roots import HF_REPO_PREFIXES, resolve_roots
from ..cache.verify import HashSink, SnapshotCheck, VerifyReport, verify
from ..config import Settings
from ..engine.events import EventSink
from ..errors import HfgetError, UsageError
from ..repo import validate_revision


@dataclass(frozen=True)
class VerifyRequest:
    patterns: tuple[str, ...] = ()
    revision: str | None = None
    only: str | None = None  # "huggingface" | "modelscope"
    online: bool = True  # may ask a source for a listing (always needed for the ModelScope cache)
    repair: bool = False
    workers: int | None = None


def run(
    settings: Settings,
    request: VerifyRequest,
    *,
    on_hash: HashSink | None = None,
    on_transfer: EventSink | None = None,
    before_repair: Callable[[VerifyReport], None] | None = None,
) -> VerifyReport:
    revision = validate_revision(request.revision) if request.revision is not None else None
    found = _cached_repos(resolve_roots(settings, request.only))
    repos = select.by_patterns(found, request.patterns) if request.patterns else found
    ask = (lambda snapshot: ask_a_source(settings, snapshot)) if request.online else None
    report = verify(repos, revision=revision, ask=ask, workers=request.workers, on_event=on_hash)
    if revision is not None and not report.snapshots:
        raise UsageError(f"No cached revision of {', '.join(r.key for r in repos)} is {revision!r}.",
                         "`hfget cache list --revisions` shows the cached revisions and their refs.")
    if request.repair and report.bad:
        from .repair import repair

        if before_repair is not None:
            before_repair(report)
        report.repair = repair(report, settings, on_event=on_transfer)
    return report


def _cached_repos(roots) -> list[CachedRepo]:
    """Who is cached where. For the Hugging Face cache just the repo folders' names: verification reads each
    snapshot itself, so the full scan (sizes, times, locks; huggingface_hub's scanner) would be pure overhead."""
    repos: list[CachedRepo] = []
    for root in roots:
        if not root.exists:
            continue
        if root.name != HF:
            repos.extend(ms_scan.scan(root))
            continue
        for folder in sorted(root.path.iterdir()):
            kind, _, name = folder.name.partition("s--")
            if folder.name.startswith(HF_REPO_PREFIXES) and name and folder.is_dir() and not folder.is_symlink():
                repos.append(CachedRepo(HF, kind, name.replace("--", "/"), folder, "hub", 0, 0, 0.0, 0.0))
    return repos


def ask_a_source(settings: Settings, snapshot: SnapshotCheck) -> None:
    """The listing the first answering source serves for this snapshot's revision. Hugging Face: the commit itself,
    from the hub or a mirror. ModelScope: its own listing of the revision, under the id it is cached as."""
    from ..chain.resolve import first_snapshot
    from ..chain.route import plan, probe
    from ..net.clients import client_factory

    if snapshot.cache == HF:
        revision, label = snapshot.revision, "hub listing"
    else:
        settings = settings.replaced(HFGET_SOURCES="modelscope", HFGET_MODELSCOPE_ID=snapshot.repo_id)
        revision, label = modelscope_revision(snapshot.revision), "ModelScope listing"
    route = plan(settings, client_factory(settings))
    try:
        probe(route.candidates, min(5.0, settings.seconds("HFGET_CONNECT_TIMEOUT")))
        winner, remote = first_snapshot(route.candidates, snapshot.repo, revision, [])
    except HfgetError as error:
        snapshot.note = f"no listing to check against: {error.message}"
        return
    finally:
        route.close()
    snapshot.expect({f.path: f for f in remote.files}, f"{label} ({winner.source.endpoint})")


def modelscope_revision(folder: str) -> str:
    """The revision to ask ModelScope for, given the cache folder's name (hfget's sources speak in HF revisions:
    `main` is ModelScope's `master`)."""
    return "main" if folder in ("master", "(unknown)") else folder
