"""The byte engine: moves files from URLs into verified local files. Knows nothing of hubs, caches or Rich.

Each `FileJob` says where the bytes are (`url`), how many there must be (`size`), what they must hash to
(`digest`), where the resumable partial lives, and what to do with the verified file (`deliver`). The engine
downloads several files at once, resumes a partial left by an earlier run (any source: the partial is keyed by the
content hash, not the URL), hashes while it writes, and hands a file over only when size and hash match. Progress
goes out as events to a callback; the caller decides how to show them.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DiskError, HfgetError, IntegrityError, Interrupted, NetworkError, ProtocolError, ServerError
from .fsutil import disk_errors, file_size
from .http import HttpClient, TokenGrant, host_label

CHUNK = 1 << 20
PROGRESS_STEP = 256 * 1024


# --- events ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferStarted:
    files: int
    total_bytes: int  # bytes still to move (partials already on disk are not counted)
    source: str | None = None


@dataclass(frozen=True)
class FileStarted:
    key: str
    size: int
    resumed_from: int = 0


@dataclass(frozen=True)
class FileProgress:
    key: str
    delta: int  # may be negative when a server ignored Range and bytes are thrown away


@dataclass(frozen=True)
class FileRetrying:
    key: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class FileFinished:
    key: str
    size: int
    downloaded: int  # bytes received over the network in this run for this file


@dataclass(frozen=True)
class FileFailed:
    key: str
    error: HfgetError


@dataclass(frozen=True)
class TransferFinished:
    downloaded: int
    elapsed: float


@dataclass(frozen=True)
class SourceSwitch:
    """Emitted by the download orchestrator (not the engine) when another source takes over remaining files."""

    source: str
    reason: str


Event = (
    TransferStarted | FileStarted | FileProgress | FileRetrying | FileFinished | FileFailed | TransferFinished
    | SourceSwitch
)
EventSink = Callable[[Event], None]


# --- jobs -----------------------------------------------------------------------------------------------------


class Digest:
    """Streaming hash: sha256 (LFS files) or git's blob sha1 (`sha1("blob {size}\\0" + content)`)."""

    def __init__(self, algo: str, expected: str, size: int) -> None:
        if algo not in ("sha256", "git-sha1"):
            raise ValueError(algo)
        self.algo, self.expected, self.size = algo, expected, size
        self.reset()

    def reset(self) -> None:
        if self.algo == "sha256":
            self._h = hashlib.sha256()
        else:
            self._h = hashlib.sha1(b"blob %d\0" % self.size)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def matches(self) -> bool:
        return self._h.hexdigest() == self.expected

    @property
    def actual(self) -> str:
        return self._h.hexdigest()

    @classmethod
    def of_file(cls, path: Path, algo: str, expected: str, size: int) -> bool:
        """Whether the file at `path` hashes to `expected` (read in chunks: constant memory)."""
        digest = cls(algo, expected, size)
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    digest.update(block)
        except OSError:
            return False
        return digest.matches()


@dataclass
class FileJob:
    key: str
    url: str
    size: int
    algo: str
    expected: str
    partial: Path
    deliver: Callable[[Path], None]  # moves the verified partial into place
    already_done: Callable[[], bool] = lambda: False  # checked under the lock: another process may have finished
    lock: Path | None = None
    grant: TokenGrant | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Turns an HTTP error response into the source's own error (the engine knows no hub semantics).
    explain: Callable[[object], HfgetError] | None = None


@dataclass
class TransferReport:
    done: list[str] = field(default_factory=list)
    downloaded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, HfgetError] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def bytes_downloaded(self) -> int:
        return sum(self.downloaded.values())


# --- engine ---------------------------------------------------------------------------------------------------


class _Cancelled(Exception):
    pass


