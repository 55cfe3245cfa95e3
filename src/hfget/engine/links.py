"""Where a file's requests go: its resolve URL, or the link that URL redirected to, shared by every connection.

A hub answers a file's resolve URL with a redirect to a CDN: a signed link that expires (about an hour on the hub's
Xet bridge; checked when a request starts, so a response already flowing continues) or, on some CDNs, is signed for
the one byte range it was issued for. Pieces go straight to the link once it has served a range (a round trip less
each), and when the link is refused (401/403/404/410 from the link, not from the hub) it is stale:

- one connection re-resolves (its next request goes through the resolve URL and its redirect), the others wait for
  the fresh link and then go on with their pieces from where they were: one resolve per expiry, not one per
  connection, and none of it is a failure of the file;
- a link refused at once (within `PER_RANGE_WINDOW` of being issued) when it had served only the range it was
  issued with is signed per range: from then on every request goes through the resolve URL, which signs a link for
  that request's range. (Connections waiting for a fresh link try it within milliseconds; links that expire live
  minutes to hours on real CDNs, and more than a second in the tests.)

A refusal of a request sent to the resolve URL itself is the hub's answer (an auth error, a missing file): the
caller reports it as such.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

REFUSED = (401, 403, 404, 410)  # what a CDN answers for an expired or foreign signature (S3: 403 AccessDenied)
_WAIT_STEP = 0.05  # how often a waiting connection looks at the stop flag
PER_RANGE_WINDOW = 0.5  # seconds: a link refused this soon after it served its first range is signed for that range


class LinkStopped(Exception):
    """The file stopped (failed, cancelled) while a connection waited for a fresh link."""


class SharedLink:
    def __init__(self, resolve_url: str) -> None:
        self.resolve_url = resolve_url
        self._cond = threading.Condition()
        self._link: str | None = None  # the redirect target pieces go to; None: through the resolve URL
        self.epoch = 0  # bumped whenever the link changes, so a refusal of an old link is not counted twice
        self._uses = 0  # ranges the current link has served
        self._issued = 0.0  # when it served its first one
        self._refresher: object | None = None  # the connection re-resolving right now
        self.per_range = False

    def target(self, who: object, stopped: Callable[[], bool]) -> tuple[str, int]:
        """The URL for `who`'s next request, and the epoch to report back with. Waits while another connection
        fetches a fresh link."""
        with self._cond:
            while self._refresher is not None and self._refresher is not who:
                if stopped():
                    raise LinkStopped
                self._cond.wait(_WAIT_STEP)
            if self._link is None or self._refresher is who:
                return self.resolve_url, self.epoch
            return self._link, self.epoch

    def answered(self, who: object, epoch: int, url: str, final_url: str) -> None:
        """A request to `url` (at `epoch`) got the bytes it asked for, from `final_url` after any redirects."""
        with self._cond:
            if url == self.resolve_url:
                if self._refresher is who or (self._link is None and epoch == self.epoch):
                    self._refresher = None
                    self._link = None if self.per_range or final_url == url else final_url
                    self.epoch += 1
                    self._uses, self._issued = 1, time.monotonic()
                    self._cond.notify_all()
            elif epoch == self.epoch:
                self._uses += 1

    def refused(self, who: object, epoch: int) -> None:
        """A request to the shared link (at `epoch`) was refused: it is stale."""
        with self._cond:
            if epoch != self.epoch or self._link is None:
                return  # already replaced (or being replaced): the next request uses what is current
            if self._uses <= 1 and time.monotonic() - self._issued < PER_RANGE_WINDOW:
                self.per_range = True
                self._link = None
                self.epoch += 1
                self._cond.notify_all()
                return
            if self._refresher is None:
                self._refresher = who

    def reset(self) -> None:
        """Start over from the resolve URL (the file restarts: its bytes may have come from a bad node)."""
        with self._cond:
            self._link = None
            self.epoch += 1
            self._cond.notify_all()

    def done_with(self, who: object) -> None:
        """`who` stops (finished, failed): if it was re-resolving without success, another connection takes over."""
        with self._cond:
            if self._refresher is who:
                self._refresher = None
                self._cond.notify_all()
