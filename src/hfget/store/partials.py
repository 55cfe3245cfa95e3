"""Unfinished downloads in a repo's `blobs/` folder: hfget's own, and those huggingface_hub 0.x and 2.x leave.

    blobs/{key}.hfget-{owner}.partial              hfget's partial, written by one download only (`owner`, see
                                                   fs/locks.py: host, pid, random), any byte range at any time
    blobs/{key}.hfget-{owner}.partial.state.json   which of its byte ranges are on disk (several connections)
    blobs/{etag}.incomplete                        huggingface_hub 0.x: resumed by *appending* from its size, so a
                                                   prefix of the file at every instant, by contract
    blobs/{etag}.{8 hex}.incomplete                huggingface_hub 2.x: one per process, deleted on failure, never
                                                   resumed by it; left behind by `kill -9`
    blobs/{etag}.incomplete.state.json             older hfget: its partial had that 0.x name, holes and all

Why hfget's partial has a name of its own (README, "Re-runs and resume"): a partial written by several connections
has holes, and huggingface_hub 0.x would append to any `{etag}.incomplete` and move zeros into the cache. Keeping
`{etag}.incomplete` a valid prefix instead would mean writing out-of-order pieces twice (once aside, once in order),
for every multi-connection download; a name 0.x never opens costs nothing. The name does not end in `.incomplete`
because `hf cache prune` deletes every `blobs/*.incomplete`, live or not, and it is unique per download because
correctness must not depend on `flock` (a no-op on some file systems): two processes never write one file. It stays
inside `blobs/`, so the final move into place is an atomic rename on one file system.

Resuming (`adopt`, under the blob's lock): the partial with the most good bytes wins — an hfget partial whose owner
is dead (taken over by atomic rename: if two runs race, exactly one rename succeeds), a 0.x `{etag}.incomplete`
(taken over by rename: 0.x itself lets whoever holds the blob lock resume it), or a 2.x partial (its prefix is
copied: it belongs to a process that may still be alive where flock does nothing, so it is never touched). Every
byte is checked by the final hash anyway.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..engine.resume_state import pending_bytes, state_path
from ..fs.fileio import open_binary
from ..fs.locks import DOWNLOAD, owner_alive
from ..fs.repo_lock import marker_path

HFGET, HFGET_OLD, HF0, HF2, STATE = "hfget", "hfget-old", "huggingface_hub-0.x", "huggingface_hub-2.x", "state"
CLIENTS = {HFGET: "hfget", HFGET_OLD: "hfget (older version)", HF0: "huggingface_hub 0.x",
           HF2: "huggingface_hub 2.x", STATE: "hfget"}

_STATE = ".state.json"
_HFGET = re.compile(r"^(?P<key>[^.]+)\.hfget-(?P<owner>[0-9a-f]{8}-\d+-[0-9a-f]+)\.partial(?P<state>\.state\.json)?$")
_HF2 = re.compile(r"^(?P<key>[^.]+)\.[0-9a-f]{8}\.incomplete$")
_HF0 = re.compile(r"^(?P<key>[^.]+)\.incomplete(?P<state>\.state\.json)?$")


@dataclass(frozen=True)
class Leftover:
    """One unfinished download: its file, and the state file describing it (hfget's), or a state file alone."""

    path: Path
    key: str  # the blob's content key (its etag in the cache)
    kind: str  # HFGET | HFGET_OLD | HF0 | HF2 | STATE (a state file whose partial is gone)
    owner: str = ""  # the hfget download that wrote it (new-style names only)
    state: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.path,) if self.state is None else (self.state, self.path)  # the state goes first

    @property
    def client(self) -> str:
        return CLIENTS[self.kind]


def is_leftover_name(name: str) -> bool:
    """Whether a name in `blobs/` is an unfinished download (of any client) or its state file."""
    return bool(_HFGET.match(name) or _HF2.match(name) or _HF0.match(name))


def hfget_partial(blobs: Path, key: str, owner: str) -> Path:
    return blobs / f"{key}.hfget-{owner}.partial"


def owner_marker(locks: Path, owner: str) -> Path:
    """The marker of the download `owner` (fs/repo_lock.py): while it lives, so does its partial."""
    return marker_path(locks, DOWNLOAD, owner)


def scan(blobs: Path, keys: set[str] | None = None) -> list[Leftover]:
    """Every unfinished download in `blobs` (of the given content keys only, if any), from one directory listing."""
    try:
        names = sorted(os.listdir(blobs))
    except OSError:
        return []
    states: dict[str, Path] = {}
    files: list[tuple[str, str, str, Path]] = []  # (kind, key, owner, path)
    for name in names:
        if m := _HFGET.match(name):
            kind, owner = HFGET, m["owner"]
        elif m := _HF2.match(name):
            kind, owner = HF2, ""
        elif m := _HF0.match(name):
            kind, owner = HF0, ""
        else:
            continue
        if keys is not None and m["key"] not in keys:
            continue
        if m.groupdict().get("state"):
            states[name[: -len(_STATE)]] = blobs / name
        else:
            files.append((kind, m["key"], owner, blobs / name))
    found = []
    for kind, key, owner, path in files:
        state = states.pop(path.name, None)
        if kind == HF0 and state is not None:
            kind = HFGET_OLD  # hfget wrote it, with holes, under 0.x's name
        found.append(Leftover(path, key, kind, owner, state))
    for name, path in states.items():
        m = _HFGET.match(name)
        found.append(Leftover(path, (m or _HF0.match(name))["key"], STATE, m["owner"] if m else ""))
    return found


