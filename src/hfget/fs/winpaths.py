"""Windows' rules for paths: names it cannot store, and paths longer than MAX_PATH.

Names. The hub keeps any name git does; Windows refuses (or worse, silently changes) these, in any folder:
reserved device names (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`, `CONIN$`, `CONOUT$`, with any
extension: `aux.json` is the AUX device), names ending in a dot or a space (Windows drops them: `a.` is `a`),
`< > : " | ? *`, `\\` and control characters (`a:b.txt` on NTFS is the stream `b.txt` of a file `a`). The rules are
Python 3.13's `os.path.isreserved`, written out here for 3.10+. They apply (`rules_apply`) on Windows always;
elsewhere when HFGET_WINDOWS_NAMES=1 says the cache will be read from Windows (a Samba share, a disk carried over),
or when the cache's file system refuses such names itself (FAT/exFAT, NTFS and SMB mounts), found by a probe.

Long paths. Windows paths are limited to MAX_PATH (260 characters with the terminating NUL; 248 for folders, which
must leave room for an 8.3 name) unless written in the extended form `\\\\?\\C:\\...` (`\\\\?\\UNC\\server\\share\\...`
for network shares). `extended` gives that form; the caller decides by the longest path it will create *including*
the temporary suffixes it adds (huggingface_hub checks the path before adding its `.incomplete` suffix and fails just
under the limit: its issue #4950).
"""

from __future__ import annotations

import ntpath
import os
import secrets
from pathlib import Path

MAX_PATH = 260  # characters, with the terminating NUL
MAX_DIR = 248  # a folder's path must leave room for an 8.3 file name

_RESERVED_CHARS = frozenset(chr(i) for i in range(32)) | frozenset('"*/:<>?\\|')
_RESERVED_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}) | frozenset(
    f"{device}{n}" for device in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"
)


def name_problem(name: str) -> str | None:
    """Why Windows cannot store a file or folder called `name` (one path component), or None."""
    if name[-1:] in (".", " ") and name not in (".", ".."):
        return "Windows drops a trailing dot or space from names"
    bad = sorted({c for c in name if c in _RESERVED_CHARS})
    if bad:
        shown = ", ".join(repr(c) if c.isprintable() else f"\\x{ord(c):02x}" for c in bad)
        return f"Windows does not allow {shown} in names"
    device = name.partition(".")[0].rstrip(" ").upper()
    if device in _RESERVED_NAMES:
        return f"{device} is a reserved device name on Windows, whatever the extension"
    return None


def path_problem(path: str) -> str | None:
    """Why Windows cannot store the repo path `path` ("/"-separated), naming the component at fault, or None."""
    for part in path.split("/"):
        why = name_problem(part)
        if why:
            return why if part == path else f"{why} ({part!r})"
    return None


def rules_apply(folder: Path, forced: bool, *, windows: bool | None = None) -> str | None:
    """Why Windows' name rules apply to files written under `folder`, or None when they do not."""
    if windows if windows is not None else os.name == "nt":
        return "this cache is on Windows"
    if forced:
        return "HFGET_WINDOWS_NAMES is set (this cache is meant to be read from Windows too)"
    if refuses_windows_names(folder):
        return f"the file system at {folder} refuses such names (a Windows file system: FAT, exFAT, NTFS, SMB)"
    return None


def refuses_windows_names(folder: Path) -> bool:
    """(Not on Windows, where ':' names a data stream.) Whether the file system holding `folder`, or its nearest
    existing parent, refuses a ':' in a file name: create one, delete it."""
    existing = Path(folder)
    while not existing.is_dir() and existing.parent != existing:
        existing = existing.parent
    probe = existing / f".hfget-name-probe-{secrets.token_hex(4)}:x"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except PermissionError:  # EPERM is how vfat refuses a name, and also how a read-only folder refuses any
        return _refused_by_name(existing)
    except OSError:  # EINVAL, EILSEQ...: the name
        return True
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return False


def _refused_by_name(folder: Path) -> bool:
    """EPERM (fusefat, vfat) is also what a read-only folder says: it is the name only if a plain one works."""
    plain = folder / f".hfget-name-probe-{secrets.token_hex(4)}"
    try:
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(plain)
    except OSError:
        pass
    return True


def extended(path: str | Path, *, windows: bool | None = None) -> str:
    """`path` in Windows' extended-length form (absolute), or unchanged off Windows and when already extended."""
    text = str(path)
    if not (windows if windows is not None else os.name == "nt") or text.startswith("\\\\?\\"):
        return text
    absolute = ntpath.abspath(text) if os.name == "nt" else ntpath.normpath(text)
    if absolute.startswith("\\\\"):  # a share: \\server\share\... -> \\?\UNC\server\share\...
        return "\\\\?\\UNC\\" + absolute[2:]
    return "\\\\?\\" + absolute


def plain(path: str | Path) -> str:
    """The form users know, for messages: `extended` undone."""
    text = str(path)
    if text.startswith("\\\\?\\UNC\\"):
        return "\\\\" + text[len("\\\\?\\UNC\\"):]
    return text[len("\\\\?\\"):] if text.startswith("\\\\?\\") else text


def too_long(file_paths: list[int], dir_paths: list[int]) -> bool:
    """Whether paths of these lengths (files, with their temporary suffixes; folders) need the extended form."""
    return max(file_paths, default=0) >= MAX_PATH or max(dir_paths, default=0) >= MAX_DIR
