"""The simulator's vocabulary: users, fault knobs, canned answers, and the record of every request."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}


@dataclass
class SimUser:
    token: str
    name: str
    orgs: tuple[str, ...] = ()
    role: str = "read"
    gated_access: frozenset[str] = frozenset()  # repo ids whose gate this user passed


@dataclass
class Fault:
    """A misbehaviour applied to requests for repo files whose path matches `match` (fnmatch).

    kind: corrupt (flip a byte at `offset`; only requests whose range contains it count as hits), reset (drop the
    connection after `after` body bytes), truncate (send `after` bytes of a full Content-Length, then close), status
    (answer `status` with optional `retry_after`), ignore_range (answer 200 with the whole body), chunked (answer
    200 with the whole body, chunked, without Content-Length, as some proxies do), stall (send `after` bytes then
    hang), throttle (limit to `rate` bytes/s; API answers too, matched on their URL path), hang (accept, never
    answer), bad_content_range (a 206 whose Content-Range is off by one). With `at` set, reset/truncate/stall
    cut at that absolute file offset instead: the server then never serves past it, however the client resumes (a
    mirror that dies half-way through a file). `where` limits it to "resolve", "cdn" or "any" request; `skip` lets that
    many matching requests pass first; `times` is how many requests it hits (None: all).
    """

    kind: str
    match: str = "*"
    where: str = "any"
    times: int | None = None
    offset: int = 0
    after: int = 0
    at: int | None = None
    status: int = 503
    retry_after: str | None = None
    rate: float = 0.0
    skip: int = 0
    hits: int = 0
    skipped: int = 0

    def applies(self, path: str, where: str) -> bool:
        if self.where not in ("any", where) or not fnmatch.fnmatchcase(path, self.match):
            return False
        return self.times is None or self.hits < self.times


@dataclass
class Override:
    """A canned answer for requests whose URL path matches `match` (fnmatch): hostile or broken metadata."""

    match: str
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    times: int | None = None
    hits: int = 0


@dataclass
class RequestRecord:
    method: str
    host: str
    port: int
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    status: int = 0
    body_bytes: int = 0
    range: str | None = None
    time: float = field(default_factory=time.time)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")
