"""One connection's work: fetch the bytes of one segment of a file, writing them as they arrive.

The request asks for exactly the segment (`Range: bytes=a-b`), so a fully read response leaves the keep-alive
connection in the pool for the next piece. A segment whose tail was stolen stops at its new end and closes its
connection (the server would keep sending bytes that now belong to another connection). The read timeout is the
stall timeout: a connection that delivers nothing for that long is dropped and its range handed out again.
Requests go to the file's shared link (`links.py`): a refusal from a CDN link fetches a fresh one, a refusal from
the hub is the hub's answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..errors import HfgetError, ProtocolError, ServerError, UnreachableRedirect
from ..net.http import RETRY_STATUS, HttpClient
from ..net.urls import host_label
from .events import FileProgress
from .file_task import FileTask, Stop
from .links import REFUSED, LinkStopped
from .segments import Segment

READ_SIZE = 256 * 1024  # upper bound of one read; loopback and real links deliver less per call
PROGRESS_STEP = 256 * 1024


class Retry(Exception):
    """The server answered with a status worth retrying later (429/5xx after the client's own retries, an odd
    answer to one piece). `crowded`: a refusal that, among parallel ranges, says the server wants fewer."""

    def __init__(self, error: HfgetError, retry_after: str | None = None, *, crowded: bool = False) -> None:
        super().__init__(error.message)
        self.error, self.retry_after, self.crowded = error, retry_after, crowded


class _StaleLink(Exception):
    """The shared link was refused: ask again with a fresh one (not a failure)."""


@dataclass(eq=False)
class Lease:
    """A connection's hold on a task. `segment` changes when the server ignores Range (the whole body is taken)."""

    task: FileTask
    segment: Segment
    sent_at: float = 0.0  # when its latest request went out: failures of requests sent together are one wave
    last_byte: float = 0.0  # when it last received bytes (monotonic)
    first_bytes: list[float] = field(default_factory=list)  # seconds each of its requests waited for its answer


def range_header(segment: Segment, size: int) -> str | None:
    if segment.open_ended or segment.end >= size:
        return None if segment.pos == 0 else f"bytes={segment.pos}-"
    return f"bytes={segment.pos}-{segment.end - 1}"


def fetch(lease: Lease, client: HttpClient, *, stall_timeout: float, cancel: threading.Event, emit) -> bool:
    """Fetch the lease's segment to its end. Returns True if this connection wrote the file's last missing byte.

    Raises NetworkError or Retry for failures worth another attempt, Stop when the task no longer needs this
    connection, and other HfgetErrors when the file cannot be had from this source.
    """
    task = lease.task
    job = task.job

    def stopped() -> bool:
        return cancel.is_set() or task.finished

    try:
        while lease.segment.remaining > 0:
            if cancel.is_set():
                raise Stop
            url, epoch = task.link.target(lease, stopped)
            headers = {"Accept-Encoding": "identity", **job.headers}
            asked = range_header(lease.segment, task.size)
            if asked:
                headers["Range"] = asked
            lease.sent_at = time.monotonic()
            if lease.segment.pos == lease.segment.start:  # its wait for a first byte starts now (not while it
                lease.segment.began = lease.sent_at  # waited for a fresh link): see server_limits.HoldWatch
            try:
                response = client.request(
                    "GET", url, headers=headers, grant=job.grant, stream=True,
                    timeout=(client.timeout[0], stall_timeout),
                )
            except UnreachableRedirect as error:
                raise job.explain_unreachable(error) if job.explain_unreachable else error from None
            lease.first_bytes.append(time.monotonic() - lease.sent_at)  # redirects included: what a file waits
            with response:
                if cancel.is_set():  # stopped while this request was on its way
                    raise Stop
                try:
                    _check_response(lease, response, asked, url != task.link.resolve_url, response.url != url, epoch)
                except _StaleLink:
                    continue
                task.link.answered(lease, epoch, url, response.url)
                received, completed = _stream(lease, response, client, cancel, emit)
            if completed:
                return True
            if received == 0 and lease.segment.remaining > 0:
                raise ServerError(
                    f"{host_label(response.url)} sent an empty body for bytes {asked or 'all'} of {task.key}.",
                    "The server is failing; try again later or use another source.",
                )
        return False
    except LinkStopped:
        raise Stop from None
    finally:
        task.link.done_with(lease)


