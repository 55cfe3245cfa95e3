"""Reading a bundle's tar without trusting it: its manifest, its members' layout, each blob's bytes in order.

`tarfile` parses the headers; around it, this module checks what tarfile would let through: extension headers
(pax, GNU long names) declaring huge sizes that tarfile would read into memory, members that are not plain files
(symlinks, hard links, devices, sparse files), names and sizes other than the manifest's, members beyond the end of
the file (a truncated copy), bytes that are not zero where the format says zero (block padding, the end), and extra
members. Nothing here writes: the importer stages bytes only after `scan()` passed.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BundleError, UsageError
from .manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, BundleBlob, Manifest, parse, pax_record

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20
MAX_EXTENSION_HEADER = 1 << 20  # pax / GNU long-name headers: tarfile reads them whole into memory
MAX_TRAILER = 1 << 20  # end-of-archive zero blocks plus record padding (10 KiB for tar, GNU tar and Python)
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                    tarfile.SOLARIS_XHDTYPE)


@dataclass(frozen=True)
class Member:
    blob: BundleBlob
    offset: int  # where its bytes start in the bundle file


@dataclass(frozen=True)
class Layout:
    """A bundle whose structure checked out: the manifest and where each blob's bytes are."""

    path: Path
    size: int
    manifest: Manifest
    members: tuple[Member, ...]


def read_manifest(path: Path) -> tuple[Manifest, int]:
    """(manifest, bundle size), reading only the first member."""
    with _open(path) as (fh, tar, size):
        return _manifest(fh, tar, path)[0], size


def scan(path: Path) -> Layout:
    """The manifest and every member's place, checked against each other (headers only: no blob is read)."""
    with _open(path) as (fh, tar, size):
        manifest, first = _manifest(fh, tar, path)
        members: list[Member] = []
        for blob in manifest.blobs:
            info = _next(fh, tar, path)
            if info is None:
                raise _truncated(path, f"it ends after {len(members)} of its {len(manifest.blobs)} files")
            _check_member(info, blob, path, size)
            members.append(Member(blob, info.offset_data))
        extra = _next(fh, tar, path)
        if extra is not None:
            raise _hostile(path, f"it holds a member {_shown(extra.name)} its manifest does not list "
                                 f"(or lists elsewhere)")
        end = members[-1].offset + members[-1].blob.size if members else first.offset_data + first.size
        _check_trailer(fh, path, size, end + (-end % BLOCK))
        return Layout(path, size, manifest, tuple(members))


def read_blob(path: Path, member: Member) -> Iterator[memoryview]:
    """The member's bytes in chunks (one reused buffer: constant memory), then a check that its padding is zero.

    A chunk is only valid until the next one is read."""
    size = member.blob.size
    buffer = bytearray(CHUNK)
    with open(path, "rb") as fh:
        fh.seek(member.offset)
        remaining = size
        while remaining:
            view = memoryview(buffer)[: min(CHUNK, remaining)]
            n = fh.readinto(view)
            if not n:
                raise _truncated(path, f"{member.blob.member} stops after {size - remaining} of {size} bytes")
            remaining -= n
            yield view[:n]
        padding = -size % BLOCK
        if padding and fh.read(padding) != bytes(padding):
            raise _damaged(path, f"the padding after {member.blob.member} is not zero")


# --- the pieces -------------------------------------------------------------------------------------------------


