"""Repo paths a download target cannot store as they are named, refused before anything is written:

- two paths the target's file system takes for one (`README.md` and `readme.md` where case is ignored; `é` composed
  and decomposed where names are normalised): one file's bytes would be served under the other's name;
- paths Windows cannot store (`aux.json`, `a:b.txt`, `notes.`: fs/winpaths.py), where Windows' rules apply: on
  Windows, on a file system that refuses such names, or with HFGET_WINDOWS_NAMES=1.

Leaving the file out (`--exclude`) is the way around both; the error says exactly which.
"""

from __future__ import annotations

from ..errors import NameCollisionError, UnstorableNameError
from ..fs import winpaths
from ..fs.names import FolderNames, name_collisions, present_exactly
from ..repo import RemoteFile, RepoRef
from .targets import Target

_SHOWN = 5  # files named in the message; the rest are counted


def refuse_name_collisions(target: Target, repo: RepoRef, selected: list[RemoteFile], files) -> None:
    """Refuse, when both would be in the snapshot (both selected, or one selected and the other already there from
    an earlier run), two paths this file system takes for one."""
    pairs = name_collisions([f.path for f in selected], [f.path for f in files])
    if not pairs:
        return
    folder = target.names_folder()
    chosen = {f.path for f in selected}
    pairs = [c for c in pairs if c.second in chosen or present_exactly(folder, c.second)]
    names = FolderNames(folder)
    clash = next((c for c in pairs if names.merges(c)), None)
    if clash is None:
        return  # this file system keeps them apart, or only one of them is wanted
    raise NameCollisionError(
        f"{repo} has two files this cache cannot tell apart: {clash.first!r} and {clash.second!r} ({clash.why}), "
        f"and the file system at {names.folder} {names.describe(clash)}. Downloading both would serve one file's "
        "bytes under the other's name, so nothing was written.",
        f"Leave one out (--exclude {clash.second!r}), or download into a folder on a file system that keeps both "
        "(--cache-dir or --local-dir on a case-sensitive file system).",
    )


def refuse_windows_names(target: Target, repo: RepoRef, selected: list[RemoteFile], forced: bool) -> None:
    """Refuse selected paths Windows cannot store, where its rules apply to the target (`forced`:
    HFGET_WINDOWS_NAMES). The file system is probed only when some path would need it."""
    bad = [(f.path, why) for f in selected if (why := winpaths.path_problem(f.path))]
    if not bad:
        return
    folder = target.names_folder()
    because = winpaths.rules_apply(folder, forced)
    if because is None:
        return
    shown = [f"{path!r} ({why})" for path, why in bad[:_SHOWN]]
    listed = ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]
    if len(bad) > _SHOWN:
        listed += f", and {len(bad) - _SHOWN} more"
    excludes = " ".join(f"--exclude {path!r}" for path, _ in bad[:_SHOWN])
    one = len(bad) == 1
    raise UnstorableNameError(
        f"{repo} has {'a file' if one else f'{len(bad)} files'} Windows cannot store under "
        f"{'its name' if one else 'their names'}: {listed}; {because}. Nothing was written.",
        f"Leave {'it' if one else 'them'} out: {excludes}"
        + (" (and the rest: --exclude takes globs)" if len(bad) > _SHOWN else "")
        + ". Or download on Linux or macOS, into a cache on a file system that keeps such names.",
    )
