"""`cache clean`: a plan first (what, how many bytes, what is skipped and why), then `plan.execute()`.

What gets chosen: repos named by ids/globs (or every repo), narrowed by `--filter` and `--older-than`; in them,
the whole repo, or with `--keep-latest` only revisions no ref points to, or with `--incomplete` only partial
downloads. `--all` is every repo and every partial.

Order of deletion inside a repo, so that an interrupted clean leaves a cache huggingface_hub still reads: refs, then
snapshot folders (links), then tree listings, then blobs, then the rest of the folder. A blob another kept revision
links to is never in the plan (huggingface_hub's `delete_revisions` works that out); its `DeleteCacheStrategy` also
deletes the blobs, so the cache-wide shared blob store of huggingface_hub 2.x is swept the way it expects.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import Settings
from ..errors import UsageError
from ..fs.locks import new_owner
from ..units import parse_duration
from . import safety, select
from .model import HF, CachedRepo, CacheRoot, Partial, Revision

REPO, REVISIONS, PARTIALS = "repo", "revisions", "partials"


@dataclass(frozen=True)
class CleanRequest:
    targets: tuple[str, ...] = ()
    older_than: str | None = None
    keep_latest: bool = False
    incomplete: bool = False
    all: bool = False
    filters: tuple[str, ...] = ()
    only: str | None = None


@dataclass(frozen=True)
class Step:
    """One deletion: a whole repo, some revisions of it, or some of its partial downloads."""

    repo: CachedRepo
    action: str  # REPO | REVISIONS | PARTIALS
    size: int
    revisions: tuple[Revision, ...] = ()
    partials: tuple[Partial, ...] = ()
    note: str | None = None  # why it is skipped

    def to_dict(self) -> dict:
        return {
            "cache": self.repo.cache,
            "kind": self.repo.kind,
            "id": self.repo.repo_id,
            "action": self.action,
            "size": self.size,
            "revisions": [r.name for r in self.revisions],
            "partials": [str(p) for partial in self.partials for p in partial.paths],
            "path": str(self.repo.path),
            "note": self.note,
        }


@dataclass
class CleanResult:
    done: list[Step] = field(default_factory=list)
    skipped: list[Step] = field(default_factory=list)
    failed: list[Step] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(s.size for s in self.done)

    def to_dict(self) -> dict:
        return {
            "freed": self.freed,
            "done": [s.to_dict() for s in self.done],
            "skipped": [s.to_dict() for s in self.skipped],
            "failed": [s.to_dict() for s in self.failed],
        }


@dataclass
class CleanPlan:
    roots: tuple[CacheRoot, ...]
    steps: list[Step]
    skipped: list[Step]

    @property
    def size(self) -> int:
        return sum(s.size for s in self.steps)

    def to_dict(self) -> dict:
        return {
            "caches": [r.to_dict() for r in self.roots],
            "steps": [s.to_dict() for s in self.steps],
            "skipped": [s.to_dict() for s in self.skipped],
            "size": self.size,
        }

    def execute(self) -> CleanResult:
        """Delete what the plan lists. A repo a download took since the plan was made is skipped with a note."""
        result = CleanResult(skipped=list(self.skipped))
        roots = {r.name: r.path for r in self.roots}
        owner = new_owner()  # this clean, in the markers of the repo locks it takes
        revisions_in_hf = any(s.action == REVISIONS and s.repo.cache == HF for s in self.steps)
        fresh_hf = _fresh_hf_info(roots) if revisions_in_hf else None
        for step in self.steps:
            root = roots[step.repo.cache]
            try:
                if step.action == PARTIALS:
                    result.skipped.extend(_remove_partials(step, root, result))
                    continue
                repo_locks = root / ".locks" / step.repo.path.name if step.repo.cache == HF else None
                with safety.held_for_deletion(repo_locks, _locks_now(step.repo, root), owner):
                    _EXECUTORS[(step.repo.cache == HF, step.action)](step, root, fresh_hf)
                result.done.append(step)
            except safety.InUse as busy:
                result.skipped.append(replace(step, note=busy.note))
            except (OSError, safety.UnsafePath) as exc:
                result.failed.append(replace(step, note=_why(exc)))
        return result


def plan_clean(settings: Settings, request: CleanRequest) -> CleanPlan:
    """Work out what `request` deletes. Reads the caches; changes nothing."""
    from . import resolve_roots, scan_all

    _check(request)
    filters = [select.parse_filter(f) for f in request.filters]
    max_age = _age(request.older_than) if request.older_than else None
    found = scan_all(resolve_roots(settings, request.only))
    repos = select.by_patterns(found.repos, request.targets) if request.targets else list(found.repos)
    now = time.time()
    repos = select.apply(repos, filters, now)
    if max_age is not None:
        repos = [r for r in repos if now - select.last_used(r) > max_age]

    whole = request.all or not (request.keep_latest or request.incomplete)
    steps: list[Step] = []
    for repo in sorted(repos, key=lambda r: (r.cache, r.repo_id.lower(), r.kind)):
        if whole:
            steps.append(Step(repo, REPO, _whole_size(repo)))
            continue
        if request.keep_latest:
            drop = _old_revisions(repo)
            if drop:
                steps.append(Step(repo, REVISIONS, _revisions_size(found.hf_info, repo, drop), revisions=drop))
        if request.incomplete and repo.partials:
            steps.append(Step(repo, PARTIALS, repo.partial_size, partials=repo.partials))
    planned, skipped = [], []
    for step in steps:
        for part in _split_in_use(step):
            (skipped if part.note else planned).append(part)
    return CleanPlan(found.roots, planned, skipped)


def _check(request: CleanRequest) -> None:
    if request.all and (request.targets or request.filters or request.older_than or request.keep_latest
                        or request.incomplete):
        raise UsageError(
            "--all already means every cached repo and every partial download; it takes no ids, filters or "
            "--older-than/--keep-latest/--incomplete.",
            "Use --all alone (with --dry-run to see what it covers), or name what to clean without --all.",
        )
    if not (request.all or request.targets or request.filters or request.older_than or request.keep_latest
            or request.incomplete):
        raise UsageError(
            "Nothing to clean was named.",
            "Name repos (hfget cache clean Qwen/Qwen3-4B, or a glob 'Qwen/*'), or use --older-than 30d, "
            "--keep-latest, --incomplete or --all. Add --dry-run to only see the plan.",
        )


def _age(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(
            f"--older-than {text!r} is not an age.",
            "Use a number with a unit: 30d, 12h, 90min, 2w, 1y (a bare number means days).",
        ) from None


def _whole_size(repo: CachedRepo) -> int:
    """What deleting the folder frees. huggingface_hub's size counts only blobs a snapshot links to; blobs nothing
    links to any more (an interrupted clean, a failed download) go too, so they count here."""
    if repo.cache != HF:
        return repo.size + repo.partial_size
    on_disk = 0
    for blob in _children(repo.path / "blobs"):
        try:
            st = os.lstat(blob)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):  # a link into the shared store is not counted here: repo.size has it
            on_disk += st.st_size
    return max(repo.size + repo.partial_size, on_disk)


def _old_revisions(repo: CachedRepo) -> tuple[Revision, ...]:
    """Revisions no ref points to (what an updated branch leaves behind). When no revision has a ref at all (all
    downloaded by commit), the newest one stays."""
    if not repo.revisions:
        return ()
    if any(r.refs for r in repo.revisions):
        return tuple(r for r in repo.revisions if not r.refs)
    newest = max(repo.revisions, key=lambda r: r.last_modified)
    return tuple(r for r in repo.revisions if r is not newest)


def _revisions_size(hf_info, repo: CachedRepo, revisions: tuple[Revision, ...]) -> int:
    if repo.cache == HF and hf_info is not None:
        return hf_info.delete_revisions(*(r.name for r in revisions)).expected_freed_size
    return sum(r.size for r in revisions)  # ModelScope keeps plain copies per revision


def _split_in_use(step: Step) -> list[Step]:
    """A step touching something a download holds becomes a skipped step with the reason."""
    repo = step.repo
    if repo.path.is_symlink():
        target = os.path.realpath(repo.path)
        return [replace(step, note=f"the repo folder is a symlink (to {target}); hfget follows no symlink when "
                                   "deleting: remove the link, or its target, yourself")]
    if step.action == PARTIALS:
        busy = tuple(p for p in step.partials if p.in_use)
        free = tuple(p for p in step.partials if not p.in_use)
        parts = []
        if free:
            parts.append(replace(step, partials=free, size=sum(p.size for p in free)))
        for partial in busy:  # one skipped step each, with its own reason
            parts.append(replace(step, partials=(partial,), size=partial.size, note=partial.note or "in use"))
        return parts
    if repo.in_use:
        notes = repo.busy_notes or tuple(p.note for p in repo.partials if p.in_use and p.note)
        return [replace(step, note=notes[0] if notes else "in use")]
    return [step]


# --- execution ----------------------------------------------------------------------------------------------


def _locks_now(repo: CachedRepo, root: Path) -> list[Path]:
    """The repo's lock files as they are now: a download that started after the plan has made new ones."""
    from . import hf_scan, ms_scan

    return hf_scan.locks_now(root, repo) if repo.cache == HF else ms_scan.locks_now(root, repo)


