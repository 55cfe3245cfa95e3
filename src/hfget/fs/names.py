"""File names a file system may take for one: letter case (macOS APFS and Windows NTFS by default, FAT, ext4 with
casefold) and Unicode normalisation (APFS, HFS+: `é` as one code point or as `e` plus an accent).

The hub keeps `README.md` and `readme.md` apart; such a file system cannot, and a cache on it would quietly serve one
file's bytes under the other's name. `name_collisions` finds the pairs (pure string rules); `FolderNames` asks the
file system where files will land whether it really merges them, so that a case-sensitive Linux cache keeps
downloading such repos.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CASE, UNICODE = "case", "unicode"


@dataclass(frozen=True)
class Collision:
    first: str
    second: str
    needs: frozenset[str]  # what a file system must fold for the two to be one: {CASE}, {UNICODE} or both

    @property
    def why(self) -> str:
        if self.needs == {UNICODE}:
            return "they differ only in how their accented letters are encoded (Unicode NFC vs NFD)"
        if self.needs == {CASE}:
            return "they differ only in letter case"
        return "they differ only in letter case and Unicode encoding"


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _caseless(name: str) -> str:
    """Unicode's canonical caseless form: equal for names that differ in case and normalisation only."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def name_collisions(selected: Iterable[str], every: Iterable[str]) -> list[Collision]:
    """Pairs (a selected path, any other path of the snapshot) that some file system takes for one file. Folders
    count too: `Foo/a.txt` next to a *file* `foo` collides; `Foo/a` and `foo/b` merge harmlessly and do not."""
    every = list(dict.fromkeys(every))
    by_key: dict[str, list[str]] = {}
    folders: dict[str, str] = {}
    for path in every:
        by_key.setdefault(_caseless(path), []).append(path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            folders.setdefault(_caseless("/".join(parts[:i])), "/".join(parts[:i]))
    found = []
    for path in dict.fromkeys(selected):
        key = _caseless(path)
        for other in by_key.get(key, []):
            if other != path:
                found.append(Collision(path, other, _needs(path, other)))
        folder = folders.get(key)
        if folder is not None:
            found.append(Collision(path, folder + "/", _needs(path, folder)))
    return found


def _needs(a: str, b: str) -> frozenset[str]:
    if _nfc(a) == _nfc(b):
        return frozenset({UNICODE})
    if a.casefold() == b.casefold():
        return frozenset({CASE})
    return frozenset({CASE, UNICODE})


def present_exactly(folder: Path, path: str) -> bool:
    """Whether `path` (a folder ends with "/") is in `folder` under exactly that spelling: a plain lookup would
    also find its case-folded twin where the file system ignores case."""
    parent, _, name = path.rstrip("/").rpartition("/")
    try:
        return name in os.listdir(folder.joinpath(*parent.split("/")) if parent else folder)
    except OSError:
        return False


class FolderNames:
    """What the file system holding `folder` (or its nearest existing parent, where the folder will be made)
    folds. Each trait is probed at most once, and only when a collision needs it."""

    def __init__(self, folder: Path) -> None:
        existing = Path(folder)
        while not existing.is_dir() and existing.parent != existing:
            existing = existing.parent
        self.folder = existing
        self._folds: dict[str, bool] = {}

    def merges(self, collision: Collision) -> bool:
        return all(self.folds(trait) for trait in collision.needs)

    def folds(self, trait: str) -> bool:
        if trait not in self._folds:
            self._folds[trait] = _probe_case(self.folder) if trait == CASE else _probe_unicode(self.folder)
        return self._folds[trait]

    def describe(self, collision: Collision) -> str:
        traits = {CASE: "ignores letter case", UNICODE: "normalises Unicode names"}
        return " and ".join(traits[t] for t in sorted(collision.needs))


def _probe_case(folder: Path) -> bool:
    """Look up an entry of `folder` under its other case: no write when the folder has one with a letter in it."""
    try:
        names = os.listdir(folder)
    except OSError:
        names = []
    for name in names:
        if name.isascii() and name.swapcase() != name:
            return _one_file(folder, name, name.swapcase(), names)
    return _probe_with_file(folder, "hfget-case-probe-", str.upper)


def _probe_unicode(folder: Path) -> bool:
    return _probe_with_file(folder, "hfget-nfc-probe-\u00e9-", lambda name: unicodedata.normalize("NFD", name))


def _probe_with_file(folder: Path, prefix: str, variant) -> bool:
    """Create a probe file, look it up under another spelling, delete it. Nothing is left behind."""
    name = f".{prefix}{secrets.token_hex(4)}"
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False  # cannot probe (read-only): nothing will be written there either
    os.close(fd)
    try:
        return _one_file(folder, name, variant(name), None)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _one_file(folder: Path, name: str, other: str, listing: list[str] | None) -> bool:
    """Whether `other` opens the entry `name`: it resolves, yet is no entry of its own in the listing. (Inode
    numbers cannot tell: FUSE file systems may hand out a new one per spelling.)"""
    if not os.path.lexists(folder / other):
        return False
    if listing is None:
        try:
            listing = os.listdir(folder)
        except OSError:
            return False
    return other not in listing
