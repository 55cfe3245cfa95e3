"""What the transfer engine tells its caller while it works. Renderers (progress.py) turn these into output.

Events may arrive from any of the engine's threads; a sink must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import HfgetError


@dataclass(frozen=True)
class TransferStarted:
    files: int
    total_bytes: int  # bytes still to move (partials already on disk are not counted)
    source: str | None = None
    resumed_bytes: int = 0  # bytes already on disk in partials from an earlier run (counted by FileStarted)


@dataclass(frozen=True)
class FileStarted:
    key: str
    size: int
    resumed_from: int = 0  # bytes of this file already on disk when it started


@dataclass(frozen=True)
class FileProgress:
    key: str
    delta: int  # negative when bytes are thrown away (a server that ignored Range, a hash mismatch)


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
