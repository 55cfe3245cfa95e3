"""What `hfget diagnose` finds out without the network: settings and where they came from, proxies, caches,
versions, and settings that work against each other. Each finding is a `Check`; nothing here prints.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT, DOTENV, ENV, Settings, Value
from ..errors import HfgetError
from ..redact import mask, mask_url

OK, WARN, FAIL, INFO, SKIP = "ok", "warn", "fail", "info", "skip"

LOW_SPACE = 10 * 1024**3  # a 7B model in bf16 is ~15 GB: below this, say so before a download runs out of room


@dataclass
class Check:
    group: str  # settings | proxy | tokens | cache | versions | conflicts | network layer names
    name: str
    status: str  # ok | warn | fail | info | skip
    detail: str
    hint: str | None = None
    subject: str | None = None  # what it is about, when several share a name (a proxy's masked URL)


# The settings a user can get wrong, in the order a user reads them. Secrets are masked; proxies lose passwords.
SHOWN = (
    "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
    "HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "USE_MODELSCOPE", "MODELSCOPE_ENDPOINT",
    "MODELSCOPE_CACHE", "MODELSCOPE_API_TOKEN", "REQUESTS_CA_BUNDLE", "HFGET_OFFICIAL_ENDPOINT", "HFGET_KNOWN_MIRRORS",
    "HFGET_SOURCES", "DEFAULT_MODEL", "HFGET_DIAGNOSE_TIMEOUT",
)
SECRET_KEYS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN")
PROXY_KEYS = ("HFGET_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
URL_KEYS = ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "HFGET_OFFICIAL_ENDPOINT", "HFGET_KNOWN_MIRRORS")


def shown_value(key: str, value: str | None) -> str:
    if value is None:
        return "(unset)"
    if key in SECRET_KEYS:
        return mask(value.strip())
    if key in PROXY_KEYS or key in URL_KEYS:
        return ",".join(mask_url(part) for part in value.strip().split(","))
    return value


def describe(value: Value) -> str:
    return "--flag" if value.origin == "flag" else value.describe()


def settings_checks(settings: Settings) -> list[Check]:
    """Every setting in SHOWN that is set (or matters at its default), with its provenance and what it shadows."""
    found = settings.env
    if found is None:
        detail = ("none found (searched from here upward, up to the project folder with .git / pyproject.toml, "
                  "never above your home folder)")
    else:
        detail = f"{found.path} ({found.why})"
    checks = [Check("settings", ".env file", INFO if found is None or found.own else WARN, detail)]
    checks += [Check("settings", f".env line {p.line}" if p.line else ".env file", FAIL,
                     f"{p.describe()}; hfget ignores {'this line' if p.line else 'the whole file'}", p.fix)
               for p in settings.problems]
    checks += [Check("settings", ".env file", WARN, note) for note in settings.notes]
    for key in SHOWN:
        value = settings[key]
        if value.origin == DEFAULT and key != "HF_ENDPOINT":
            continue
        if key == "HF_ENDPOINT":
            value = settings.endpoint
        detail = f"{shown_value(key, value.value)}  ({describe(value)})"
        shadowed = settings.layers.get(key, ())[1:]
        if shadowed:
            detail += "; shadows " + ", ".join(f"{shown_value(key, v.value)} from {describe(v)}" for v in shadowed)
        checks.append(Check("settings", key, INFO, detail))
    if settings.hub_cache.origin != DEFAULT:
        checks.append(Check("settings", "hub cache", INFO, f"{settings.hub_cache.value}  ({settings.hub_cache.describe()})"))
    return checks


def proxy_settings_checks(settings: Settings) -> list[Check]:
    """Which proxy applies to what, NO_PROXY, and whether SOCKS support is installed."""
    from ..net.proxy import resolve

    checks: list[Check] = []
    try:
        proxies = resolve(settings)
    except HfgetError as error:
        return [Check("proxy", "proxy setting", FAIL, error.message, error.hint)]
    for proxy in proxies.all():
        if proxy.note:
            fix = f"--proxy {proxy.masked}" if proxy.key == "HFGET_PROXY" and proxy.origin == "flag" else \
                f"{proxy.key}={proxy.masked}"
            checks.append(Check("proxy", "no scheme", WARN, proxy.note, f"Write it with its scheme: {fix}",
                                proxy.masked))
    if not proxies.configured:
        checks.append(Check("proxy", "proxy", INFO, "none configured: every route is direct"))
    else:
        for scheme, proxy in (("https", proxies.https), ("http", proxies.http)):
            shown = proxy.describe() if proxy else "none (direct)"
            checks.append(Check("proxy", f"{scheme}:// URLs", INFO, f"through {shown}"))
        if proxies.no_proxy:
            checks.append(Check("proxy", "NO_PROXY", INFO, "direct for " + ", ".join(proxies.no_proxy)))
    try:
        import socks

        checks.append(Check("proxy", "SOCKS support", OK, f"installed (PySocks {getattr(socks, '__version__', '?')})"))
    except ImportError:
        needed = any(p.scheme.startswith("socks") for p in proxies.all())
        checks.append(
            Check("proxy", "SOCKS support", FAIL if needed else WARN, "not installed (PySocks is missing)",
                  "pip install 'requests[socks]' (hfget's own install includes it)")
        )
    return checks


def cache_checks(settings: Settings) -> list[Check]:
    """The folders downloads write to: there (or creatable), writable, and room left."""
    ms_cache = settings.get("MODELSCOPE_CACHE") or str(settings.home / ".cache" / "modelscope")
    folders = [
        ("hub cache", settings.hub_cache.value),
        ("HF_HOME", settings.hf_home.value),
        ("ModelScope cache", ms_cache),
    ]
    checks = [_folder_check(name, Path(os.path.expanduser(path))) for name, path in folders]
    return checks + _symlink_check(settings, Path(settings.hub_cache.value))


def _symlink_check(settings: Settings, cache: Path) -> list[Check]:
    """Whether the hub cache holds symlinks (it is probed only where it exists: nothing is created for this)."""
    if settings.flag("HF_HUB_DISABLE_SYMLINKS"):
        origin = settings["HF_HUB_DISABLE_SYMLINKS"].describe()
        return [Check("cache", "symlinks", INFO, f"off (HF_HUB_DISABLE_SYMLINKS, {origin}): each revision keeps its "
                      "own copy of every file, as huggingface_hub does")]
    if not cache.is_dir():
        return []
    from ..fs.symlinks import symlinks_work

    if symlinks_work(cache):
        return [Check("cache", "symlinks", OK, f"{cache} holds symlinks: revisions share their files")]
    hint = ("On Windows, turn on Developer Mode (Settings, System, For developers), or put the cache on an NTFS "
            "drive; elsewhere, on a file system with symlinks.")
    return [Check("cache", "symlinks", WARN, f"{cache} cannot hold symlinks (a FAT/exFAT drive, a share, or Windows "
                  "without Developer Mode): each revision keeps its own copy of every file, as huggingface_hub does "
                  "there", hint)]


def _folder_check(name: str, path: Path) -> Check:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return Check("cache", name, FAIL, f"{path}: {existing} is a file, not a folder",
                     f"Move {existing} away, or point the setting for the {name} elsewhere.")
    where = str(path) if existing == path else f"{path} (does not exist yet; will be created in {existing})"
    try:  # os.access lies for root and on some network filesystems: try for real
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return Check("cache", name, FAIL, f"{where}: not writable ({error.strerror})",
                     f"Fix the permissions of {existing}, or point the {name} setting at a folder you own.")
    free = shutil.disk_usage(existing).free
    from ..units import human_bytes

    status = WARN if free < LOW_SPACE else OK
    hint = "Free some space (hfget cache clean) or move the cache (HF_HUB_CACHE) to a bigger disk." if status == WARN else None
    return Check("cache", name, status, f"{where}: writable, {human_bytes(free)} free", hint)


def version_checks() -> list[Check]:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    checks = [
        Check("versions", "Python", INFO, f"{sys.version.split()[0]} ({sys.executable})"),
        Check("versions", "hfget", INFO, __version__),
    ]
    for package in ("huggingface_hub", "modelscope", "requests", "urllib3", "PySocks"):
        try:
            checks.append(Check("versions", package, INFO, version(package)))
        except PackageNotFoundError:
            checks.append(Check("versions", package, INFO, "not installed"))
    return checks


def conflict_checks(settings: Settings) -> list[Check]:
    """Settings that are each fine alone but work against each other, or against what the user wants."""
    checks: list[Check] = []
    offline = settings["HF_HUB_OFFLINE"]
    try:
        is_offline = settings.offline
    except HfgetError as error:
        checks.append(Check("conflicts", "HF_HUB_OFFLINE", FAIL, error.message, error.hint))
        is_offline = False
    if is_offline:
        checks.append(Check(
            "conflicts", "HF_HUB_OFFLINE", WARN,
            f"HF_HUB_OFFLINE=1 ({describe(offline)}): transformers and huggingface_hub will not download anything; "
            "hfget downloads anyway when you ask it to",
            f"Remove HF_HUB_OFFLINE from {describe(offline)} when you want from_pretrained() to download.",
        ))
    tokens = [(k, settings[k]) for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if settings[k].is_set]
    if len(tokens) == 2 and tokens[0][1].value.strip() != tokens[1][1].value.strip():
        checks.append(Check(
            "conflicts", "two HF tokens", WARN,
            f"HF_TOKEN ({describe(tokens[0][1])}) and HUGGING_FACE_HUB_TOKEN ({describe(tokens[1][1])}) differ; "
            "HF_TOKEN wins",
            "Keep only HF_TOKEN (hfget token-check shows which token is in effect).",
        ))
    http_only = settings["HTTP_PROXY"].is_set and not any(settings[k].is_set for k in ("HTTPS_PROXY", "ALL_PROXY", "HFGET_PROXY"))
    if http_only:
        checks.append(Check(
            "conflicts", "HTTP_PROXY only", WARN,
            f"HTTP_PROXY is set ({describe(settings['HTTP_PROXY'])}) but HTTPS_PROXY is not: it applies only to "
            "http:// URLs, and the hub, the mirrors and ModelScope are https, so they go direct",
            f"Also set HTTPS_PROXY={shown_value('HTTP_PROXY', settings.get('HTTP_PROXY'))} (in .env or the environment).",
        ))
    checks += _case_conflicts(settings)
    bundle = settings["REQUESTS_CA_BUNDLE"]
    if bundle.is_set and not Path(os.path.expanduser(bundle.value)).is_file():
        checks.append(Check(
            "conflicts", "REQUESTS_CA_BUNDLE", FAIL,
            f"REQUESTS_CA_BUNDLE={bundle.value} ({describe(bundle)}) is not a file: every https check will fail",
            "Point it at your organisation's CA bundle (a .pem file), or remove it.",
        ))
    endpoint = settings.endpoint
    if endpoint.origin != DEFAULT and endpoint.value.startswith("http://"):
        from ..net.urls import is_loopback_host, origin_of

        if not is_loopback_host(origin_of(endpoint.value)[1]):
            checks.append(Check(
                "conflicts", "plain-http mirror", WARN,
                f"HF_ENDPOINT={endpoint.value} ({describe(endpoint)}) is plain http: anyone on the way can change "
                "what you download (hfget still checks every hash) and your token is never sent there",
                "Use the mirror's https URL if it has one.",
            ))
    return checks



def _case_conflicts(settings: Settings) -> list[Check]:
    """`http_proxy` and `HTTP_PROXY` set to different values in one place: the lower-case one wins, in hfget as in
    requests, urllib and huggingface_hub (Clash's "copy command" sets the lower-case ones)."""
    checks: list[Check] = []
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        for origin in (ENV, DOTENV):
            layers = [v for v in settings.layers.get(key, ()) if v.origin == origin]
            if len(layers) < 2:
                continue
            winner, loser = layers[0], layers[1]
            where = "your environment" if origin == ENV else winner.describe()
            # `config` lists the lower-case name first when both are set
            shown = [f"{name}={shown_value(key, v.value)}" for name, v in ((key.lower(), winner), (key, loser))]
            checks.append(Check(
                "conflicts", f"{key.lower()} vs {key}", WARN,
                f"{shown[0]} and {shown[1]} differ in {where}: hfget, requests, urllib and huggingface_hub use the "
                f"lower-case {key.lower()}",
                f"Set only one of them, or both to the same value (e.g. unset {key}).",
            ))
    return checks
