"""Choosing repos: id globs, `--filter` expressions and `--sort`, shared by `cache list` and `cache clean`.

Filter syntax (`--filter`, repeatable, all must hold), close to `hf cache ls --filter`:
    size>1GB  size<=500MB        bytes on disk (kB/MB/GB/TB decimal, KiB/MiB/GiB binary)
    accessed>30d  modified<12h   age of the last access / modification (s, min, h, d, w, y; a bare number is days)
    files>100  revisions>1       counts
    kind=dataset  cache=modelscope  source=mirror  refs=main  id=Qwen/*   equality (and != ); `id` takes a glob
"""

from __future__ import annotations

import difflib
import fnmatch
import operator
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import UsageError
from ..units import parse_duration, parse_size
from .model import CACHE_NAMES, CachedRepo

_EXPR = re.compile(r"^\s*([a-zA-Z_]+)\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "=": operator.eq, "==": operator.eq, "!=": operator.ne,
}
_NUMERIC = {
    "size": lambda r, now: r.size,
    "files": lambda r, now: r.files,
    "revisions": lambda r, now: len(r.revisions),
    "accessed": lambda r, now: now - last_used(r),
    "modified": lambda r, now: now - r.last_modified,
}
_TEXT = {
    "kind": lambda r: [r.kind], "type": lambda r: [r.kind], "cache": lambda r: [r.cache],
    "source": lambda r: list(r.sources), "refs": lambda r: list(r.refs), "id": lambda r: names(r),
}
FILTER_HELP = "size>1GB, accessed>30d, modified<12h, files>100, revisions>1, kind=dataset, cache=modelscope, " \
              "source=mirror, refs=main, id='Qwen/*'"
SORT_KEYS = ("size", "name", "accessed", "modified")


def last_used(repo: CachedRepo) -> float:
    """Last access, or the last modification if that is later (atime is off or lazy on many mounts)."""
    return max(repo.last_accessed, repo.last_modified)


def names(repo: CachedRepo) -> list[str]:
    """Every spelling that names this repo: `owner/name`, `dataset/owner/name`, `datasets/owner/name`."""
    return [repo.repo_id, f"{repo.kind}/{repo.repo_id}", f"{repo.kind}s/{repo.repo_id}"]


def matches(repo: CachedRepo, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    return any(fnmatch.fnmatchcase(n.lower(), pattern) for n in names(repo))


@dataclass(frozen=True)
class Filter:
    text: str
    test: Callable[[CachedRepo, float], bool]


def parse_filter(text: str) -> Filter:
    match = _EXPR.match(text)
    if not match:
        raise _bad_filter(text, "expected KEY OP VALUE, e.g. size>1GB")
    key, op, raw = match.group(1).lower(), match.group(2), match.group(3).strip("'\"")
    compare = _OPS[op]
    if key in _NUMERIC:
        get = _NUMERIC[key]
        try:
            if key == "size":
                value: float = parse_size(raw)
            elif key in ("accessed", "modified"):
                value = parse_duration(raw)
            else:
                value = int(raw)
        except ValueError:
            unit = {"size": "a size like 500MB or 2GiB", "accessed": "an age like 30d or 12h",
                    "modified": "an age like 30d or 12h"}.get(key, "a whole number")
            raise _bad_filter(text, f"{raw!r} is not {unit}") from None
        return Filter(text, lambda r, now: compare(get(r, now), value))
    if key in _TEXT:
        if op not in ("=", "==", "!="):
            raise _bad_filter(text, f"'{key}' takes = or !=, not {op}")
        if key == "cache" and raw.lower() not in CACHE_NAMES:
            raise _bad_filter(text, f"cache is {' or '.join(CACHE_NAMES)}")
        get_text = _TEXT[key]
        wanted = raw.lower()
        negate = op == "!="
        return Filter(
            text, lambda r, now: negate != any(fnmatch.fnmatchcase(v.lower(), wanted) for v in get_text(r))
        )
    close = difflib.get_close_matches(key, [*_NUMERIC, *_TEXT], n=1)
    raise _bad_filter(text, f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


def _bad_filter(text: str, why: str) -> UsageError:
    return UsageError(f"Malformed filter {text!r}: {why}.", f"Filters look like: {FILTER_HELP}.")


def apply(repos: Iterable[CachedRepo], filters: Sequence[Filter], now: float | None = None) -> list[CachedRepo]:
    now = time.time() if now is None else now
    return [r for r in repos if all(f.test(r, now) for f in filters)]


def by_patterns(repos: Sequence[CachedRepo], patterns: Sequence[str]) -> list[CachedRepo]:
    """Repos named by any of `patterns` (ids or globs). A pattern that names nothing is an error: a typo must not
    quietly shrink (or, for `clean`, silently change) what a command works on."""
    chosen: dict[int, CachedRepo] = {}
    for pattern in patterns:
        hits = [r for r in repos if matches(r, pattern)]
        if not hits:
            raise _unknown(pattern, repos)
        chosen.update((id(r), r) for r in hits)
    return [r for r in repos if id(r) in chosen]


def _unknown(pattern: str, repos: Sequence[CachedRepo]) -> UsageError:
    known = sorted({r.key for r in repos})
    close = difflib.get_close_matches(pattern, known, n=3, cutoff=0.5)
    if close:
        hint = "Did you mean " + ", ".join(close) + "? `hfget cache list` shows every cached repo."
    elif known:
        hint = "`hfget cache list` shows every cached repo; globs such as 'Qwen/*' work too."
    else:
        hint = "The caches are empty; check --cache-dir / --modelscope-cache (or HF_HUB_CACHE / MODELSCOPE_CACHE)."
    return UsageError(f"No cached repo matches {pattern!r}.", hint)


def parse_sort(text: str) -> tuple[str, bool]:
    """'size' -> ("size", descending); 'name:desc', 'accessed:asc'. Defaults: biggest, newest first; names A-Z."""
    key, _, order = text.strip().lower().partition(":")
    if key not in SORT_KEYS or order not in ("", "asc", "desc"):
        raise UsageError(
            f"Cannot sort by {text!r}.",
            f"Use --sort with one of {', '.join(SORT_KEYS)}, optionally followed by :asc or :desc (e.g. size:asc).",
        )
    return key, (order or ("asc" if key == "name" else "desc")) == "desc"


def sort(repos: Iterable[CachedRepo], key: str, descending: bool) -> list[CachedRepo]:
    keys: dict[str, Callable[[CachedRepo], object]] = {
        "size": lambda r: r.size + r.partial_size,
        "name": lambda r: (r.repo_id.lower(), r.kind, r.cache),
        "accessed": last_used,
        "modified": lambda r: r.last_modified,
    }
    return sorted(repos, key=keys[key], reverse=descending)
