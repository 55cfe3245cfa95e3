"""What `hfget cache list` finds: plain data, shared by the scanners, the selection, the cleaner and the renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HF, MS = "huggingface", "modelscope"
CACHE_NAMES = (HF, MS)


@dataclass(frozen=True)
class CacheRoot:
    """One cache folder as configured: where it is, where that setting came from, whether it is there."""

    name: str  # HF | MS
    path: Path  # resolved (symlinks followed once, here): every path we delete must stay under it
    origin: str  # where the setting came from, for people: "--cache-dir", "HF_HUB_CACHE in /proj/.env", "default"
    exists: bool
    default: bool = False  # nobody configured it: its absence is normal, not worth a note

    def to_dict(self) -> dict:
        return {"cache": self.name, "path": str(self.path), "from": self.origin, "exists": self.exists}


@dataclass(frozen=True)
class Revision:
    """A snapshot of a repo. For Hugging Face `name` is the commit sha; for ModelScope the revision folder name."""

    name: str
    refs: tuple[str, ...]
    size: int
    files: int
    last_modified: float
    path: Path
    source: str | None = None  # which source served it, when hfget downloaded it (origins.json)
    endpoint: str | None = None

    @property
    def detached(self) -> bool:
        return not self.refs

    def to_dict(self) -> dict:
        return {
            "revision": self.name,
            "refs": list(self.refs),
            "size": self.size,
            "files": self.files,
            "last_modified": iso(self.last_modified),
            "path": str(self.path),
            "source": self.source,
            "endpoint": self.endpoint,
        }


@dataclass(frozen=True)
class Partial:
    """An unfinished download: the partial file plus the state file beside it, if any (store/partials.py names
    them), or a state file alone."""

    paths: tuple[Path, ...]
    size: int
    in_use: bool  # a download may be writing it right now (or whether it is cannot be told)
    lock: Path | None = None  # what says so: the blob's lock file, or the marker of the hfget download writing it
    client: str = "hfget"  # which program left it
    note: str | None = None  # why it counts as in use: who holds it, or why that cannot be checked

    def to_dict(self) -> dict:
        return {"paths": [str(p) for p in self.paths], "size": self.size, "in_use": self.in_use,
                "client": self.client, "note": self.note}


@dataclass(frozen=True)
class CachedRepo:
    cache: str  # HF | MS
    kind: str  # model | dataset | space
    repo_id: str
    path: Path
    layout: str  # "hub" (HF), "snapshots" (ModelScope today), "legacy" (ModelScope SDK <= 1.37)
    size: int  # bytes on disk of complete files; a blob shared by several revisions counts once
    files: int
    last_accessed: float
    last_modified: float
    revisions: tuple[Revision, ...] = ()
    partials: tuple[Partial, ...] = ()
    locks_held: tuple[Path, ...] = ()  # locks of this repo some process held when scanned: the repo is in use
    # Why it counts as in use, one line per lock (a download named by its marker, or a lock file that could not be
    # checked, e.g. permission denied: then nobody can tell, and `cache clean` keeps its hands off).
    busy_notes: tuple[str, ...] = ()
    problem: str | None = None  # why huggingface_hub's scanner rejected it (missing blob, dangling ref, ...)

    @property
    def key(self) -> str:
        """What users type to name it: `owner/name`, or `dataset/owner/name` for the other kinds."""
        return self.repo_id if self.kind == "model" else f"{self.kind}/{self.repo_id}"

    @property
    def partial_size(self) -> int:
        return sum(p.size for p in self.partials)

    @property
    def in_use(self) -> bool:
        return bool(self.locks_held) or any(p.in_use for p in self.partials)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({r.source for r in self.revisions if r.source}))

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(sorted(ref for r in self.revisions for ref in r.refs))

    def to_dict(self) -> dict:
        return {
            "cache": self.cache,
            "kind": self.kind,
            "id": self.repo_id,
            "path": str(self.path),
            "layout": self.layout,
            "size": self.size,
            "files": self.files,
            "last_accessed": iso(self.last_accessed),
            "last_modified": iso(self.last_modified),
            "refs": list(self.refs),
            "served_by": list(self.sources),
            "revisions": [r.to_dict() for r in self.revisions],
            "incomplete": {"count": len(self.partials), "size": self.partial_size,
                           "files": [p.to_dict() for p in self.partials]},
            "in_use": self.in_use,
            "in_use_because": list(self.busy_notes),
            "problem": self.problem,
        }


@dataclass(frozen=True)
class CacheScan:
    """Both caches, as found. `sizes[name]` is the physical size of that cache (huggingface_hub's own total)."""

    roots: tuple[CacheRoot, ...]
    repos: tuple[CachedRepo, ...]
    sizes: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    scanned: int = 0  # repos found before selection
    hf_info: object = field(default=None, repr=False, compare=False)  # huggingface_hub's HFCacheInfo, for deletion

    def root(self, name: str) -> CacheRoot | None:
        return next((r for r in self.roots if r.name == name), None)

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())

    def to_dict(self) -> dict:
        return {
            "caches": [{**r.to_dict(), "size": self.sizes.get(r.name)} for r in self.roots],
            "repos": [r.to_dict() for r in self.repos],
            "shown": len(self.repos),
            "scanned": self.scanned,
            "total_size": self.total_size,
            "notes": list(self.notes),
        }


def iso(timestamp: float) -> str | None:
    """UTC, to the second: what JSON readers parse without guessing a time zone."""
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