class _open:
    """Context manager: (file, TarFile, size); a missing file is a usage error, a non-tar a bundle error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        try:
            self.fh = open(self.path, "rb")
        except FileNotFoundError:
            raise UsageError(f"There is no bundle at {self.path}.", "Check the path of the .tar file.") from None
        except IsADirectoryError:
            raise UsageError(f"{self.path} is a folder, not a bundle.", "Give the path of the .tar file.") from None
        except OSError as exc:
            raise UsageError(f"The bundle {self.path} cannot be read ({exc.strerror}).",
                             "Check the file's permissions.") from None
        try:
            size = os.fstat(self.fh.fileno()).st_size
            _check_extension_headers(self.fh, 0, self.path, size)
            self.fh.seek(0)  # tarfile starts reading where the file position is
            self.tar = tarfile.open(fileobj=self.fh, mode="r:")
        except (tarfile.TarError, EOFError):
            self.fh.close()
            raise BundleError(f"{self.path} is not a tar file (or its first header is damaged).",
                              "Give the .tar file `hfget bundle export` wrote; copy it again if it was.") from None
        except BaseException:
            self.fh.close()
            raise
        return self.fh, self.tar, size

    def __exit__(self, *exc) -> None:
        self.fh.close()


def _manifest(fh, tar: tarfile.TarFile, path: Path) -> tuple[Manifest, tarfile.TarInfo]:
    first = tar.next()  # the member tarfile read when it opened the file
    if first is None or first.name != MANIFEST_NAME or first.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise BundleError(
            f"{path} is a tar file but not an hfget bundle: its first member is not {MANIFEST_NAME}.",
            "Make bundles with `hfget bundle export`; a tar of a cache folder cannot be checked file by file.",
        )
    if first.size > MAX_MANIFEST_BYTES:
        raise _hostile(path, f"its manifest declares {first.size} bytes (at most {MAX_MANIFEST_BYTES} are read)")
    fh.seek(first.offset_data)
    raw = fh.read(first.size)
    if len(raw) != first.size:
        raise _truncated(path, "it ends inside its manifest")
    padding = -first.size % BLOCK
    if padding and fh.read(padding) != bytes(padding):
        raise _damaged(path, "the padding after its manifest is not zero")
    if first.pax_headers.get("comment") != pax_record(raw)["comment"]:
        raise _damaged(path, "its manifest does not match the hash recorded with it")
    return parse(raw, str(path)), first


def _next(fh, tar: tarfile.TarFile, path: Path) -> tarfile.TarInfo | None:
    size = os.fstat(fh.fileno()).st_size
    if tar.offset + BLOCK > size:  # the file ends where the next header should be: a truncated copy
        return None
    try:
        _check_extension_headers(fh, tar.offset, path, size)
        return tar.next()
    except (tarfile.TarError, EOFError) as exc:
        raise _damaged(path, f"a tar header after byte {tar.offset} is damaged ({type(exc).__name__})") from None


def _check_extension_headers(fh, offset: int, path: Path, size: int) -> None:
    """Refuse pax / GNU long-name headers larger than MAX_EXTENSION_HEADER before tarfile reads them whole, and
    check what tarfile skips over in them: pax records must each end where their length says, with a newline, and
    the padding after them must be zero (tar headers have a checksum; these bytes have none)."""
    for _ in range(8):
        fh.seek(offset)
        header = fh.read(BLOCK)
        if len(header) < BLOCK or header[156:157] not in _EXTENSION_TYPES:
            return
        try:
            declared = tarfile.nti(header[124:136])
        except tarfile.InvalidHeaderError:
            return  # tarfile reports the damaged header itself
        if not 0 <= declared <= MAX_EXTENSION_HEADER or offset + BLOCK + declared > size:
            raise _hostile(path, f"a tar extension header at byte {offset} declares {declared} bytes")
        data = fh.read(declared + (-declared % BLOCK))
        if data[declared:].strip(b"\0") or (header[156:157] in (tarfile.XHDTYPE, tarfile.XGLTYPE)
                                             and not _pax_records_whole(data[:declared])):
            raise _damaged(path, f"the tar extension header at byte {offset} is malformed")
        offset += BLOCK + len(data)
    raise _hostile(path, f"a chain of more than 8 tar extension headers starts before byte {offset}")


def _pax_records_whole(data: bytes) -> bool:
    """`LENGTH KEY=VALUE\n` records that tile `data` exactly."""
    pos = 0
    while pos < len(data):
        digits = data[pos : pos + 20].split(b" ", 1)[0]
        if not digits.isdigit():
            return False
        length = int(digits)
        record = data[pos : pos + length]
        if length <= len(digits) + 1 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            return False
        pos += length
    return True


def _check_member(info: tarfile.TarInfo, blob: BundleBlob, path: Path, size: int) -> None:
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or info.sparse is not None:
        kinds = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
                 tarfile.BLKTYPE: "a device", tarfile.DIRTYPE: "a folder", tarfile.FIFOTYPE: "a pipe"}
        kind = kinds.get(info.type, f"a member of tar type {info.type!r}")
        raise _hostile(path, f"{_shown(info.name)} is {kind}, not a plain file")
    if info.name != blob.member:
        raise _hostile(path, f"its member {_shown(info.name)} is not the next file its manifest lists "
                             f"({blob.member})")
    if info.size != blob.size:
        raise _hostile(path, f"{blob.member} is {info.size} bytes in the tar but {blob.size} in the manifest")
    if info.offset_data + info.size > size:
        raise _truncated(path, f"{blob.member} needs {info.offset_data + info.size} bytes; the file has {size}")


def _check_trailer(fh, path: Path, size: int, end: int) -> None:
    """After the last member only zero blocks may follow (the end-of-archive marker and record padding)."""
    if size - end > MAX_TRAILER:
        raise _hostile(path, f"{size - end} bytes follow its last file")
    fh.seek(end)
    if fh.read(max(0, size - end)).strip(b"\0"):
        raise _damaged(path, "the bytes after its last file are not the zero blocks that end a tar")


def _shown(name: str) -> str:
    return repr(name[:120])


def _damaged(path: Path, what: str) -> BundleError:
    return BundleError(
        f"The bundle {path} is damaged: {what}. Nothing was imported.",
        "Copy the bundle again from the machine that made it and compare its sha256sum with the original's.",
    )


def _truncated(path: Path, what: str) -> BundleError:
    return BundleError(
        f"The bundle {path} is truncated: {what}. Nothing was imported.",
        "The copy is incomplete (an interrupted transfer, a full disk?): copy the whole file again and compare "
        "its size with the original's.",
    )


def _hostile(path: Path, what: str) -> BundleError:
    return BundleError(
        f"The bundle {path} is refused: {what}. Nothing was written.",
        "This file was not made by `hfget bundle export`, or was altered after; do not use it. Export the bundle "
        "again on a machine you trust.",
    )
