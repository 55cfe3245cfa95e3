"""One error hierarchy for everything hfget can tell a user went wrong.

Every error carries a one-paragraph *message* (what happened), a *hint* (the fix that will work) and an *exit code*.
The CLI boundary renders them; library code raises them and never prints. Subclasses exist per failure kind so the
source chain can decide what to fall through on (network trouble) and what to stop on (bad input, full disk).
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class HfgetError(Exception):
    """Base of every error hfget reports to a user."""

    exit_code: int = EXIT_FAILURE
    kind: str = "error"

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        self.attempts: list[dict[str, str]] = []  # the sources tried before giving up (see attempts.Attempt)
        self.notes: list[str] = []  # what the run had to say before it failed (a token sent to another host, ...)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "message": self.message, "hint": self.hint, "exit_code": self.exit_code}
        if self.attempts:
            data["attempts"] = self.attempts
        if self.notes:
            data["notes"] = self.notes
        return data

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} Hint: {self.hint}"


class UsageError(HfgetError):
    """The user asked for something malformed (repo id, option value, path)."""

    exit_code = EXIT_USAGE
    kind = "usage"


# --- reaching a server ------------------------------------------------------------------------------------------


class NetworkError(HfgetError):
    """The server could not be reached or the connection broke. A source chain falls through on these."""

    kind = "network"


class DnsError(NetworkError):
    kind = "dns"


class ConnectError(NetworkError):
    kind = "connect"

    def __init__(self, message: str, hint: str | None = None, *, refused: bool = False) -> None:
        super().__init__(message, hint)
        self.refused = refused  # nothing listens there: retrying the same host is pointless


class TlsError(NetworkError):
    kind = "tls"


class NetworkTimeout(NetworkError):
    kind = "timeout"


class ProxyError(NetworkError):
    kind = "proxy"


class UnreachableRedirect(NetworkError):
    """A server redirected a request to another host (a CDN) that cannot be reached from here: the server itself
    answers, the host it sends the bytes from does not. `cause` is the failure at that host."""

    kind = "redirect"

    # (Defaults only so that copy.copy, which re-creates an exception from its args, works; callers give them all.)
    def __init__(self, message: str, hint: str | None = None, *, origin_url: str = "", target_url: str = "",
                 cause: NetworkError | None = None, why: str = "") -> None:
        super().__init__(message, hint)
        self.origin_url, self.target_url, self.cause = origin_url, target_url, cause
        self.why = why  # "which does not resolve here (DNS lookup failed)", ...


class ServerError(HfgetError):
    """The server answered, but with 5xx/429 after retries or with something that is not the hub protocol."""

    kind = "server"


class ProtocolError(ServerError):
    """A response that breaks the protocol: malformed JSON, unsafe paths, missing headers, a body of the wrong size."""

    kind = "protocol"


# --- what the hub said ------------------------------------------------------------------------------------------


class AuthError(HfgetError):
    """The token is missing, invalid, or does not open this repo."""

    kind = "auth"


class GatedRepoError(AuthError):
    kind = "gated"


class InvalidTokenError(AuthError):
    """The hub refused the token itself (invalid, expired, revoked): every request with it fails, public or not."""

    kind = "invalid_token"


class NotFoundError(HfgetError):
    kind = "not_found"


class RepoNotFoundError(NotFoundError):
    kind = "repo_not_found"


class RevisionNotFoundError(NotFoundError):
    kind = "revision_not_found"


class EntryNotFoundError(NotFoundError):
    kind = "entry_not_found"


class NotCachedError(NotFoundError):
    """Not in the local cache, where it is needed without the network (`local_files_only`, `HF_HUB_OFFLINE=1`, a
    bundle export)."""

    kind = "not_cached"


# --- local side -------------------------------------------------------------------------------------------------


class IntegrityError(HfgetError):
    """Bytes arrived but their hash is not the one the hub promised. They never enter the cache."""

    kind = "integrity"


class BundleError(IntegrityError):
    """A bundle that is damaged, truncated, tampered with or hostile. Refused before anything enters the cache."""

    kind = "bundle"


class DiskError(HfgetError):
    kind = "disk"


class DiskFullError(DiskError):
    kind = "disk_full"


class CachePermissionError(DiskError):
    kind = "permission"


class CacheBusyError(HfgetError):
    """Another process (a `cache clean`) holds the repo the download would write."""

    kind = "cache_busy"


class NameCollisionError(HfgetError):
    """Two paths of the snapshot name one file on this file system (case, or Unicode normalisation)."""

    kind = "name_collision"


class UnstorableNameError(NameCollisionError):
    """A path of the snapshot that the cache cannot store under its name (Windows' rules: `aux.json`, `a:b.txt`)."""

    kind = "unstorable_name"


class Interrupted(HfgetError):
    exit_code = EXIT_INTERRUPTED
    kind = "interrupted"


def is_fall_through(error: BaseException) -> bool:
    """Whether another source may succeed where this one failed (DESIGN §6).

    Network trouble, server failures, a mirror's 404, a gate or a refused token may all go better elsewhere. Bad
    input, a full disk, permissions, a busy or unfit cache and interrupts stop the chain: no other source changes
    them.
    """
    stops = (UsageError, DiskError, CacheBusyError, NameCollisionError, Interrupted)
    return isinstance(error, HfgetError) and not isinstance(error, stops)