def _fresh_hf_info(roots: dict[str, Path]):
    """Re-scan right before deleting revisions: a download since the plan may now link a blob we planned to drop."""
    from huggingface_hub import scan_cache_dir

    return scan_cache_dir(roots[HF])


def _remove_hf_repo(step: Step, root: Path, _info) -> None:
    path = step.repo.path
    safety.remove(path / "refs", root)
    for snapshot in _children(path / "snapshots"):
        safety.remove(snapshot, root)
    safety.remove(path / "trees", root)
    _remove_blobs(_children(path / "blobs"), path, root)
    # The (empty) snapshots/ goes last: until then the folder still scans as a repo with no revisions. Only the
    # instant between these two rmdirs leaves an empty folder, which the next `cache clean` of this id removes.
    for rest in _children(path):
        if rest.name != "snapshots":
            safety.remove(rest, root)
    safety.remove(path / "snapshots", root)
    safety.remove(path, root)


def _remove_hf_revisions(step: Step, root: Path, info) -> None:
    repo_path = step.repo.path
    present = {rev.commit_hash for r in info.repos if r.repo_path == repo_path for rev in r.revisions}
    commits = [r.name for r in step.revisions if r.name in present]
    if not commits:
        return
    strategy = info.delete_revisions(*commits)
    if strategy.repos:  # every revision would go: can only happen if the repo changed since the plan
        raise OSError(f"{repo_path} changed since the plan was made; run the command again")
    for ref in sorted(strategy.refs):
        _require_under(ref, repo_path / "refs")
        safety.remove(ref, root)
    for snapshot in sorted(strategy.snapshots):
        _require_under(snapshot, repo_path / "snapshots")
        safety.remove(snapshot, root)
    for commit in commits:
        safety.remove(repo_path / "trees" / f"{commit}.json", root)
        safety.remove(repo_path / ".no_exist" / commit, root)
    _remove_blobs(sorted(strategy.blobs), repo_path, root)