def is_dead(leftover: Leftover, locks: Path) -> bool:
    """For hfget's own files: no live download owns it (fs/locks.py's rules; no flock needed)."""
    if not leftover.owner:
        return True
    return not owner_alive(leftover.owner, owner_marker(locks, leftover.owner))


# --- resuming ---------------------------------------------------------------------------------------------------


def best(found: list[Leftover], locks: Path, mine: Path, identity: tuple[int, str, str]) -> tuple[Leftover, int] | None:
    """Of the leftovers `found` of one file, the one holding the most good bytes that this download may resume from,
    and how many."""
    size = identity[0]
    choice: tuple[Leftover, int] | None = None
    for leftover in found:
        if leftover.path == mine or leftover.kind == STATE:
            continue
        if leftover.kind == HFGET and not is_dead(leftover, locks):
            continue  # another download is writing it
        if leftover.kind in (HFGET, HFGET_OLD):
            done = size - pending_bytes(leftover.path, *identity)
        else:
            on_disk = _size(leftover.path)
            done = on_disk if on_disk <= size else 0  # longer than the file: not a prefix of it
        # most bytes first; on a tie, one taken over by rename rather than copied
        if done > 0 and (choice is None or (done, leftover.kind != HF2) > (choice[1], choice[0].kind != HF2)):
            choice = (leftover, done)
    return choice


def adopt(found: list[Leftover], locks: Path, mine: Path, identity: tuple[int, str, str]) -> None:
    """(Under the blob's lock, before `mine` is opened.) Bring the best of the leftovers `found` of one file to
    `mine`. One that went away since it was found (another run took it over, a clean) is simply not there."""
    if os.path.lexists(mine):
        return  # this download's own partial, from a source tried earlier in this run
    found = best(found, locks, mine, identity)
    if found is None:
        return
    leftover, done = found
    if leftover.kind == HF2:
        try:
            _copy_prefix(leftover.path, mine, done)
        except FileNotFoundError:
            pass
        return
    if leftover.state is not None:  # the state first: `mine` never exists without the state describing its holes
        tmp = mine.with_name(mine.name + ".adopting")
        try:
            shutil.copyfile(leftover.state, tmp)
        except FileNotFoundError:
            return
        os.replace(tmp, state_path(mine))
    try:
        os.rename(leftover.path, mine)  # the claim: of two runs racing for it, one rename succeeds
    except FileNotFoundError:
        state_path(mine).unlink(missing_ok=True)  # lost the race: start from nothing
        return
    if leftover.state is not None:
        leftover.state.unlink(missing_ok=True)


def resumable(found: list[Leftover], locks: Path, mine: Path, identity: tuple[int, str, str]) -> tuple[int, bool]:
    """(Read-only.) Good bytes a download would start from, of the leftovers `found` of its file, and whether they
    would be copied."""
    if os.path.lexists(mine):
        return identity[0] - pending_bytes(mine, *identity), False
    chosen = best(found, locks, mine, identity)
    return (chosen[1], chosen[0].kind == HF2) if chosen else (0, False)


def by_key(blobs: Path) -> dict[str, list[Leftover]]:
    """Every leftover in `blobs`, by content key, from one listing (repos have thousands of files: one listing per
    download, not one per file)."""
    grouped: dict[str, list[Leftover]] = {}
    for leftover in scan(blobs):
        grouped.setdefault(leftover.key, []).append(leftover)
    return grouped


def _copy_prefix(src: Path, dst: Path, n: int) -> None:
    """The first `n` bytes of `src` into a new `dst`, by the kernel where it can (a reflink on btrfs/XFS)."""
    with open(src, "rb") as fin:
        fd = open_binary(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            copied = 0
            while copied < n:
                step = _copy_range(fin.fileno(), fd, n - copied)
                if step <= 0:
                    break  # the source is shorter than it was: keep what is there, a shorter prefix
                copied += step
        finally:
            os.close(fd)


def _copy_range(src: int, dst: int, count: int) -> int:
    count = min(count, 1 << 30)
    if hasattr(os, "copy_file_range"):
        try:
            return os.copy_file_range(src, dst, count)
        except OSError:
            pass  # (another file system, an old kernel) the plain way below
    data = os.read(src, min(count, 1 << 20))
    view = memoryview(data)
    while view:
        view = view[os.write(dst, view):]
    return len(data)


# --- when the blob is in place ----------------------------------------------------------------------------------


def sweep(blobs: Path, locks: Path, keys: set[str]) -> None:
    """hfget's own leftovers of blobs now in place, whoever placed them: a partial and state of a dead download,
    an older hfget's partial and state. Other programs' files are theirs (`cache clean --incomplete` takes them
    when their lock is free)."""
    if not keys:
        return
    for leftover in scan(blobs, keys):
        if leftover.kind in (HFGET, HFGET_OLD, STATE) and is_dead(leftover, locks):
            for path in leftover.paths:
                path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
