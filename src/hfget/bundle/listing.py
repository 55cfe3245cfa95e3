"""`hfget bundle ls`: what a bundle holds, whether it is whole, and what of it the local cache already has.

Reads the manifest and the tar headers only (no blob is read or hashed: that is import's job), so it is quick even
for a bundle of hundreds of GB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import BundleError
from ..store.hub_cache import HubCache
from . import archive


@dataclass
class ListedRevision:
    repo_id: str
    repo_type: str
    refs: list[str]
    commit: str
    files: int  # bundled files
    size: int
    listed_files: int  # files of the commit's listing (bundled or not)
    complete_listing: bool
    source: str | None  # where the exporting machine had the commit from
    endpoint: str | None
    cached_files: int  # bundled files the local cache already holds


@dataclass
class BundleListing:
    path: str
    bundle_size: int
    created: str
    hfget_version: str
    blobs: int
    blob_bytes: int
    cache: str
    problem: str | None  # why the bundle would be refused (truncated, damaged...), None when its structure is whole
    revisions: list[ListedRevision] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def list_bundle(path: Path, settings: Settings) -> BundleListing:
    path = Path(path).expanduser().absolute()
    manifest, size = archive.read_manifest(path)  # a manifest that cannot be read is an error, not a listing
    try:
        archive.scan(path)
        problem = None
    except BundleError as error:
        problem = error.message
    cache = HubCache(settings.hub_cache.value)
    listing = BundleListing(str(path), size, manifest.created, manifest.hfget_version, len(manifest.blobs),
                            manifest.size, str(cache.root), problem)
    for r in manifest.revisions:
        source = r.source or {}
        listing.revisions.append(ListedRevision(
            r.repo.repo_id, r.repo.repo_type, list(r.refs), r.commit, len(r.bundled), r.size, len(r.files),
            r.complete_listing, source.get("source"), source.get("endpoint"),
            sum(cache.holds(r.repo, r.commit, f.remote()) for f in r.bundled)))
    return listing
