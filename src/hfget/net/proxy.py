"""Proxies: which one applies to a URL, where that setting came from, and how to show it without its password.

Resolution (DESIGN §6): `--proxy` (setting HFGET_PROXY) for every URL; otherwise HTTPS_PROXY for https URLs and
HTTP_PROXY for http URLs, each falling back to ALL_PROXY; NO_PROXY exempts hosts (exact names, domain suffixes,
IPs, CIDR ranges, `*`). Schemes: http, https, socks5 (local DNS), socks5h (DNS by the proxy), socks4(a).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import UsageError

SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")


@dataclass(frozen=True)
class Proxy:
    url: str
    key: str  # the setting it came from: HFGET_PROXY (--proxy), HTTPS_PROXY, ...
    origin: str  # "flag", "env (https_proxy)", ".env (/path/.env)", ...

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def has_credentials(self) -> bool:
        return bool(urlsplit(self.url).username)

    def describe(self) -> str:
        where = "--proxy" if self.key == "HFGET_PROXY" and self.origin == "flag" else f"{self.key} from {self.origin}"
        return f"{self.masked} ({where})"


@dataclass(frozen=True)
class ProxyConfig:
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return self.http is not None or self.https is not None

    def for_url(self, url: str) -> Proxy | None:
        parts = urlsplit(url)
        if bypasses(parts.hostname or "", parts.port, self.no_proxy):
            return None
        return self.https if parts.scheme == "https" else self.http

    def all(self) -> list[Proxy]:
        seen, out = set(), []
        for proxy in (self.https, self.http):
            if proxy is not None and proxy.url not in seen:
                seen.add(proxy.url)
                out.append(proxy)
        return out


NO_PROXY_CONFIG = ProxyConfig()


def mask_url(url: str) -> str:
    """`socks5h://user:secret@host:1080` -> `socks5h://user:****@host:1080`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def resolve(settings: Settings) -> ProxyConfig:
    flag = settings["HFGET_PROXY"]
    no_proxy = tuple(p.strip().lower() for p in (settings.get("NO_PROXY") or "").split(",") if p.strip())
    if flag.is_set:
        proxy = _validated(Proxy(flag.value.strip(), "HFGET_PROXY", flag.describe()))
        return ProxyConfig(http=proxy, https=proxy, no_proxy=no_proxy)

    def pick(key: str) -> Proxy | None:
        for name in (key, "ALL_PROXY"):
            value = settings[name]
            if value.is_set:
                return _validated(Proxy(value.value.strip(), name, value.describe()))
        return None

    return ProxyConfig(http=pick("HTTP_PROXY"), https=pick("HTTPS_PROXY"), no_proxy=no_proxy)


def _validated(proxy: Proxy) -> Proxy:
    shown = proxy.describe()
    parts = urlsplit(proxy.url)
    example = "socks5h://127.0.0.1:1080 or http://127.0.0.1:7890"
    if "://" not in proxy.url:
        raise UsageError(
            f"The proxy {shown} has no scheme.",
            f"Write it as a URL with a scheme: {example}.",
        )
    if parts.scheme.lower() not in SCHEMES:
        raise UsageError(
            f"The proxy {shown} uses the scheme {parts.scheme!r}, which hfget does not support.",
            f"Use one of {', '.join(SCHEMES)}, e.g. {example}.",
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or port == 0:
        raise UsageError(
            f"The proxy {shown} is not a valid URL (host or port missing or wrong).",
            f"Write it as scheme://host:port, e.g. {example}.",
        )
    if parts.scheme.lower().startswith("socks"):
        try:
            import socks  # noqa: F401  (PySocks, from requests[socks])
        except ImportError:
            raise UsageError(
                f"The proxy {shown} is a SOCKS proxy, and SOCKS support is not installed.",
                "Install it: pip install 'requests[socks]' (it comes with hfget's own install).",
            ) from None
    return proxy


def bypasses(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """NO_PROXY semantics as curl and requests apply them."""
    host = unquote(host).strip("[]").lower()
    for entry in no_proxy:
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name or entry
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False
