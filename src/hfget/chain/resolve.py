"""The first candidate that resolves a repo's snapshot: what a download starts from, and where `cache verify` asks
for a commit's listing when nothing recorded one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import HfgetError, is_fall_through
from ..repo import RepoRef, Snapshot
from .attempts import Attempt, attempt_of, best_error, with_attempts

if TYPE_CHECKING:  # annotations only: importing it would load the transfer stack
    from .route import Candidate


def first_snapshot(
    candidates: list[Candidate], repo: RepoRef, revision: str, attempts: list[Attempt]
) -> tuple[Candidate, Snapshot]:
    """The first candidate that resolves the snapshot; every one tried (or skipped) is recorded in `attempts`."""
    errors: list[HfgetError] = []
    for candidate in candidates:
        if candidate.unreachable is not None:
            attempts.append(attempt_of(candidate, "skipped", f"unreachable: {candidate.unreachable.message}"))
            errors.append(candidate.unreachable)
            continue
        try:
            snapshot = candidate.source.resolve(repo, revision)
        except HfgetError as error:
            attempts.append(attempt_of(candidate, "failed", error.message))
            if not is_fall_through(error):
                raise with_attempts(error, attempts) from None
            errors.append(error)
            continue
        attempts.append(attempt_of(candidate, "ok", candidate.reason))
        return candidate, snapshot
    raise with_attempts(best_error(errors, attempts), attempts)
