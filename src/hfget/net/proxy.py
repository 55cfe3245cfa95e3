"""Proxies: which one applies to a URL, where that setting came from, and how to show it without its password.

Resolution (DESIGN §6): `--proxy` (setting HFGET_PROXY) for every URL; otherwise HTTPS_PROXY for https URLs and
HTTP_PROXY for http URLs, each falling back to ALL_PROXY (each read lower case first, as requests does: see
`config`); NO_PROXY exempts hosts (exact names, domain suffixes, IPs, CIDR ranges, `*`). Schemes: http, https,
socks5 (local DNS), socks5h (DNS by the proxy), socks4(a). A value without a scheme is taken as `http://`, as
requests, pip and curl take it, with a note. Every other malformed value is a usage error naming the setting and
where it came from, shown with its password masked: nothing here lets a `ValueError` out.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from ..config import Settings
from ..errors import UsageError
from ..redact import mask_url, split_credentials

SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")
EXAMPLE = "http://127.0.0.1:7890 or socks5h://127.0.0.1:1080"
# host[:port], the host a name, an IPv4 address or a bracketed IPv6 address
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[^:]*))?")
_SCHEME_WITHOUT_COLON = re.compile(r"(?i)(https?|socks[45]h?a?)//")
_SCHEME_ONE_SLASH = re.compile(r"(?i)([a-z][a-z0-9+.-]*):/(?!/)")
_USERINFO_SAFE = "!$&'()*+,;=%-._~"  # what may stay unescaped in a user or password (':' and '@' may not)


@dataclass(frozen=True)
class Proxy:
    url: str  # normalised: scheme added when missing, credentials percent-escaped where they would break the URL
    key: str  # the setting it came from: HFGET_PROXY (--proxy), HTTPS_PROXY, ...
    origin: str  # "flag", "env (https_proxy)", ".env (/path/.env)", ...
    note: str | None = None  # how the value was read, when not as written (no scheme)

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def has_credentials(self) -> bool:
        return split_credentials(self.url)[1] is not None

    @property
    def hostport(self) -> str:
        """`host:port` as written: what to put after another scheme."""
        return split_credentials(self.url)[2].split("/", 1)[0]

    def describe(self) -> str:
        return f"{self.masked} ({setting_name(self.key, self.origin)})"


def setting_name(key: str, origin: str) -> str:
    return "--proxy" if key == "HFGET_PROXY" and origin == "flag" else f"{key} from {origin}"


@dataclass(frozen=True)
class ProxyConfig:
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def configured(self) -> bool:
        return self.http is not None or self.https is not None

    def for_url(self, url: str) -> Proxy | None:
        if self.http is None and self.https is None:  # asked twice per small file: no URL parsing when unset
            return None
        parts = urlsplit(url)
        if bypasses(parts.hostname or "", _port(parts), self.no_proxy):
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


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def resolve(settings: Settings) -> ProxyConfig:
    flag = settings["HFGET_PROXY"]
    no_proxy = tuple(p.strip().lower() for p in (settings.get("NO_PROXY") or "").split(",") if p.strip())
    if flag.is_set:
        proxy = parse(flag.value, "HFGET_PROXY", flag.describe())
        return ProxyConfig(http=proxy, https=proxy, no_proxy=no_proxy, notes=_notes(proxy))
    picked: dict[str, Proxy] = {}

    def pick(key: str) -> Proxy | None:
        for name in (key, "ALL_PROXY"):
            value = settings[name]
            if value.is_set:
                if name not in picked:
                    picked[name] = parse(value.value, name, value.describe())
                return picked[name]
        return None

    http, https = pick("HTTP_PROXY"), pick("HTTPS_PROXY")
    return ProxyConfig(http=http, https=https, no_proxy=no_proxy, notes=_notes(*picked.values()))


def _notes(*proxies: Proxy) -> tuple[str, ...]:
    """One note per proxy read otherwise than written (HTTPS_PROXY and HTTP_PROXY often hold the same value)."""
    by_url = {p.url: p.note for p in reversed(proxies) if p.note}
    return tuple(reversed(by_url.values()))


def parse(raw: str, key: str, origin: str) -> Proxy:
    """A proxy setting as the user wrote it -> a `Proxy`, or a usage error naming the setting (never its password)."""
    value = raw.strip().strip("\"'").strip()
    where = setting_name(key, origin)
    shown = mask_url(value)

    def bad(what: str, fix: str) -> UsageError:
        return UsageError(f"The proxy {shown} ({where}) {what}.", fix)

    if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value):
        raise bad("contains spaces or control characters", f"Write it as one URL, e.g. {EXAMPLE}.")
    typo = _SCHEME_WITHOUT_COLON.match(value) or _SCHEME_ONE_SLASH.match(value)
    if typo:
        scheme = typo.group(1).lower()
        raise bad(f"has a malformed scheme (write {scheme}://, with a colon and two slashes)",
                  f"Write it as {scheme}://HOST:PORT, e.g. {EXAMPLE}.")
    note = None
    if "://" not in value:
        value = "http://" + value
        note = (f"The proxy {shown} ({where}) has no scheme: taken as {mask_url(value)}, as requests, pip and curl "
                "take it. Write the scheme to silence this note (http://, or socks5h:// for a SOCKS proxy).")
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in SCHEMES:
        raise bad(f"uses the scheme {scheme[:20]!r}, which hfget does not support",
                  f"Use one of {', '.join(s + '://' for s in SCHEMES)}, e.g. {EXAMPLE}.")
    _, userinfo, address = split_credentials(rest)
    hostport = re.split(r"[/?#]", address, maxsplit=1)[0]
    match = _HOST_PORT.fullmatch(hostport)
    if not match:
        raise bad("has no valid host (write scheme://host:port)", f"Write it as scheme://HOST:PORT, e.g. {EXAMPLE}.")
    port = match.group("port")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise bad(f"has the port {port[:12]!r}, which is not a number from 1 to 65535",
                  f"Write the proxy's port, e.g. {EXAMPLE} (Clash uses 7890, many SOCKS proxies 1080).")
    if scheme.lower().startswith("socks"):
        try:
            import socks  # noqa: F401  (PySocks, from requests[socks])
        except ImportError:
            raise bad("is a SOCKS proxy, and SOCKS support is not installed",
                      "Install it: pip install 'requests[socks]' (it comes with hfget's own install).") from None
    credentials = ""
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        credentials = quote(user, safe=_USERINFO_SAFE) + (":" + quote(password, safe=_USERINFO_SAFE) if colon else "")
        credentials += "@"
    return Proxy(f"{scheme.lower()}://{credentials}{hostport}", key, origin, note)


def basic_auth_header(proxy_url: str) -> dict[str, str]:
    """The Proxy-Authorization header for the credentials in `proxy_url`, as the bytes its percent-escapes stand for.

    requests encodes proxy credentials as latin-1 and raises UnicodeEncodeError on anything else: a Chinese password,
    or an escape that is not UTF-8 (`%80`). Basic auth carries bytes (RFC 7617 names UTF-8); these are the bytes the
    user typed, as curl sends them."""
    parts = urlsplit(proxy_url)
    if parts.username is None:
        return {}
    pair = unquote_to_bytes(parts.username) + b":" + unquote_to_bytes(parts.password or "")
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


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