def _check_response(lease: Lease, response, asked: str | None, via_link: bool, redirected: bool, epoch: int) -> None:
    task = lease.task
    status = response.status_code
    if status in REFUSED and via_link:
        task.link.refused(lease, epoch)  # expired, or signed for another range
        raise _StaleLink
    if status in REFUSED and redirected:  # the hub's fresh link was refused at once
        raise Retry(_link_refused(task, response))
    if status == 416 and lease.segment.pos > 0:
        if task.ranges_seen:
            raise Retry(_odd_answer(task, response, asked, "HTTP 416 (range not satisfiable)"))
        task.restart_fresh(lease.segment, "HTTP 416")
        raise Stop  # the connection ends; the scheduler hands out a new first request
    if status not in (200, 206):
        error = _explain(task, response)
        if status in RETRY_STATUS:
            raise Retry(error, response.headers.get("Retry-After"), crowded=status in (429, 503))
        raise error
    if status == 200:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != task.size:
            raise ProtocolError(
                f"{host_label(response.url)} sent {length} bytes for {task.key}, which the listing says has "
                f"{task.size}.",
                "The server is serving a different file than it listed; use another source.",
            )
        if asked:  # Range ignored: this response is the whole file, from byte 0
            if task.ranges_seen:  # ...by a server that did answer ranges: one bad answer, not a reason to restart
                raise Retry(_odd_answer(task, response, asked, "the whole file (HTTP 200)"))
            lease.segment = task.restart_whole_body(lease.segment)
        return
    start, total = _content_range(response.headers.get("Content-Range"))
    if start != lease.segment.pos or (total is not None and total != task.size):
        raise ProtocolError(
            f"{host_label(response.url)} answered a request for bytes {asked} of {task.key} with Content-Range "
            f"{response.headers.get('Content-Range')!r} (the file has {task.size} bytes).",
            "The server's range support is broken, or it serves another file; use another source.",
        )
    task.confirm_ranges(lease.segment)


def _odd_answer(task: FileTask, response, asked: str | None, what: str) -> ServerError:
    return ServerError(
        f"{host_label(response.url)} answered a request for bytes {asked} of {task.key} with {what}, after serving "
        "ranges of it.",
        "A server or cache node on the way is misbehaving; hfget asks again, and keeps what it has.",
    )


def _link_refused(task: FileTask, response) -> ServerError:
    return ServerError(
        f"{host_label(response.url)} refused the download link that {host_label(task.job.url)} had just given for "
        f"{task.key} (HTTP {response.status_code}).",
        "A fresh link should not be refused (is this machine's clock far off?); try again later or use another "
        "source.",
    )


def _stream(lease: Lease, response, client: HttpClient, cancel: threading.Event, emit) -> tuple[int, bool]:
    task = lease.task
    received = unreported = 0
    completed = False
    try:
        for block in client.iter_body(response, READ_SIZE):
            lease.last_byte = time.monotonic()
            if cancel.is_set():
                raise Stop
            at, take = task.claim(lease.segment, len(block))
            if take:
                completed = task.write(lease.segment, at, memoryview(block)[:take]) or completed
                received += take
                unreported += take
                if unreported >= PROGRESS_STEP:  # bound the event rate, whatever the read size
                    emit(FileProgress(task.key, unreported))
                    unreported = 0
            if take < len(block):
                break  # the rest belongs to another connection (stolen) or beyond the file: drop the connection
    finally:
        if unreported:
            emit(FileProgress(task.key, unreported))
    return received, completed


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """("bytes 100-199/1000") -> (100, 1000); the total is None when the server sent "*"."""
    if not value or not value.startswith("bytes "):
        return None, None
    try:
        span, _, total = value[6:].partition("/")
        return int(span.split("-", 1)[0]), (int(total) if total.strip().isdigit() else None)
    except ValueError:
        return None, None


def _explain(task: FileTask, response) -> HfgetError:
    job = task.job
    if job.explain is not None:
        return job.explain(response)
    from ..errors import AuthError

    status = response.status_code
    host = host_label(response.url)
    if status in (401, 403):
        return AuthError(
            f"{host} refused {job.key} (HTTP {status}).",
            "The file needs a token that this source accepts; see the repo's access page.",
        )
    return ServerError(
        f"{host} answered HTTP {status} for {job.key}" + (" after retries." if status >= 429 else "."),
        "The server is failing; try again later or use another source.",
    )