def _remove_blobs(blobs: list[Path], repo_path: Path, root: Path) -> None:
    """Blob entries of this repo only (a snapshot link planted to point elsewhere names no blob of ours), deleted by
    huggingface_hub's strategy so that a shared-store blob is released the way huggingface_hub expects."""
    from huggingface_hub import DeleteCacheStrategy

    ours = [b for b in blobs if Path(os.path.abspath(b)).parent == repo_path / "blobs" and safety.is_inside(b, root)]
    files = [b for b in ours if not (b.is_dir() and not b.is_symlink())]
    for folder in set(ours) - set(files):
        safety.remove(folder, root)  # never expected in blobs/; rmtree here would still not follow links
    for blob in files:
        safety.make_removable(blob)  # huggingface_hub's deletion gives up on read-only files, as Windows does
    strategy = DeleteCacheStrategy(
        expected_freed_size=0, blobs=frozenset(files), refs=frozenset(), repos=frozenset(),
        snapshots=frozenset(), cache_dir=root,
    )
    with _quiet("huggingface_hub.utils._cache_manager"):
        strategy.execute()
    left = [b for b in files if os.path.lexists(b)]
    if left:  # huggingface_hub logs (with a traceback) and carries on; we report it as one line instead
        raise PermissionError(f"could not delete {left[0]}" + (f" and {len(left) - 1} more" if len(left) > 1 else ""))


def _remove_ms_repo(step: Step, root: Path, _info) -> None:
    path = step.repo.path
    for snapshot in _children(path / "snapshots"):
        safety.remove(snapshot, root)
    safety.remove(path, root)
    if step.repo.layout == "legacy":
        safety.remove_empty_dir(path.parent, root)  # the owner folder of the old layout


def _remove_ms_revisions(step: Step, root: Path, _info) -> None:
    for revision in step.revisions:
        _require_under(revision.path, step.repo.path / "snapshots")
        safety.remove(revision.path, root)


def _remove_partials(step: Step, root: Path, result: CleanResult) -> list[Step]:
    """Each partial checked again right before it goes: one busy download does not hold back the others. No repo
    lock is needed: a partial whose writer is gone is nobody's, and a download that was about to resume it starts
    from nothing instead (store/partials.py takes partials over by rename, which fails cleanly)."""
    skipped, removed = [], []
    for partial in step.partials:
        try:
            busy = safety.partial_busy(partial.lock)
            if busy is not None:
                raise safety.InUse(busy)
            # State files first: a resumer must never find a state file describing bytes that are gone.
            for path in sorted(partial.paths, key=lambda p: not p.name.endswith(".state.json")):
                safety.remove(path, root)
            removed.append(partial)
        except safety.InUse as busy:
            skipped.append(replace(step, partials=(partial,), size=partial.size, note=busy.note))
        except (OSError, safety.UnsafePath) as exc:
            result.failed.append(replace(step, partials=(partial,), size=partial.size, note=_why(exc)))
    if removed:
        result.done.append(replace(step, partials=tuple(removed), size=sum(p.size for p in removed)))
    return skipped


_EXECUTORS = {
    (True, REPO): _remove_hf_repo,
    (True, REVISIONS): _remove_hf_revisions,
    (False, REPO): _remove_ms_repo,
    (False, REVISIONS): _remove_ms_revisions,
}


@contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _require_under(path: Path, folder: Path) -> None:
    if folder not in Path(os.path.abspath(path)).parents:
        raise safety.UnsafePath(f"Refusing to delete {path}: not inside {folder}.", "Please report this bug.")


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder))
    except OSError:
        return []


def _why(exc: BaseException) -> str:
    if isinstance(exc, safety.UnsafePath):
        return exc.message
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc} ({exc.filename})"
    return str(exc)
