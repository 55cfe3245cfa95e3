"""URL helpers shared by the HTTP client, the token policy and the checks: origins, labels, loopback."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..redact import mask_url

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range, a broken [IPv6]: an origin nothing else matches
        return "", "", 0
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def endpoint_problem(url: str) -> str | None:
    """What keeps `url` from being a hub endpoint (http(s)://host[:port][/path]), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "has a port that is not a number from 1 to 65535, or a malformed host"
    if "://" not in url:
        return "has no scheme"
    if parts.scheme.lower() not in ("http", "https"):
        return f"is not an http(s) URL (scheme {parts.scheme[:12]!r})"
    if not parts.hostname or port == 0 or any(c.isspace() for c in url.strip()):
        return "has no valid host"
    return None


def suggested_url(url: str) -> str:
    """The URL the user most likely meant: `hf-mirror.com` -> `https://hf-mirror.com`; for a URL whose port or host
    is broken, the form it must take."""
    value = mask_url(url.strip())
    if "://" not in value:
        return "https://" + value.lstrip("/")
    if endpoint_problem(value) and not endpoint_problem("https://" + value.split("://", 1)[1]):
        return "https://" + value.split("://", 1)[1]
    return "https://HOST or https://HOST:PORT (a port from 1 to 65535), e.g. https://hf-mirror.com"


def host_label(url: str) -> str:
    """`host:port` of a URL, for messages: never the credentials a URL may carry."""
    try:
        netloc = urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        netloc = ""
    return netloc or mask_url(url)


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
