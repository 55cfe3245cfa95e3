"""The verdict of `hfget diagnose`: which route to use, and the exact settings that make every download take it.

The verdict starts from the settings the checks found broken (an endpoint or proxy that is not a URL, a `.env` line
that is not KEY=VALUE, a cache folder that is a file): each with its fix, before any advice about routes, since no
route advice helps while they stand. The route recommended is the first that works in the download's own order (`route.plan`), preferring one that
has the probe repo. The fix is written as `.env` lines (hfget reads `.env`; so does any tool started through
python-dotenv), as the same variables set in each shell asked for (`shell_lines`: PowerShell and cmd on Windows
by default, quoted by shells.py so the shell takes them literally), and as the equivalent hfget flags, plus the
settings to remove because they point at something dead. Settings already in effect from the environment or `.env`
are not repeated; ones given as flags are, so they can be made permanent. Proxy passwords stay masked: the user
writes their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..config import DEFAULT, DOTENV, ENV, FLAG, Settings
from ..net.proxy import ProxyConfig, mask_url
from ..net.proxy import resolve as resolve_proxies
from .checks import FAIL, Check
from .netcheck import RouteReport
from .shells import Assignment, ShellQuoteError, comment, line

LAYER_NAMES = {"proxy": "the proxy", "dns": "DNS", "tcp": "TCP connect", "tls": "TLS", "http": "HTTP (API)",
               "speed": "throughput"}


@dataclass
class Verdict:
    ok: bool
    headline: str
    route: str | None = None  # label of the recommended route
    env_lines: list[str] = field(default_factory=list)  # add these to .env
    remove: list[str] = field(default_factory=list)  # settings that point at something dead: "HTTPS_PROXY (.env (/p))"
    flags: list[str] = field(default_factory=list)  # the same as hfget flags, for one run
    env_file: str | None = None  # the .env in use, where the lines go; None: there is none yet
    failures: list[str] = field(default_factory=list)  # each route that fails: its failing layer and why
    advice: list[str] = field(default_factory=list)
    fix_first: list[str] = field(default_factory=list)  # settings the checks found broken, each with its fix
    shell_lines: dict[str, list[str]] = field(default_factory=dict)  # env_lines, as each shell asked for sets them


BROKEN_GROUPS = ("settings", "conflicts", "cache")  # where a failed check is a setting to fix, not a route


def verdict(settings: Settings, routes: list[RouteReport], checks: list[Check], repo: str,
            shells: tuple[str, ...] = ()) -> Verdict:
    fix_first = [f"{c.detail}. Fix: {c.hint}" if c.hint else c.detail for c in checks
                 if c.status == FAIL and c.group in BROKEN_GROUPS]
    found = _verdict(settings, routes, checks, repo)
    found.fix_first = fix_first
    found.shell_lines = {shell: in_shell(found.env_lines, shell) for shell in shells if found.env_lines}
    return found


def in_shell(env_lines: list[str], shell: str) -> list[str]:
    """`.env` lines (KEY=value) as `shell` sets the same variables for the session; a comment in place of a value
    the shell cannot take literally (cmd and `%NAME%`, say)."""
    out = []
    for text in env_lines:
        name, _, value = text.partition("=")
        try:
            out.append(line(Assignment(name, value), shell))
        except ShellQuoteError as error:
            out.append(comment(f"{name}: {error}; use the .env line", shell))
    return out


def _verdict(settings: Settings, routes: list[RouteReport], checks: list[Check], repo: str) -> Verdict:
    # The details are in each route's layers (and the routes table); this is the one-line summary per route.
    failures = [f"{r.label}: fails at {LAYER_NAMES.get(r.failed.name, r.failed.name)}" for r in routes
                if not r.works and r.failed]
    env_file = str(settings.env_file) if settings.env_file else None
    broken = {c.subject: c for c in reversed(checks) if c.group == "proxy" and c.status == FAIL and c.subject}
    dead = set(broken)
    if not routes:
        return Verdict(False, "Nothing could be tested: fix the settings above, then run hfget diagnose again.",
                       env_file=env_file)
    working = [r for r in routes if r.works]
    if not working:
        return Verdict(False, "No route works from here: every endpoint failed, at the layer named for each.",
                       env_file=env_file, failures=failures, remove=_dead_settings(settings, routes, dead),
                       advice=_advice_when_nothing_works(settings, routes, broken, checks))
    best = next((r for r in working if r.serves_repo), working[0])
    lines, remove, flags = _settings_for(best, settings, dead)
    first = routes[0]
    if best is first and not remove:
        headline = (f"Downloads work as configured, through {best.label}." if not lines
                    else f"{best.label} works. Make what you passed as flags permanent:")
    else:
        why = f"{first.label} fails at {LAYER_NAMES.get(first.failed.name, '?')}" if first.failed else f"{first.label} does not serve the repo"
        headline = f"Use {best.label}: {why}."
    advice = []
    if best.proxy and "****" in best.proxy:
        advice.append("The proxy password is shown masked (****): write your own in its place.")
    advice += [_proxy_advice(proxy, check) for proxy, check in broken.items()] + _socks5h_advice(routes)
    if not best.serves_repo:
        advice.append(f"No working route has {repo}: check its id (owner/name, case-sensitive), or run hfget diagnose "
                      "with a repo you know exists.")
    return Verdict(True, headline, best.label, lines, remove, flags, env_file, failures, advice)


def _settings_for(route: RouteReport, settings: Settings, dead: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(.env lines, settings to remove, flags) that make downloads take `route` first."""
    lines: list[str] = []
    remove: list[str] = []
    flags: list[str] = []
    endpoint = settings.endpoint
    if route.kind == "mirror":
        if endpoint.value != route.endpoint or endpoint.origin == FLAG:
            lines.append(f"HF_ENDPOINT={route.endpoint}")
        if endpoint.value != route.endpoint and endpoint.origin in (ENV, DOTENV):
            remove.append(f"HF_ENDPOINT={endpoint.value} ({_where(endpoint.origin, endpoint.describe())}): that mirror fails")
        flags.append(f"--endpoint {route.endpoint}")
    elif route.kind == "hub" and endpoint.origin != DEFAULT and endpoint.value != route.endpoint:
        remove.append(f"HF_ENDPOINT={endpoint.value} ({_where(endpoint.origin, endpoint.describe())}): that mirror fails")
        flags.append("--source hub")
    elif route.kind == "modelscope":
        use = settings["USE_MODELSCOPE"]
        if not (use.origin in (ENV, DOTENV) and settings.flag("USE_MODELSCOPE")):
            lines.append("USE_MODELSCOPE=1")
        if settings["MODELSCOPE_ENDPOINT"].origin == FLAG:
            lines.append(f"MODELSCOPE_ENDPOINT={route.endpoint}")
        flags.append("--source modelscope")
    try:
        proxies = resolve_proxies(settings)
    except Exception:  # reported among the settings checks; diagnose ran without it
        proxies = ProxyConfig()
    configured = proxies.for_url(route.endpoint)
    if route.proxy:
        if configured is not None and configured.key == "HFGET_PROXY" and configured.origin == "flag":
            key = "HTTPS_PROXY" if route.endpoint.startswith("https://") else "HTTP_PROXY"
            lines.append(f"{key}={route.proxy}")
        flags.append(f"--proxy {route.proxy}")
    elif configured is not None:
        # Downloads would try the proxy first for this endpoint: drop it if it is dead, else exempt the host.
        if configured.masked in dead:
            for key in ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):  # every setting naming that proxy
                value = settings[key]
                if value.is_set and mask_url(value.value.strip()) == configured.masked:
                    remove.append(f"{key}={configured.masked} ({_where(value.origin, value.describe())}): "
                                  "the proxy is not working")
        else:
            host = urlsplit(route.endpoint).hostname or ""
            current = settings.get("NO_PROXY")
            lines.append(f"NO_PROXY={current + ',' if current else ''}{host}")
    return lines, remove, flags