class Transfer:
    """Runs jobs on `max_workers` daemon threads. Per-file failures are collected; fatal ones stop everything."""

    def __init__(
        self,
        client: HttpClient,
        *,
        max_workers: int = 8,
        on_event: EventSink | None = None,
        attempts: int = 5,
        lock_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.max_workers = max_workers
        self.emit = on_event or (lambda event: None)
        self.attempts = attempts
        self.lock_timeout = lock_timeout
        self.cancel = threading.Event()

    def run(self, jobs: Sequence[FileJob], *, source: str | None = None) -> TransferReport:
        report = TransferReport()
        started = time.monotonic()
        pending = sum(max(0, j.size - file_size(j.partial)) for j in jobs)
        self.emit(TransferStarted(files=len(jobs), total_bytes=pending, source=source))
        work: queue.Queue[FileJob | None] = queue.Queue()
        for job in jobs:
            work.put(job)
        fatal: list[BaseException] = []
        lock = threading.Lock()

        def worker() -> None:
            while not self.cancel.is_set():
                try:
                    job = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    with disk_errors(job.partial.parent):
                        downloaded = self._fetch(job)
                except _Cancelled:
                    return
                except HfgetError as error:
                    with lock:
                        report.failed[job.key] = error
                    self.emit(FileFailed(job.key, error))
                    if isinstance(error, DiskError):
                        fatal.append(error)  # disk full, permissions: no other file can succeed either
                        self.cancel.set()
                except BaseException as error:  # a bug: stop everything and let the CLI report it
                    fatal.append(error)
                    self.cancel.set()
                else:
                    with lock:
                        report.done.append(job.key)
                        report.downloaded[job.key] = downloaded

        threads = [
            threading.Thread(target=worker, name=f"hfget-transfer-{i}", daemon=True)
            for i in range(min(self.max_workers, max(1, len(jobs))))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.cancel.set()
            self.client.close()  # unblocks reads so partials are left consistent quickly
            for thread in threads:
                thread.join(timeout=5)
            raise Interrupted(
                "Interrupted. Finished files are in the cache; partial files were kept.",
                "Run the same command again to resume where it stopped.",
            ) from None
        report.elapsed = time.monotonic() - started
        self.emit(TransferFinished(report.bytes_downloaded, report.elapsed))
        if fatal:
            raise fatal[0]
        return report

    # --- one file -------------------------------------------------------------------------------------------

    def _fetch(self, job: FileJob) -> int:
        if job.lock is None:
            return self._fetch_unlocked(job)
        from filelock import FileLock, Timeout

        job.lock.parent.mkdir(parents=True, exist_ok=True)
        file_lock = FileLock(str(job.lock))
        deadline = None if self.lock_timeout is None else time.monotonic() + self.lock_timeout
        while True:  # poll so Ctrl-C and cancellation stay responsive while another process holds the blob
            try:
                file_lock.acquire(timeout=0.5)
                break
            except Timeout:
                if self.cancel.is_set():
                    raise _Cancelled from None
                if deadline is not None and time.monotonic() > deadline:
                    raise ServerError(
                        f"Another process has been downloading {job.key} for too long (lock {job.lock}).",
                        "Wait for the other hfget/huggingface_hub process to finish, or stop it.",
                    ) from None
        try:
            return self._fetch_unlocked(job)
        finally:
            file_lock.release()

    def _fetch_unlocked(self, job: FileJob) -> int:
        if job.already_done():
            self.emit(FileStarted(job.key, job.size, job.size))
            self.emit(FileFinished(job.key, job.size, 0))
            return 0
        digest = Digest(job.algo, job.expected, job.size)
        have = self._resume_point(job, digest)
        self.emit(FileStarted(job.key, job.size, have))
        downloaded = 0
        bad_hash = 0
        attempt = 0
        while True:
            if have < job.size:
                try:
                    got, have = self._stream(job, digest, have)
                    downloaded += got
                except NetworkError as error:
                    # The hasher saw exactly the bytes that reached the partial, so we resume from its size.
                    attempt += 1
                    have = file_size(job.partial)
                    if attempt >= self.attempts or getattr(error, "refused", False):
                        raise
                    self.emit(FileRetrying(job.key, attempt, error.message))
                    self._sleep(self.client.retry.delay(attempt - 1, None))
                    continue
            if digest.matches():
                break
            bad_hash += 1
            job.partial.unlink(missing_ok=True)
            if bad_hash >= 2:
                raise IntegrityError(
                    f"{job.key} from {host_label(job.url)} does not match its expected {job.algo} "
                    f"({job.expected[:16]}..., got {digest.actual[:16]}...), twice. The bad bytes were discarded; "
                    "nothing entered the cache.",
                    "The server (or something between you and it) is corrupting data; use another source.",
                )
            self.emit(FileRetrying(job.key, bad_hash, f"hash mismatch ({job.algo}); downloading again"))
            self.emit(FileProgress(job.key, -have))
            digest.reset()
            have = 0
        if job.size == 0:
            job.partial.parent.mkdir(parents=True, exist_ok=True)
            job.partial.touch()  # an empty file has nothing to stream but still needs a file to deliver
        job.deliver(job.partial)
        self.emit(FileFinished(job.key, job.size, downloaded))
        return downloaded

    def _resume_point(self, job: FileJob, digest: Digest) -> int:
        """Hash what a previous attempt (or run) left on disk; drop it if it cannot be a prefix of the file."""
        digest.reset()
        size = file_size(job.partial)
        if size > job.size:
            job.partial.unlink(missing_ok=True)
            return 0
        if size:
            with open(job.partial, "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    digest.update(block)
        return size

    def _stream(self, job: FileJob, digest: Digest, have: int) -> tuple[int, int]:
        """GET the rest of the file from `have` on; returns (bytes received, bytes now on disk)."""
        headers = {"Accept-Encoding": "identity", **job.headers}
        if have:
            headers["Range"] = f"bytes={have}-"
        response = self.client.request("GET", job.url, headers=headers, grant=job.grant, stream=True)
        with response:
            status = response.status_code
            if status == 416 and have:
                # The server says our partial is not a prefix of its file: start over.
                job.partial.unlink(missing_ok=True)
                digest.reset()
                self.emit(FileProgress(job.key, -have))
                return 0, 0
            if status not in (200, 206):
                raise job.explain(response) if job.explain else _status_error(response, job)
            if status == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != have:
                    raise ProtocolError(
                        f"{host_label(response.url)} answered a request for bytes {have}- of {job.key} with "
                        f"Content-Range {response.headers.get('Content-Range')!r}.",
                        "The server's range support is broken; use another source.",
                    )
                mode = "ab"
            else:
                if have:  # Range ignored: the body starts at byte 0, so the partial is rewritten
                    self.emit(FileProgress(job.key, -have))
                digest.reset()
                have = 0
                mode = "wb"
            received = 0
            unreported = 0
            job.partial.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(job.partial, mode) as out:
                    for block in self.client.iter_body(response, CHUNK):
                        if self.cancel.is_set():
                            raise _Cancelled
                        if have + received + len(block) > job.size:
                            raise ProtocolError(
                                f"{host_label(response.url)} sent more than the {job.size} bytes of {job.key}.",
                                "The server is serving a different file than it listed; use another source.",
                            )
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        unreported += len(block)
                        if unreported >= PROGRESS_STEP:  # bound the event rate, whatever the read size
                            self.emit(FileProgress(job.key, unreported))
                            unreported = 0
            finally:
                if unreported:
                    self.emit(FileProgress(job.key, unreported))
            if have + received < job.size:
                raise _short_body(response, job, have + received)
            return received, have + received

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise _Cancelled


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/1000"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _short_body(response, job: FileJob, have: int):
    from .errors import ConnectError

    return ConnectError(
        f"{host_label(response.url)} closed the connection after {have} of {job.size} bytes of {job.key}.",
        "Run the same command again: the partial file is kept and the download resumes.",
    )


def _status_error(response, job: FileJob) -> HfgetError:
    from .errors import AuthError

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
