"""The simulator's file bodies: ranges, throttling and the fault knobs applied where the bytes go out (corrupt,
reset, truncate, stall, ignored Range, chunked, a wrong Content-Range, status bursts), or a caching mirror's block
store (`sim_blocks`). A mixin of the handler."""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import TYPE_CHECKING

from .sim_types import Fault
from .simrepo import SimFile

if TYPE_CHECKING:
    from .hubsim import HubSimulator


class Abort(Exception):
    """Stop handling this request and drop the connection."""


class FileBodies:
    sim: HubSimulator

    def _status_fault(self, path: str, where: str) -> bool:
        fault = self.sim._take_fault(path, where, ("status",))
        if fault is None:
            return False
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        self._error(fault.status, f"Simulated {fault.status}", None, headers)
        return True

    def _serve_body(self, f: SimFile, path: str, where: str, headers: dict[str, str]) -> None:
        size = f.size
        start, end = 0, size  # [start, end)
        status = 200
        range_header = self.headers.get("Range")
        chunked = self.sim._take_fault(path, where, ("chunked",))
        ignore = self.sim._take_fault(path, where, ("ignore_range",)) if range_header and not chunked else None
        if range_header and not ignore and not chunked:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                return self._send(416, {"Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
        h = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **headers}
        if chunked:
            h["Transfer-Encoding"] = "chunked"
            h.pop("Accept-Ranges")
        else:
            h["Content-Length"] = str(end - start)
        if status == 206:
            h["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            if self.sim._take_fault(path, where, ("bad_content_range",)):
                h["Content-Range"] = f"bytes {start + 1}-{end}/{size}"  # off by one: the body is not what it says
        self.record.status = status
        self.send_response(status)
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if self.sim.block_cache is not None:
            return self._serve_blocks(f, start, end)
        corrupt = self.sim._take_fault(path, where, ("corrupt",), span=(start, end))
        cut = self.sim._take_fault(path, where, ("reset", "truncate", "stall"))
        throttle = self.sim._take_fault(path, where, ("throttle",))
        rate = throttle.rate if throttle else self.sim.rate_limit
        sent = 0
        began = time.monotonic()
        limit = None if cut is None else (max(0, cut.at - start) if cut.at is not None else cut.after)
        if limit == 0:
            self._cut(cut, b"")
        # Slow rates go out in small pieces, ten a second: a trickle, not 64 KiB bursts with long silences between.
        step = 64 * 1024 if not rate or rate >= 640 * 1024 else max(1, int(rate / 10))
        for piece in f.content.iter_range(start, end, step):
            if corrupt and start + sent <= corrupt.offset < start + sent + len(piece):
                i = corrupt.offset - start - sent
                piece = piece[:i] + bytes([piece[i] ^ 0xFF]) + piece[i + 1 :]
            if limit is not None and sent + len(piece) > limit:
                self._cut(cut, piece[: limit - sent])
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            self.record.body_bytes += len(piece)
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    if self.sim._stop.wait(ahead):
                        raise Abort
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _serve_blocks(self, f: SimFile, start: int, end: int) -> None:
        """The body of [start, end) through the mirror's block store: saved blocks at once, the others as their
        fetch goes (see `sim_blocks`)."""
        cache = self.sim.block_cache
        size = cache.block_size
        for index in range(start // size, (end - 1) // size + 1):
            first, last = index * size, min((index + 1) * size, f.size)
            lo, hi = max(start, first), min(end, last)
            block = (f.etag, index)
            if not cache.take(block, self.sim._stop):
                self._body(f.content.read(lo, hi - lo))
                continue
            began = time.monotonic()
            try:
                pos, held_back = lo, max(lo, hi - 64 * 1024)
                while pos < held_back:  # the leader's range streams as the block arrives, but for its last piece
                    arrived = first + int((time.monotonic() - began) * cache.upstream_rate)
                    if arrived > pos:
                        n = min(held_back, arrived) - pos
                        self._body(f.content.read(pos, n))
                        pos += n
                    elif self.sim._stop.wait(0.01):
                        raise Abort
                if not cache.fetch(block, last - first, began, self._client_gone, self.sim._stop):
                    raise Abort
                self._body(f.content.read(pos, hi - pos))
            except BaseException:
                cache.abandon(block, last - first, began)  # (nothing if it was saved)
                raise

    def _body(self, data: bytes) -> None:
        self.wfile.write(data)
        self.record.body_bytes += len(data)

    def _client_gone(self) -> bool:
        """Whether the client hung up (its socket reads as closed), without reading what it may have sent."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _cut(self, cut: Fault, piece: bytes) -> None:
        """Send the last `piece`, then break the connection the way the fault says."""
        self.wfile.write(piece)
        self.record.body_bytes += len(piece)
        self.wfile.flush()
        if cut.kind == "stall":
            self.sim._stop.wait()
        elif cut.kind == "reset":
            # SO_LINGER 0: the peer sees a TCP reset, not a clean close
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raise Abort


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range as [start, end); None if unsatisfiable or malformed."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size) if n > 0 else None
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size or start >= end:
        return None
    return start, end
