"""The record of which sources a download tried, and the one error that sums up a failure.

`Attempt`s go into `--json` and the "Sources tried" table; `best_error` picks what to tell the user when no source
served the metadata (what a server said beats a server that could not be reached), and `combined_failure` when some
files could not be had from any source.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import (
    AuthError,
    GatedRepoError,
    HfgetError,
    NetworkError,
    NotFoundError,
    RevisionNotFoundError,
    ServerError,
    UsageError,
)
from ..redact import mask_url

if TYPE_CHECKING:  # annotations only: importing it would load the transfer stack
    from .route import Candidate


@dataclass
class Attempt:
    source: str
    endpoint: str
    outcome: str  # "ok" | "failed" | "skipped" | "partial"
    why: str


def attempt_of(candidate: Candidate, outcome: str, why: str) -> Attempt:
    via = f" via {candidate.proxy.masked}" if candidate.proxy else ""
    return Attempt(candidate.source.name, mask_url(candidate.source.endpoint) + via, outcome, why)


def with_attempts(error: HfgetError, attempts: list[Attempt]) -> HfgetError:
    error.attempts = [dataclasses.asdict(a) for a in attempts]
    return error


def best_error(errors: list[HfgetError], attempts: list[Attempt]) -> HfgetError:
    """The most telling failure: what a server said (gated, not found) beats a server that could not be reached."""
    for kind in (GatedRepoError, AuthError, RevisionNotFoundError, NotFoundError, ServerError):
        for error in errors:
            if isinstance(error, kind):
                return error
    if errors and all(isinstance(e, NetworkError) for e in errors):
        return _no_route(errors, attempts) if len(errors) > 1 else errors[0]
    if errors:
        return errors[0]
    return UsageError("No source to try.", "Pass --source hub, mirror or modelscope (or leave --source out).")


_WHY = {"dns": "DNS lookup failed", "connect": "connection failed", "timeout": "timed out", "tls": "TLS failed"}


def _no_route(errors: list[HfgetError], attempts: list[Attempt]) -> HfgetError:
    """One short sentence for "nothing worked", grouping routes by how they failed (the table has the details)."""
    groups: dict[str, list[str]] = {}
    for error, attempt in zip(errors, attempts):
        if error.kind == "proxy":  # the proxy's own words name it and what it did; then the routes it was to carry
            why = error.message.rstrip(".") + ", for"
            endpoint = attempt.endpoint.split(" via ", 1)[0]
        else:
            why = "connection refused:" if getattr(error, "refused", False) else _WHY.get(error.kind, error.kind) + ":"
            endpoint = attempt.endpoint
        groups.setdefault(why, []).append(endpoint)
    parts = "; ".join(f"{why} {', '.join(endpoints)}" for why, endpoints in groups.items())
    error = copy.copy(errors[0])
    error.message = f"No source could be reached ({parts})."
    error.args = (error.message,)
    error.hint = f"{error.hint} Run `hfget diagnose` to see which route works here and the settings that use it."
    if all(e.kind == "dns" for e in errors):
        error.hint = (
            "No host name resolves here: check the network connection and DNS. If DNS is blocked, a proxy that "
            "resolves names itself works around it (--proxy socks5h://HOST:PORT). `hfget diagnose` tests each route."
        )
    return error


def combined_failure(failed: dict[str, HfgetError], total: int) -> HfgetError:
    first_path, first = next(iter(failed.items()))
    done = total - len(failed)
    kept = f" The other {done} file(s) are in place." if done else ""
    if len(failed) == 1:
        message = f"{first.message}{kept}"
    else:
        message = f"{len(failed)} of {total} files failed; the first, {first_path}: {first.message}{kept}"
    error = copy.copy(first)  # same class and kind (network, integrity...) for callers that branch on it
    error.message, error.args = message, (message,)
    return error
