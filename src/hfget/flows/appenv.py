"""The environment your application needs so that `from_pretrained(...)` works here, and how to load what hfget
fetched.

`app_environment()` answers `hfget env [REPO]`: when the repo is complete in the cache, `HF_HUB_OFFLINE=1`
(huggingface_hub then reads the cache and never waits on the network: without it, a cached model with an
unreachable hub costs a timeout per file before the fallback); otherwise the route `hfget diagnose` finds for the
Hugging Face protocol, as the variables huggingface_hub reads: `HF_ENDPOINT` and the proxy variables. ModelScope is
not among them: transformers cannot download from it, so a repo only ModelScope serves must be fetched with hfget
first, then loaded offline.

`load_instructions()` is the last line of `hfget download`: the id to pass and the variables to set.
Both return data; `shells.render` writes the lines for a given shell.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import DEFAULT, Settings
from ..doctor.shells import Assignment
from ..repo import RepoRef, parse_repo_id, validate_revision
from ..store.cached import find_snapshot
from ..store.hub_cache import HubCache

if TYPE_CHECKING:  # annotations only: importing it would load the transfer stack
    from ..download import DownloadResult

_PROXY_KEYS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


@dataclass
class EnvReport:
    repo: str | None
    revision: str
    cached: bool  # the repo is complete in the cache: offline loading works
    commit: str | None = None
    route: str | None = None  # the route the variables point at, when not offline
    assignments: list[Assignment] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ok: bool = True  # False: no environment makes from_pretrained work here (yet)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "repo": self.repo, "revision": self.revision, "cached": self.cached, "commit": self.commit,
            "route": self.route, "comments": self.comments,
            "set": {a.name: a.value for a in self.assignments if a.value is not None},
            "unset": [a.name for a in self.assignments if a.value is None],
        }


def app_environment(
    settings: Settings, repo: str | None = None, revision: str = "main", repo_type: str = "model",
    environ: dict[str, str] | None = None,
) -> EnvReport:
    environ = dict(os.environ if environ is None else environ)
    text = repo or settings.get("DEFAULT_MODEL")
    ref = parse_repo_id(text, repo_type) if text else None
    revision = validate_revision(revision)
    report = EnvReport(str(ref) if ref else None, revision, cached=False)
    cache_lines = _cache_location(settings)
    if ref is not None:
        snapshot = find_snapshot(HubCache(settings.hub_cache.value), ref, revision)
        if snapshot is not None and snapshot.complete:
            count = len(snapshot.listing or snapshot.entries)
            report.cached, report.commit = True, snapshot.commit
            report.comments.append(f"{ref} @ {revision} is complete in the cache (commit {snapshot.commit[:10]}, "
                                   f"{count} files): load it without the network.")
            report.assignments = [Assignment("HF_HUB_OFFLINE", "1"), *cache_lines]
            return report
        if snapshot is not None:
            report.comments.append(f"{ref} is in the cache but lacks {len(snapshot.missing())} file(s): "
                                   f"`hfget download {ref.repo_id}` completes it, then `hfget env` prints HF_HUB_OFFLINE=1.")
    _online(settings, report, ref, environ)
    report.assignments += cache_lines
    return report


def _online(settings: Settings, report: EnvReport, ref: RepoRef | None, environ: dict[str, str]) -> None:
    """The variables that send huggingface_hub along the first Hugging Face route diagnose finds working."""
    from ..diagnose import run

    diagnosis = run(settings, str(ref.repo_id) if ref else None)
    hf_routes = [r for r in diagnosis.routes if r.kind != "modelscope" and r.works]
    best = next((r for r in hf_routes if r.serves_repo), hf_routes[0] if hf_routes else None)
    offline = [k for k in ("HF_HUB_OFFLINE", "hf_hub_offline") if _truthy(environ.get(k))]
    if best is None:
        report.ok = False
        serves = [r for r in diagnosis.routes if r.kind == "modelscope" and r.serves_repo]
        if serves and ref is not None:
            report.comments.append(f"Only ModelScope serves {ref} from here, and transformers cannot download from "
                                   f"it: run `hfget download {ref.repo_id}`, then `hfget env {ref.repo_id}` prints "
                                   "HF_HUB_OFFLINE=1.")
        else:
            report.comments.append("No route to the hub works from here: `hfget diagnose` shows why, layer by layer.")
        return
    report.route = best.label
    report.comments.append(f"Not complete in the cache: huggingface_hub must download, through {best.label} "
                           "(the route hfget diagnose finds working).")
    report.assignments.extend(Assignment(k, None) for k in offline)
    report.assignments.append(Assignment("HF_ENDPOINT", best.endpoint))
    report.assignments.extend(_proxy_lines(best.proxy, environ))
    if best.proxy and "****" in best.proxy:
        report.comments.append("The proxy password is shown masked (****): write your own in its place.")
    if best.proxy and best.proxy.startswith("socks"):
        report.comments.append("A socks proxy needs socks support in your app's environment: pip install "
                               "'httpx[socks]' (huggingface_hub 1.x and later) or 'requests[socks]' (0.x).")
    token = settings.token
    if token.is_set and token.origin not in ("env", "token file"):
        report.comments.append(f"Your HF token is set in {token.describe()}, which your app does not read: export "
                               "HF_TOKEN yourself if the repo needs it (hfget never prints a token).")


def _proxy_lines(proxy: str | None, environ: dict[str, str]) -> list[Assignment]:
    """Set the proxy the route goes through (upper case, and lower case where the environment has that spelling,
    which Python's getproxies() would prefer); for a direct route, remove the proxies a request would take."""
    if proxy is None:
        return [Assignment(name, None) for key in _PROXY_KEYS for name in (key, key.lower()) if environ.get(name)]
    keys = ["HTTPS_PROXY", "HTTP_PROXY"]
    keys += [k.lower() for k in keys if environ.get(k.lower())]
    return [Assignment(k, proxy) for k in keys]


def _cache_location(settings: Settings) -> list[Assignment]:
    """HF_HUB_CACHE, when hfget's cache is not the one huggingface_hub would use by default."""
    value = settings.hub_cache
    return [] if value.origin == DEFAULT else [Assignment("HF_HUB_CACHE", value.value)]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE", "Y")


# --- after a download ---------------------------------------------------------------------------------------------


@dataclass
class LoadHint:
    """How to load what a download fetched: `code` (the call), with `env` set."""

    repo_id: str
    path: str
    code: str
    env: dict[str, str]
    note: str | None = None  # what the call needs that the download did not fetch (some files were left out)

    @property
    def line(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{env} + {self.code}" if env else self.code

    def to_dict(self) -> dict:
        return {"repo_id": self.repo_id, "path": self.path, "code": self.code, "env": self.env, "line": self.line,
                "note": self.note}


def load_instructions(result: DownloadResult, settings: Settings, local_dir: bool,
                      selection: Selection | None = None) -> LoadHint:
    """The call that loads what was fetched. One file named: the call that loads that file (offline,
    `from_pretrained` would look for the rest of the repo); some files selected: the usual call, with a note that it
    loads only if those are all the code reads."""
    selection = selection or Selection()
    note = None
    if selection.partial and not selection.single:
        note = "only the files you selected are in the cache: this loads if they are all your code reads"
    if local_dir:  # a plain folder: the path is the id, nothing to set
        target = json.dumps(result.location)
        call = "load_dataset" if result.repo_type == "dataset" else "from_pretrained"
        return LoadHint(result.repo_id, result.location, f"{call}({target})", {}, note)
    env = {"HF_HUB_OFFLINE": "1", **{a.name: a.value for a in _cache_location(settings)}}
    args = f'"{result.repo_id}"'
    if selection.single:
        args += f", {json.dumps(selection.single)}"
    args += f', revision="{result.revision}"' if result.revision != "main" else ""
    if selection.single:
        kind = f', repo_type="{result.repo_type}"' if result.repo_type != "model" else ""
        return LoadHint(result.repo_id, result.location, f"hf_hub_download({args}{kind})", env)
    if result.repo_type == "dataset":
        code = f"load_dataset({args})"
    elif result.repo_type == "space":
        code = f"snapshot_download({args}, repo_type=\"space\")"
    else:
        code = f"from_pretrained({args})"
    return LoadHint(result.repo_id, result.location, code, env, note)


@dataclass(frozen=True)
class Selection:
    """Which files of the repo a download asked for: all of them (the default), one named file, or some."""

    files: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.files or self.include or self.exclude)

    @property
    def single(self) -> str | None:
        return self.files[0] if len(self.files) == 1 and not (self.include or self.exclude) else None
