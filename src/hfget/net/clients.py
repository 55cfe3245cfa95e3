"""The one place that turns settings into HTTP clients: downloads, verify, diagnose and token-check all build them
here, so timeouts, the CA bundle, retries and the per-host connection cap mean the same everywhere."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .http import HttpClient, RetryPolicy
from .proxy import ProxyConfig


def client_factory(settings: Settings, *, timeout: float | None = None) -> Callable[[ProxyConfig], HttpClient]:
    """A client per proxy route. `timeout` given (a diagnosis, a token check): that timeout for connecting and
    reading, and one attempt per request, so the first failure is reported instead of retried away."""
    verify: bool | str = settings.get("REQUESTS_CA_BUNDLE") or True
    if timeout is None:
        connect, read = settings.seconds("HFGET_CONNECT_TIMEOUT"), settings.seconds("HFGET_READ_TIMEOUT")
        attempts = settings.retries
    else:
        connect, read, attempts = timeout, timeout, 1
    per_host = settings.max_per_host
    return lambda proxy: HttpClient(
        proxy=proxy, verify=verify, connect_timeout=connect, read_timeout=read, retry=RetryPolicy(attempts=attempts),
        max_per_host=per_host,
    )
