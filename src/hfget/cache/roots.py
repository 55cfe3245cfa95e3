"""Which folders are the caches, and whether hfget may touch them at all.

A cache root is refused outright when it is `/`, the home directory (or above it), or a folder that does not look
like the cache it is claimed to be: a mistyped `--cache-dir ~` must never turn into "delete everything in my home".
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import DEFAULT, DERIVED, DOTENV, ENV, FLAG, Settings, Value, expand_path
from ..errors import UsageError
from .model import CACHE_NAMES, HF, MS, CacheRoot

HF_REPO_PREFIXES = ("models--", "datasets--", "spaces--", "kernels--")
MS_TOP_DIRS = ("models", "datasets", "studios", "hub", ".lock")
MS_LEGACY_MARKERS = (".mdl", ".msc", ".mv")  # files the ModelScope SDK <= 1.37 kept in every repo folder
_IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini"}


def modelscope_cache(settings: Settings) -> Value:
    """MODELSCOPE_CACHE, else `~/.cache/modelscope` (modelscope-hub's default; older SDKs used `.../modelscope/hub`,
    which the scanner finds below it)."""
    value = settings["MODELSCOPE_CACHE"]
    if value.is_set:
        return Value(str(expand_path(value.value, settings.home)), value.origin, value.where)
    return Value(str(settings.home / ".cache" / "modelscope"), DEFAULT)


def resolve_roots(settings: Settings, only: str | None = None) -> tuple[CacheRoot, ...]:
    """The cache roots to work on, each checked. Raises UsageError for a root hfget must not touch."""
    if only is not None and only not in CACHE_NAMES:
        raise UsageError(f"Unknown cache {only!r}.", f"Use --only {' or --only '.join(CACHE_NAMES)}.")
    hf_key = next((k for k in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if settings[k].is_set), "HF_HUB_CACHE")
    wanted = {HF: (settings.hub_cache, hf_key, "--cache-dir"),
              MS: (modelscope_cache(settings), "MODELSCOPE_CACHE", "--modelscope-cache")}
    roots = []
    for name, (value, key, flag) in wanted.items():
        if only and name != only:
            continue
        where = describe(value, key, flag)
        if name == HF and value.origin == DERIVED:  # from HF_HOME (or XDG_CACHE_HOME): say where *that* came from
            home = settings.hf_home
            if home.origin == DERIVED:
                where = describe(settings["XDG_CACHE_HOME"], "XDG_CACHE_HOME", flag) + " + /huggingface/hub"
            else:
                where = describe(home, "HF_HOME", flag) + " + /hub"
        roots.append(check_root(name, value, settings.home, flag, where))
    return tuple(roots)


def describe(value: Value, key: str, flag: str) -> str:
    """Where a cache location came from, in the words a user would look for: '--cache-dir', 'HF_HUB_CACHE in
    /proj/.env', 'MODELSCOPE_CACHE in the environment', 'default'."""
    if value.origin == FLAG:
        return flag
    if value.origin == ENV:
        return f"{key} in the environment"
    if value.origin == DOTENV:
        return f"{key} in {value.where}"
    return value.describe()


def check_root(name: str, value: Value, home: Path, flag: str, where: str) -> CacheRoot:
    given = Path(value.value).expanduser()
    path = Path(os.path.realpath(given))
    real_home = Path(os.path.realpath(home))
    if path == Path(path.anchor) or path == real_home or path in real_home.parents:
        what = "/" if path == Path(path.anchor) else "your home directory or above it"
        raise UsageError(
            f"{given} (the {_label(name)} cache, from {where}) is {what}; hfget refuses to treat it as a cache.",
            f"Point {flag} (or {_env_key(name)}) at the cache folder itself, e.g. {_example(name)}.",
        )
    if not path.exists():
        if value.origin == FLAG:
            raise UsageError(
                f"The {_label(name)} cache directory {given} (given with {flag}) does not exist.",
                f"Check the path; without {flag}, hfget uses {_env_key(name)} or {_example(name)}.",
            )
        return CacheRoot(name, path, where, exists=False, default=value.origin == DEFAULT)
    if not path.is_dir():
        raise UsageError(
            f"The {_label(name)} cache {given} (from {where}) is a file, not a directory.",
            f"Point {flag} (or {_env_key(name)}) at the cache directory.",
        )
    if not _recognisable(name, path):
        raise UsageError(
            f"{given} (from {where}) does not look like a {_label(name)} cache ({_what_is_expected(name)}); "
            "hfget will not list or delete anything in it.",
            f"Point {flag} (or {_env_key(name)}) at the cache folder itself, e.g. {_example(name)}; "
            f"or leave this cache out with --only {HF if name == MS else MS}.",
        )
    return CacheRoot(name, path, where, exists=True, default=value.origin == DEFAULT)


def _recognisable(name: str, path: Path) -> bool:
    try:
        children = [c for c in os.scandir(path) if c.name not in _IGNORED]
    except OSError:
        return False
    if not children:
        return True  # an empty folder: nothing to list, nothing to delete
    names = {c.name for c in children}
    if name == HF:
        return (
            "CACHEDIR.TAG" in names
            or ".locks" in names
            or any(c.name.startswith(HF_REPO_PREFIXES) for c in children)  # a repo folder may be a symlink
        )
    if names & set(MS_TOP_DIRS):
        return True
    # The flat layout of old SDKs (MODELSCOPE_CACHE/{owner}/{name}/.mdl): recognisable only by those marker files.
    return any(
        (c.path and os.path.isfile(os.path.join(c.path, repo.name, marker)))
        for c in children if c.is_dir(follow_symlinks=False)
        for repo in _subdirs(c.path)
        for marker in MS_LEGACY_MARKERS
    )


def _subdirs(path: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _label(name: str) -> str:
    return "Hugging Face" if name == HF else "ModelScope"


def _env_key(name: str) -> str:
    return "HF_HUB_CACHE" if name == HF else "MODELSCOPE_CACHE"


def _example(name: str) -> str:
    return "~/.cache/huggingface/hub" if name == HF else "~/.cache/modelscope"


def _what_is_expected(name: str) -> str:
    if name == HF:
        return "no models--*/datasets--* folders, no .locks, no CACHEDIR.TAG"
    return "no models/, datasets/ or hub/ folder, no repo folders with ModelScope's .mdl/.msc files"
