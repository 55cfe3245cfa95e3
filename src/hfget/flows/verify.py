"""`hfget cache verify [REPO...] [--repair]`: pick the cached repos, re-hash them (cache/verify.py), ask a source for
the listing of what nothing in the cache vouches for, and re-fetch what is bad (repair.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..cache import scan_all, select
from ..cache.model import HF
from ..cache.roots import resolve_roots
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
    found = scan_all(resolve_roots(settings, request.only))
    repos = select.by_patterns(found.repos, request.patterns) if request.patterns else list(found.repos)
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


def ask_a_source(settings: Settings, snapshot: SnapshotCheck) -> None:
    """The listing the first answering source serves for this snapshot's revision. Hugging Face: the commit itself,
    from the hub or a mirror. ModelScope: its own listing of the revision, under the id it is cached as."""
    from ..chain.resolve import first_snapshot
    from ..chain.route import plan, probe
    from ..download import client_factory

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