def _where(origin: str, described: str) -> str:
    if origin == FLAG or described == FLAG:
        return "given as a flag: leave it out"
    if origin == ENV or described.startswith(ENV):
        return "set in your environment: unset it, and remove it from your shell profile"
    return f"set in {described.removeprefix('.env (').rstrip(')')}: delete that line"


def _socks5h_advice(routes: list[RouteReport]) -> list[str]:
    proxies = sorted({r.proxy for r in routes if r.proxy and r.proxy.startswith("socks5://") and r.failed
                      and r.failed.name == "dns"})
    return [f"With {proxy} this machine still resolves host names itself, and that fails here: write it as "
            f"socks5h://{proxy.removeprefix('socks5://')} so the proxy resolves them." for proxy in proxies]


def _proxy_advice(proxy: str, check: Check) -> str:
    return f"The proxy {proxy} is not usable: {check.detail}. {check.hint or ''}".strip()


def _dead_settings(settings: Settings, routes: list[RouteReport], dead: set[str]) -> list[str]:
    """Settings in the environment or `.env` that point at something that fails: the mirror, a dead proxy."""
    remove: list[str] = []
    endpoint = settings.endpoint
    mirror = [r for r in routes if r.kind == "mirror" and r.proxy is None and r.endpoint == mask_url(endpoint.value)]
    if endpoint.origin in (ENV, DOTENV) and mirror and not mirror[0].works:
        why = mirror[0].failed.detail if mirror[0].failed else "it fails"
        remove.append(f"HF_ENDPOINT={mask_url(endpoint.value)} ({_where(endpoint.origin, endpoint.describe())}): {why}")
    for key in ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        value = settings[key]
        if value.is_set and value.origin != FLAG and mask_url(value.value.strip()) in dead:
            remove.append(f"{key}={mask_url(value.value.strip())} ({_where(value.origin, value.describe())}): the "
                          "proxy is not working")
    return remove


def _advice_when_nothing_works(settings: Settings, routes: list[RouteReport], broken: dict[str, Check],
                               checks: list[Check]) -> list[str]:
    layers = {r.failed.name for r in routes if r.failed}
    advice = [_proxy_advice(proxy, check) for proxy, check in broken.items()]
    if layers == {"dns"}:
        advice.append("Every name fails to resolve: this machine's DNS is down or blocked. A proxy that resolves "
                      "names itself gets around that: test one with hfget diagnose --proxy socks5h://HOST:PORT.")
    elif "tls" in layers:
        advice.append("TLS fails on some routes: if your network inspects HTTPS, set REQUESTS_CA_BUNDLE to its CA "
                      "bundle (.pem) and run hfget diagnose again.")
    local_dns = _socks5h_advice(routes)
    advice += local_dns
    proxy_settings = [k for k in ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY") if settings.layers.get(k)]
    malformed = any(c.group == "settings" and c.name == "proxy" and c.status == FAIL for c in checks)
    if not any(r.proxy for r in routes) and proxy_settings and malformed:
        advice.append(f"Your proxy setting ({', '.join(proxy_settings)}) could not be used: fix it as said first, "
                      "then run hfget diagnose again to test the routes through it.")
    elif not any(r.proxy for r in routes):
        advice.append("No proxy is configured. If you have one, test it: hfget diagnose --proxy socks5h://HOST:PORT "
                      "(or http://HOST:PORT).")
    elif not broken and not local_dns:
        advice.append("The proxy answers but cannot reach the hub: check that it can reach the internet, or test "
                      "another one with hfget diagnose --proxy URL.")
    return advice
