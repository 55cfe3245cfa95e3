"""`hfget bundle export`: cached snapshots into one tar, for a machine with no route to any hub.

Order of work, so that a failed export leaves nothing behind: check the output, find every requested revision in
the cache (downloading what is missing only with `--download`), check that every file to bundle is there, build and
self-check the manifest, then stream the tar into a temporary file beside the output — each blob read once, hashed
while it is copied (a damaged cache copy is caught here, not on the air-gapped side) — and rename it into place.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..config import Settings
from ..engine.digest import Digest, git_blob_sha1, lfs_pointer_oid
from ..engine.events import EventSink, FileFinished, FileProgress, FileStarted, TransferFinished, TransferStarted
from ..errors import DiskFullError, IntegrityError, NotCachedError, UsageError
from ..fs.fsutil import disk_errors
from ..repo import RemoteFile, RepoRef, is_commit_sha, parse_repo_id, select_files, validate_revision
from ..store.hub_cache import HubCache
from ..units import human_bytes
from . import manifest as mf

CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportRequest:
    specs: tuple[str, ...]  # "owner/name" or "owner/name@revision"
    output: Path
    repo_type: str = "model"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    download: bool = False  # fetch what the cache lacks first (through the usual source chain)
    force: bool = False  # replace an existing output file


@dataclass
class ExportedRevision:
    repo_id: str
    repo_type: str
    refs: list[str]
    commit: str
    files: int
    size: int
    complete_listing: bool
    source: str | None
    downloaded: bool = False


@dataclass
class ExportResult:
    path: str
    bundle_size: int
    blobs: int
    blob_bytes: int  # bytes of distinct blobs written (shared files count once)
    file_bytes: int  # bytes the revisions' files add up to
    revisions: list[ExportedRevision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def export_bundle(request: ExportRequest, settings: Settings, *, on_event: EventSink | None = None) -> ExportResult:
    started = time.monotonic()
    emit = on_event or (lambda event: None)
    output = _check_output(request.output, request.force)
    cache = HubCache(settings.hub_cache.value)
    wanted = [parse_spec(spec, request.repo_type) for spec in request.specs]
    if not wanted:
        raise UsageError("No repo to export.", "Name one or more repos: hfget bundle export owner/name@main -o FILE.tar")
    planned: dict[tuple[RepoRef, str], mf.BundleRevision] = {}
    sources: dict[str, Path] = {}
    downloaded: set[tuple[RepoRef, str]] = set()
    notes: list[str] = []
    for repo, revision in wanted:
        try:
            bundled, found = plan_revision(cache, repo, revision, request.include, request.exclude)
        except NotCachedError:
            if not request.download:
                raise
            _download(repo, revision, request, settings, emit)
            bundled, found = plan_revision(cache, repo, revision, request.include, request.exclude)
            downloaded.add((repo, bundled.commit))
        key = (repo, bundled.commit)
        if key in planned:  # two names for one commit (main and v1.0): one entry, both refs
            merged = tuple(dict.fromkeys(planned[key].refs + bundled.refs))
            bundled = mf.BundleRevision(repo, bundled.commit, merged, bundled.files, bundled.complete_listing,
                                        bundled.source)
        planned[key] = bundled
        for blob_key, path in found.items():
            sources.setdefault(blob_key, path)
        if not bundled.complete_listing:
            notes.append(f"{bundled.label}: the cache has no full file listing for this commit (written by an older "
                         f"huggingface_hub); the bundle holds the {len(bundled.files)} files its snapshot holds.")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = mf.build(list(planned.values()), __version__, created)
    raw = manifest.to_bytes()
    mf.parse(raw, "the bundle being written")  # never write a bundle import would refuse
    size = _write(output, manifest, raw, sources, emit)
    result = ExportResult(str(output), size, len(manifest.blobs), manifest.size,
                          sum(r.size for r in manifest.revisions), notes=notes, elapsed=time.monotonic() - started)
    for r in manifest.revisions:
        result.revisions.append(ExportedRevision(
            r.repo.repo_id, r.repo.repo_type, list(r.refs), r.commit, len(r.bundled), r.size, r.complete_listing,
            (r.source or {}).get("source"), (r.repo, r.commit) in downloaded))
    return result


def parse_spec(text: str, repo_type: str) -> tuple[RepoRef, str]:
    """`owner/name[@revision]` (a repo id never contains '@'); the revision defaults to main."""
    repo_text, _, revision = text.partition("@")
    return parse_repo_id(repo_text, repo_type), validate_revision(revision or "main")


# --- finding what to bundle -------------------------------------------------------------------------------------


def plan_revision(
    cache: HubCache, repo: RepoRef, revision: str, include: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[mf.BundleRevision, dict[str, Path]]:
    """The revision as the cache holds it, and where each bundled blob's bytes are. NotCachedError names what is
    missing when the cache does not hold every file the bundle needs."""
    commit = cache.cached_commit(repo, revision)
    if commit is None:
        raise NotCachedError(
            f"{repo}@{revision} is not in the cache at {cache.root}.",
            f"Download it first ({_download_command(repo, revision)}), add --download to this command, or check "
            "the cache with hfget cache list --revisions.",
        )
    listing = cache.read_tree(repo, commit)
    complete = listing is not None
    if listing is None:
        listing = _listing_from_snapshot(cache, repo, commit)
    chosen = {f.path for f in select_files(listing, include=include, exclude=exclude, repo=repo, commit=commit)}
    if not chosen:
        raise UsageError(f"No file of {repo}@{revision} (commit {commit[:10]}) matches the --include/--exclude "
                         f"patterns ({len(listing)} files).", "Patterns are globs over repo paths, e.g. "
                         "--include '*.safetensors' --include '*.json'.")
    files, found, missing = [], {}, []
    for f in sorted(listing, key=lambda f: f.path):
        if f.path in chosen and not cache.holds(repo, commit, f):
            missing.append(f.path)
        elif f.path in chosen:
            found.setdefault(f.etag, cache.snapshot_file(repo, commit, f.path)[1])
        files.append(mf.BundleFile.of(f, bundled=f.path in chosen))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotCachedError(
            f"{repo}@{revision} (commit {commit[:10]}) is not complete in the cache at {cache.root}: "
            f"{len(missing)} of {len(chosen)} files are missing ({shown}).",
            f"Download them first ({_download_command(repo, revision)}), add --download to this command, or "
            "leave them out with --include / --exclude.",
        )
    origin = cache.read_origins(repo).get(commit)
    source = {k: origin[k] for k in ("source", "endpoint", "revision", "time") if k in origin} if origin else None
    refs = () if is_commit_sha(revision) else (revision,)
    return mf.BundleRevision(repo, commit, refs, tuple(files), complete, source), found


def _listing_from_snapshot(cache: HubCache, repo: RepoRef, commit: str) -> list[RemoteFile]:
    """Without a tree listing (a cache written by huggingface_hub 0.x): the files the snapshot holds, named as
    their blobs are (sha256 = LFS, git sha1 = regular); plain copies are hashed to find their git id."""
    files = []
    for path in cache.snapshot_paths(repo, commit):
        held = cache.snapshot_file(repo, commit, path)
        if held is None:
            continue  # a link to a missing blob: nothing to bundle, and its size is unknown
        name, data = held
        size = _size(data)
        if name and len(name) == 64 and _is_hex(name):
            files.append(RemoteFile(path, size, lfs_pointer_oid(name, size), sha256=name, lfs=True))
        else:
            blob_id = name if name and len(name) == 40 and _is_hex(name) else git_blob_sha1(data)
            files.append(RemoteFile(path, size, blob_id))
    return files


def _download(repo: RepoRef, revision: str, request: ExportRequest, settings: Settings, emit: EventSink) -> None:
    from ..download import DownloadRequest, download

    download(DownloadRequest(repo=repo, revision=revision, include=request.include, exclude=request.exclude),
             settings, on_event=emit)


# --- writing the tar --------------------------------------------------------------------------------------------


def _check_output(output: Path, force: bool) -> Path:
    output = Path(output).expanduser().absolute()
    if output.is_dir():
        raise UsageError(f"{output} is a folder.", "Give the bundle a file name: -o FOLDER/models.tar")
    if output.exists() and not force:
        raise UsageError(f"{output} already exists.", "Choose another name, or pass --force to replace it.")
    if not output.parent.is_dir():
        raise UsageError(f"The folder {output.parent} does not exist.", "Create it, or write the bundle elsewhere.")
    return output


def _write(output: Path, manifest: mf.Manifest, raw: bytes, sources: dict[str, Path], emit: EventSink) -> int:
    """Stream the tar into a temporary file beside `output`, then rename it. Returns the bundle's size."""
    needed = manifest.size + len(raw) + (len(manifest.blobs) + 8) * 3 * tarfile.BLOCKSIZE
    free = shutil.disk_usage(output.parent).free
    if needed > free:
        raise DiskFullError(f"The bundle needs {human_bytes(needed)} and {output.parent} has {human_bytes(free)} free.",
                            "Write it to a bigger disk (-o), or bundle fewer repos or files (--include).")
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")
    mtime = time.time()
    started = time.monotonic()
    emit(TransferStarted(files=len(manifest.blobs), total_bytes=manifest.size, source=output.name))
    try:
        with disk_errors(output.parent), open(tmp, "xb") as fh:
            tar = tarfile.open(fileobj=fh, mode="w:", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
            head = _info(mf.MANIFEST_NAME, len(raw), mtime)
            # The manifest's own hash, in its pax header: with it every byte that matters in a bundle is checked
            # (tar headers by their checksum, the manifest by this, blobs by the manifest, padding must be zero).
            head.pax_headers = mf.pax_record(raw)
            tar.addfile(head, _Reader(_BytesSource(raw), None, lambda n: None))
            for blob in manifest.blobs:
                _add_blob(tar, manifest, blob, sources[blob.key], mtime, emit)
            tar.close()  # the end-of-archive blocks; fh stays ours
            fh.flush()
            os.fsync(fh.fileno())  # it will be carried away on a disk: make sure it is on this one first
            os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    emit(TransferFinished(downloaded=manifest.size, elapsed=time.monotonic() - started))
    return output.stat().st_size


def _add_blob(tar: tarfile.TarFile, manifest: mf.Manifest, blob: mf.BundleBlob, data: Path, mtime: float,
              emit: EventSink) -> None:
    revision, first = manifest.files_of(blob.key)[0]
    label = f"{revision.repo.repo_id}/{first.path}"
    emit(FileStarted(label, blob.size))
    digest = Digest(blob.algo, blob.key, blob.size)
    try:
        with open(data, "rb") as src:
            tar.addfile(_info(blob.member, blob.size, mtime),
                        _Reader(src, digest, lambda n: emit(FileProgress(label, n))))
    except (OSError, tarfile.TarError) as exc:
        if not isinstance(exc, OSError) or exc.errno is not None:
            raise
        digest = None  # the blob shrank while it was read: "unexpected end of data"
    if digest is None or not digest.matches():
        raise IntegrityError(
            f"The cached copy of {first.path} ({revision.label}) at {data} does not hash to {blob.key}: the cache is "
            "damaged. Nothing was written.",
            f"Delete that file and download the revision again "
            f"({_download_command(revision.repo, revision.refs[0] if revision.refs else revision.commit)}), then "
            "export again.",
        )
    emit(FileFinished(label, blob.size, downloaded=blob.size))


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    return info


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.pos : self.pos + n]
        self.pos += len(piece)
        return piece


class _Reader:
    """What tarfile copies from: hashes and reports every chunk on its way into the tar."""

    def __init__(self, src, digest: Digest | None, progress: Callable[[int], None]) -> None:
        self.src, self.digest, self.progress = src, digest, progress

    def read(self, n: int) -> bytes:
        data = self.src.read(n)
        if self.digest is not None:
            self.digest.update(data)
        self.progress(len(data))
        return data


def _download_command(repo: RepoRef, revision: str) -> str:
    kind = "" if repo.repo_type == "model" else f" --repo-type {repo.repo_type}"
    rev = "" if revision == "main" else f" --revision {revision}"
    return f"hfget download {repo.repo_id}{rev}{kind}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
