"""`hfget cache verify --repair`: re-fetch exactly the files verification found bad, through the source chain, and
leave every other file as it was.

Hugging Face cache: the revision is re-resolved first (the commit itself; for a snapshot ModelScope served, its
revision there, which must still be the cached commit), so an unreachable source or a moved revision changes
nothing. Then the bad bytes go (a corrupt blob, or a snapshot entry that links to the wrong blob) and a download of
just those paths into the same snapshot brings them back, verified by hash as every download is. ModelScope cache:
the files are downloaded into a scratch folder beside the repo and moved over the bad ones. Finally the repaired
files are hashed again.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..cache.model import HF
from ..cache.verify import CORRUPT, OK, REPAIRED, FileCheck, SnapshotCheck, VerifyReport, recheck
from ..config import Settings
from ..download import DownloadRequest, download
from ..engine.events import EventSink
from ..errors import HfgetError, RevisionNotFoundError
from ..store.hub_cache import HubCache
from ..store.targets import CacheTarget
from .verify import modelscope_revision


@dataclass
class RepairOutcome:
    cache: str
    repo_id: str
    revision: str
    paths: list[str]
    source: str | None = None  # "mirror (https://hf-mirror.com)"
    bytes_downloaded: int = 0
    fixed: list[str] = field(default_factory=list)
    error: dict | None = None  # HfgetError.to_dict() when it could not be repaired


@dataclass
class RepairResult:
    outcomes: list[RepairOutcome]

    @property
    def ok(self) -> bool:
        return all(o.error is None and sorted(o.fixed) == sorted(o.paths) for o in self.outcomes)

    @property
    def bytes_downloaded(self) -> int:
        return sum(o.bytes_downloaded for o in self.outcomes)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"ok": self.ok, "bytes_downloaded": self.bytes_downloaded,
                "outcomes": [asdict(o) for o in self.outcomes]}


def repair(report: VerifyReport, settings: Settings, on_event: EventSink | None = None) -> RepairResult:
    outcomes = []
    for snapshot in report.snapshots:
        bad = snapshot.bad
        if not bad:
            continue
        outcome = RepairOutcome(snapshot.cache, snapshot.repo_id, snapshot.revision, [f.path for f in bad])
        try:
            if snapshot.cache == HF:
                _repair_hub_cache(snapshot, bad, settings, outcome, on_event)
            else:
                _repair_modelscope_cache(snapshot, bad, settings, outcome, on_event)
        except HfgetError as error:
            outcome.error = error.to_dict()
        found = {f.path: f"was {f.status}: {f.detail}" for f in bad}
        recheck(bad)
        for item in bad:
            if item.status == OK:
                item.status, item.detail = REPAIRED, found[item.path]
        outcome.fixed = [f.path for f in bad if f.status == REPAIRED]
        outcomes.append(outcome)
    return RepairResult(outcomes)


def _repair_hub_cache(snapshot: SnapshotCheck, bad: list[FileCheck], settings: Settings, outcome: RepairOutcome,
                      on_event: EventSink | None) -> None:
    cache = HubCache(Path(snapshot.path).parents[2])
    origin = cache.read_origins(snapshot.repo).get(snapshot.revision, {})
    revision = snapshot.revision
    if origin.get("source") == "modelscope":  # ModelScope's commit ids mean nothing to the hub: ask ModelScope
        settings = settings.replaced(HFGET_SOURCES="modelscope")
        revision = str(origin.get("revision") or "main")
    request = DownloadRequest(snapshot.repo, revision, files=tuple(f.path for f in bad))
    planned = download(DownloadRequest(snapshot.repo, revision, files=request.files, dry_run=True), settings)
    if planned.commit != snapshot.revision:
        raise RevisionNotFoundError(
            f"{snapshot.repo_id} @ {revision} is commit {planned.commit[:10]} on {planned.source} now, not the cached "
            f"{snapshot.revision[:10]}: its files cannot be fetched again as they were.",
            f"hfget download {snapshot.repo_id} fetches the current revision (verified); hfget cache clean can drop "
            "the old one.")
    # Under the repo lock, as a download's writes are: a `cache clean` of this repo never runs meanwhile.
    with CacheTarget(cache, snapshot.repo).hold():
        for item in bad:
            _drop_bad_bytes(item)
    result = download(request, settings, on_event=on_event)
    outcome.source = f"{result.source} ({result.endpoint})"
    outcome.bytes_downloaded = result.bytes_downloaded


def _drop_bad_bytes(item: FileCheck) -> None:
    """Make room for the good bytes: a corrupt blob goes (it is named by the hash it fails, so it holds nothing
    anyone else can use); a snapshot entry that links to some other blob, or is a corrupt copy, goes instead."""
    if item.status != CORRUPT:
        return  # missing: nothing there to remove
    entry, location = Path(item.entry), Path(item.location)
    if entry.is_symlink() and location.name == item.expected:
        location.unlink(missing_ok=True)
    else:
        entry.unlink(missing_ok=True)


def _repair_modelscope_cache(snapshot: SnapshotCheck, bad: list[FileCheck], settings: Settings,
                             outcome: RepairOutcome, on_event: EventSink | None) -> None:
    folder = Path(snapshot.path)
    scratch = folder.parent / f".hfget-repair-{uuid.uuid4().hex[:8]}"  # same file system: the moves are renames
    settings = settings.replaced(HFGET_SOURCES="modelscope", HFGET_MODELSCOPE_ID=snapshot.repo_id)
    request = DownloadRequest(snapshot.repo, modelscope_revision(snapshot.revision),
                              files=tuple(f.path for f in bad), local_dir=scratch)
    try:
        result = download(request, settings, on_event=on_event)
        for item in bad:
            target = folder.joinpath(*item.path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch.joinpath(*item.path.split("/")), target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    outcome.source = f"{result.source} ({result.endpoint})"
    outcome.bytes_downloaded = result.bytes_downloaded
