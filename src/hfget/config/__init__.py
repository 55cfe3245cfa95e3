"""Settings resolved at call time, each value with where it came from.

Precedence: command-line flag > process environment > `.env` file > default. The `.env` file is the nearest one
from the working directory upward within the project (see `envfile`), or the one given with `--env-file`. Proxy
variables are read as requests and urllib read them: the lower-case name wins over the upper-case one. Settings that
widen where the HF token may go come only from flags, the environment or the project's own `.env`. Nothing here
runs at import time: the CLI calls `resolve()` for every command, so tests and `diagnose` see exactly what a run
would use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UsageError
from . import envfile
from .envfile import EnvFile, EnvProblem

FLAG, ENV, DOTENV, DEFAULT, DERIVED, TOKEN_FILE = "flag", "env", ".env", "default", "derived", "token file"

OFFICIAL_ENDPOINT = "https://huggingface.co"
MODELSCOPE_ENDPOINT = "https://modelscope.cn"

# Every key hfget reads. Values are the defaults; None means "unset unless given".
KEYS: dict[str, str | None] = {
    "HF_ENDPOINT": None,
    "HF_TOKEN": None,
    "HUGGING_FACE_HUB_TOKEN": None,
    "HF_TOKEN_PATH": None,
    "HF_HOME": None,
    "HF_HUB_CACHE": None,
    "HUGGINGFACE_HUB_CACHE": None,  # legacy name, still honoured by huggingface_hub
    "HF_HUB_OFFLINE": "0",
    "HF_HUB_DISABLE_SYMLINKS": "0",  # as in huggingface_hub: plain files in snapshots/ even where symlinks work
    "HFGET_WINDOWS_NAMES": "0",  # 1: refuse names Windows cannot store even off Windows (a cache Windows reads too)
    "HTTP_PROXY": None,
    "HTTPS_PROXY": None,
    "ALL_PROXY": None,
    "NO_PROXY": None,
    "USE_MODELSCOPE": "0",
    "MODELSCOPE_ENDPOINT": MODELSCOPE_ENDPOINT,
    "MODELSCOPE_CACHE": None,
    "MODELSCOPE_API_TOKEN": None,
    "DEFAULT_MODEL": None,
    "XDG_CACHE_HOME": None,
    "HFGET_ALLOW_TOKEN_TO_MIRROR": "0",
    "HFGET_ALLOW_INSECURE_TOKEN": "0",
    # --max-workers: files at once; "auto" lets the governor size it from the link (many on a distant server)
    "HFGET_MAX_WORKERS": "auto",
    "HFGET_CONNECTIONS": "64",  # --connections: at once, in total, shared by the files in flight
    "HFGET_MAX_PER_HOST": "64",  # --max-per-host: connections open to one host at once (CDNs throttle more)
    "HFGET_PROXY": None,  # --proxy: one proxy for every source, overriding HTTP(S)_PROXY / ALL_PROXY
    "HFGET_SOURCES": "auto",  # --source, comma-separated: auto | hub | mirror | modelscope
    "HFGET_MODELSCOPE_ID": None,  # --modelscope-id: the repo's id on ModelScope when it differs
    # The official hub and the public mirrors tried by default. Overridable for a self-hosted hub, and by the tests
    # (which must never reach the real internet).
    "HFGET_OFFICIAL_ENDPOINT": OFFICIAL_ENDPOINT,
    "HFGET_KNOWN_MIRRORS": "https://hf-mirror.com",
    "HFGET_RETRIES": "5",  # attempts per request and per file before a source is given up on
    "HFGET_CONNECT_TIMEOUT": "10",
    "HFGET_READ_TIMEOUT": "30",
    # `hfget diagnose`: the longest one check (DNS, connect, TLS, one HTTP request) may take; the whole run is
    # bounded by about 3x this, so a hanging endpoint costs seconds, not minutes.
    "HFGET_DIAGNOSE_TIMEOUT": "4",
    "REQUESTS_CA_BUNDLE": None,
}

# Proxy variables are honoured in lower case too, and the lower-case one wins when both are set: that is what
# urllib.request.getproxies() does, and through it requests and huggingface_hub (a lower-case one set to "" even
# switches the proxy off). Clash's "copy command" sets the lower-case ones.
_LOWER_CASE_ALIASES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}

# Settings that let the HF token go somewhere other than huggingface.co over https. A `.env` that is not the
# project's own (one in a parent folder, left there by something else) may not set them.
WIDENING = ("HFGET_OFFICIAL_ENDPOINT", "HFGET_ALLOW_TOKEN_TO_MIRROR", "HFGET_ALLOW_INSECURE_TOKEN")

_TRUE = {"1", "ON", "YES", "TRUE", "Y"}
_FALSE = {"0", "OFF", "NO", "FALSE", "N", ""}


@dataclass(frozen=True)
class Value:
    """One setting: its value, and where it came from (`origin`, plus `where` for the file or flag name)."""

    value: str | None
    origin: str
    where: str | None = None

    @property
    def is_set(self) -> bool:
        return self.value is not None and self.value != ""

    def describe(self) -> str:
        return f"{self.origin} ({self.where})" if self.where else self.origin


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Value]
    env_file: Path | None = None
    home: Path = field(default_factory=Path.home)
    # Every layer that set a key, highest precedence first (the first is `values[key]`): what diagnose and
    # token-check show as "shadowed". Keys set nowhere are absent.
    layers: Mapping[str, tuple[Value, ...]] = field(default_factory=dict)
    env: EnvFile | None = None  # the .env in use and whether it is the project's own
    problems: tuple[EnvProblem, ...] = ()  # what is wrong in the .env (lines that are not KEY=VALUE, encoding)
    notes: tuple[str, ...] = ()  # what the user should know about how the settings were read

    def __getitem__(self, key: str) -> Value:
        return self.values[key]

    def get(self, key: str) -> str | None:
        value = self.values[key]
        return value.value if value.is_set else None

    def flag(self, key: str) -> bool:
        raw = self.get(key) or "0"
        if raw.strip().upper() in _TRUE:
            return True
        if raw.strip().upper() in _FALSE:
            return False
        origin = self.values[key].describe()
        raise UsageError(
            f"{key}={raw!r} (from {origin}) is not a yes/no value.",
            f"Set {key} to 1 or 0 (true/false also work).",
        )

    def replaced(self, **values: str | None) -> Settings:
        """A copy with these keys set as defaults would be: how diagnose carries on past a malformed setting it has
        reported, and how token-check always includes the official hub."""
        return replace(self, values={**self.values, **{k: Value(v, DEFAULT) for k, v in values.items()}})

    # --- derived values -------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> Value:
        value = self.values["HF_ENDPOINT"]
        if not value.is_set:
            return Value(OFFICIAL_ENDPOINT, DEFAULT)
        return Value(value.value.strip().rstrip("/"), value.origin, value.where)

    @property
    def hf_home(self) -> Value:
        value = self.values["HF_HOME"]
        if value.is_set:
            return Value(str(_expand(value.value, self.home)), value.origin, value.where)
        xdg = self.values["XDG_CACHE_HOME"]
        if xdg.is_set:
            return Value(str(_expand(xdg.value, self.home) / "huggingface"), DERIVED, "XDG_CACHE_HOME")
        return Value(str(self.home / ".cache" / "huggingface"), DEFAULT)

    @property
    def hub_cache(self) -> Value:
        for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
            value = self.values[key]
            if value.is_set:
                return Value(str(_expand(value.value, self.home)), value.origin, value.where or key)
        home = self.hf_home
        origin = DEFAULT if home.origin == DEFAULT else DERIVED
        return Value(str(Path(home.value) / "hub"), origin, None if origin == DEFAULT else "HF_HOME")

    @property
    def token_path(self) -> Path:
        value = self.values["HF_TOKEN_PATH"]
        if value.is_set:
            return _expand(value.value, self.home)
        return Path(self.hf_home.value) / "token"

    @property
    def token(self) -> Value:
        """The HF token in effect: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then huggingface_hub's token file."""
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            value = self.values[key]
            if value.is_set:
                return Value(clean_token(value.value), value.origin, value.where if value.origin != ENV else key)
        path = self.token_path
        try:
            text = clean_token(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            text = ""
        if text:
            return Value(text, TOKEN_FILE, str(path))
        return Value(None, DEFAULT)

    @property
    def offline(self) -> bool:
        return self.flag("HF_HUB_OFFLINE")

    def seconds(self, key: str) -> float:
        raw = self.get(key) or KEYS[key] or "0"
        try:
            value = float(raw)
        except ValueError:
            value = -1
        if not 0 < value <= 3600:
            raise UsageError(
                f"{key}={raw!r} (from {self.values[key].describe()}) is not a number of seconds.",
                f"Set {key} to a number such as 10.",
            )
        return value

    @property
    def retries(self) -> int:
        raw = self.get("HFGET_RETRIES") or "5"
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise UsageError(
                f"HFGET_RETRIES={raw!r} (from {self.values['HFGET_RETRIES'].describe()}) is not a number from 1 to 100.",
                "Set HFGET_RETRIES to the number of attempts per request, e.g. 5.",
            )
        return int(raw)

    @property
    def max_workers(self) -> int | None:
        """Files at once; None ("auto"): as many as the governor finds worth it, up to the connections."""
        if (self.get("HFGET_MAX_WORKERS") or "auto").strip().lower() == "auto":
            return None
        return self._count("HFGET_MAX_WORKERS", "max workers", "--max-workers", 256)

    @property
    def max_per_host(self) -> int:
        """Connections open to one host at once, whatever the files need."""
        return self._count("HFGET_MAX_PER_HOST", "max per host", "--max-per-host", 256)

    @property
    def connections(self) -> int:
        """Connections open at once, in total, shared by the files in flight (a large file uses many)."""
        return self._count("HFGET_CONNECTIONS", "connections", "--connections", 256)

    def _count(self, key: str, what: str, flag: str, highest: int) -> int:
        raw = self.get(key) or KEYS[key]
        try:
            number = int(raw)
        except ValueError:
            number = 0
        if not 1 <= number <= highest:
            raise UsageError(
                f"{what} must be a number from 1 to {highest}, got {raw!r} (from {self.values[key].describe()}).",
                f"Pass {flag} {KEYS[key]}, or leave it out for the default.",
            )
        return number


_VARIABLE = re.compile(r"\$\{(?P<braced>[^}]+)\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|%(?P<percent>[^%]+)%")


def expand_path(raw: str, home: Path, *, windows: bool | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """A path as users write it in a flag, the environment or `.env`, as huggingface_hub reads its own path
    settings (expanduser, then expandvars): a leading `~` is `home` (`~/models`, and `~\\models` on Windows);
    `$VAR` and `${VAR}` are expanded, and on Windows `%VAR%` too (names in any case, as Windows has them). A
    variable that is not set is left as written."""
    windows = os.name == "nt" if windows is None else windows
    environ = os.environ if environ is None else environ
    if raw == "~":
        return home
    if raw[:1] == "~" and raw[1:2] in (("/", "\\") if windows else ("/",)):
        raw = str(home) + raw[1:]
    by_name = {k.upper(): v for k, v in environ.items()} if windows else environ

    def value(match: re.Match) -> str:
        name = match["braced"] or match["plain"] or match["percent"]
        if match["percent"] is not None and not windows:
            return match[0]
        found = by_name.get(name.upper() if windows else name)
        return match[0] if found is None else found

    return Path(_VARIABLE.sub(value, raw))


def _expand(raw: str, home: Path) -> Path:
    return expand_path(raw, home)


def clean_token(raw: str) -> str:
    """A token as pasted: without surrounding whitespace or quotes, and without an `Authorization: Bearer ` prefix
    copied from a curl command."""
    token = raw.strip().strip("\"'").strip()
    lowered = token.lower()
    for prefix in ("authorization:", "bearer "):
        if lowered.startswith(prefix):
            token = token[len(prefix):].strip()
            lowered = token.lower()
    return token.strip("\"'").strip()


def find_env_file(cwd: Path, home: Path | None = None) -> Path | None:
    """The `.env` a run in `cwd` reads (see `envfile.find` for where the search stops)."""
    found = envfile.find(cwd, home or Path.home())
    return found.path if found else None


def resolve(
    flags: Mapping[str, str | None] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    env_file: Path | str | None = None,
    home: Path | None = None,
    strict: bool = True,
) -> Settings:
    """Resolve every key in KEYS. `flags` maps KEY -> value given on the command line (None = not given).

    With `strict` (every command but diagnose), a `.env` that cannot be decoded or has lines that are not
    KEY=VALUE is a usage error; otherwise its problems are returned in `Settings.problems`.
    """
    flags = flags or {}
    environ = os.environ if environ is None else environ
    home = home or Path.home()
    unknown = set(flags) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown setting(s): {sorted(unknown)}")

    found = _env_file(env_file, Path.cwd() if cwd is None else cwd, home)
    read = envfile.read(found.path) if found else envfile.EnvRead()
    if strict and read.problems:
        raise _problems_error(read.problems)
    dotenv, notes = _without_widening(read.values, found)

    values: dict[str, Value] = {}
    layers: dict[str, tuple[Value, ...]] = {}
    for key, default in KEYS.items():
        found_values: list[Value] = []
        if flags.get(key) is not None:
            found_values.append(Value(str(flags[key]), FLAG))
        for name, value in _lookup(environ, key):
            found_values.append(Value(value, ENV, name if name != key else None))
        for name, value in _lookup(dotenv, key):
            found_values.append(Value(value, DOTENV, str(found.path)))
        values[key] = found_values[0] if found_values else Value(default, DEFAULT)
        if found_values:
            layers[key] = tuple(found_values)
    return Settings(values=values, env_file=found.path if found else None, home=home, layers=layers, env=found,
                    problems=tuple(read.problems), notes=tuple(notes))


def _env_file(given: Path | str | None, cwd: Path, home: Path) -> EnvFile | None:
    if given is None:
        return envfile.find(cwd, home)
    path = expand_path(str(given), home)
    if not path.is_file():
        raise UsageError(
            f"The .env file {path} does not exist or is not a file.",
            "Check the path given to --env-file, or leave the option out to use the nearest .env.",
        )
    return EnvFile(path, True, "given with --env-file")


def _problems_error(problems: list[EnvProblem]) -> UsageError:
    first = problems[0]
    more = problems[1:5]
    also = "".join(f" Also {p.describe()}." for p in more) + (" …" if len(problems) > 5 else "")
    return UsageError(f"The .env file {first.describe()}.{also}", first.fix + ("" if not more else " Then fix the "
                      "other lines the same way (python-dotenv, and the tools that use it, cannot read them either)."))


def _without_widening(dotenv: dict[str, str | None], found: EnvFile | None) -> tuple[dict[str, str | None], list[str]]:
    """A `.env` that is not the project's own may not widen where the token goes: drop those keys, and say so."""
    if found is None or found.own:
        return dotenv, []
    ignored = [key for key in WIDENING if key in dotenv or key.lower() in dotenv]
    if not ignored:
        return dotenv, []
    kept = {k: v for k, v in dotenv.items() if k.upper() not in WIDENING}
    return kept, [
        f"Ignored {', '.join(ignored)} from {found.path}: that .env is {found.why}. A setting that changes where your "
        "HF token may go is taken only from a flag, the environment, or the project's own .env (in the working "
        "folder, or in the project folder with .git / pyproject.toml)."
    ]


def _lookup(source: Mapping[str, str | None], key: str) -> list[tuple[str, str]]:
    """Every (name, value) that sets `key` in `source`, the one that wins first (lower case first for proxies)."""
    names = [key.lower(), key] if key in _LOWER_CASE_ALIASES else [key]
    found: dict[str, str] = {}  # value -> name: one entry per distinct value (Windows' environ ignores case)
    for name in names:
        value = source.get(name)
        if value is not None and value not in found:
            found[value] = name
    return [(name, value) for value, name in found.items()]
