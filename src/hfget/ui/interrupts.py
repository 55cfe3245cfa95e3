"""Stop requests other than Ctrl-C treated as Ctrl-C: SIGTERM (what `kill`, `timeout`, systemd and container
runtimes send on POSIX) and SIGBREAK (Ctrl-Break in a Windows console). Each raises KeyboardInterrupt in the main
thread, so a download stops the way Ctrl-C stops it: partial files and their state saved, exit code 130, and the
next run resumes.

Installed only around one command, from the main thread (the only one Python lets set handlers), and put back as
they were afterwards: nothing outlives the call. A signal this process was started with ignored stays ignored. A
second signal while the first is being handled ends the process at once (the default action), as a user sending
it twice means.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = ("SIGTERM", "SIGBREAK")  # whichever of them this platform has


def _as_keyboard_interrupt(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # the next one ends the process without ceremony
    raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """For the duration: SIGTERM / SIGBREAK raise KeyboardInterrupt in the main thread."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is None or signal.getsignal(number) in (signal.SIG_IGN, None):
                continue
            previous[number] = signal.signal(number, _as_keyboard_interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
