"""`hfget cache list` and `hfget cache clean`: one view over the Hugging Face and ModelScope caches.

    scan(settings, ...)        -> CacheScan   (what is cached, selected, sorted)
    plan_clean(settings, ...)  -> CleanPlan   (what would be deleted, and how many bytes; nothing deleted yet)
    plan.execute()             -> CleanResult

Library code only: returns data, never prints, never prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..config import Settings
from .clean import CleanPlan, CleanRequest, CleanResult, plan_clean
from .model import HF, MS, CachedRepo, CacheRoot, CacheScan, Partial, Revision
from .roots import resolve_roots

__all__ = [
    "HF", "MS", "CacheRoot", "CacheScan", "CachedRepo", "CleanPlan", "CleanRequest", "CleanResult", "Partial",
    "Revision", "plan_clean", "scan", "scan_all",
]


def scan(
    settings: Settings,
    *,
    only: str | None = None,
    patterns: Sequence[str] = (),
    filters: Sequence[str] = (),
    sort: str = "name",
) -> CacheScan:
    """The cached repos matching `patterns` (ids or globs) and every filter, sorted. Bad input fails before any
    folder is read."""
    from . import select

    parsed = [select.parse_filter(f) for f in filters]
    sort_key, descending = select.parse_sort(sort)
    found = scan_all(resolve_roots(settings, only))
    repos = select.by_patterns(found.repos, patterns) if patterns else list(found.repos)
    repos = select.sort(select.apply(repos, parsed), sort_key, descending)
    return replace(found, repos=tuple(repos), scanned=len(found.repos))


def scan_all(roots: Sequence[CacheRoot]) -> CacheScan:
    from . import hf_scan, ms_scan

    repos: list[CachedRepo] = []
    sizes: dict[str, int] = {}
    notes: list[str] = []
    hf_info = None
    for root in roots:
        if not root.exists:
            if root.default:
                continue  # most people have no ModelScope cache: the header line says "not there", enough
            notes.append(f"No {'Hugging Face' if root.name == HF else 'ModelScope'} cache at {root.path} "
                         f"(from {root.origin}).")
            continue
        if root.name == HF:
            found, sizes[HF], hf_info = hf_scan.scan(root)
        else:
            found = ms_scan.scan(root)
            sizes[MS] = sum(r.size for r in found)
        repos.extend(found)
    return CacheScan(tuple(roots), tuple(repos), sizes, tuple(notes), scanned=len(repos), hf_info=hf_info)
