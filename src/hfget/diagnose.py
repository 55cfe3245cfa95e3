"""`hfget diagnose`: test every route a download would try, layer by layer, and say which one to use.

The routes are the download's own candidates (`route.plan`): the official hub, the configured mirror, the known
public mirrors and ModelScope, each direct and through the configured proxy. Each is tested in its own thread,
DNS → TCP → TLS → one real API call → a throughput sample, with a short timeout per step; the proxies, the tokens
and the local checks run alongside. The whole run is bounded (about 3x the per-step timeout): whatever is still
hanging by then is reported as hanging at the layer it had reached. The result is data (`DiagnoseReport`),
including the verdict (`verdict.py`): the route to use and the exact `.env` lines or flags for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from .chain.route import Candidate, plan, source_order
from .config import Settings
from .doctor import checks as local
from .doctor.checks import FAIL, OK, SKIP, WARN, Check
from .doctor.netcheck import (
    RouteReport,
    api_check,
    connect,
    proxy_checks,
    resolve_name,
    throughput,
    tls_handshake,
)
from .doctor.verdict import Verdict, verdict
from .errors import EXIT_FAILURE, EXIT_OK, HfgetError
from .net.clients import client_factory
from .net.proxy import resolve as resolve_proxies
from .net.tokens import destination_note
from .net.urls import endpoint_problem, host_label, suggested_url
from .redact import mask_url
from .repo import RepoRef, parse_repo_spec

# A small repo published under the same id on the hub, its mirrors and ModelScope: every route can be asked for
# the same thing. `hfget diagnose OWNER/NAME` (or DEFAULT_MODEL) asks for the repo you actually want instead.
PROBE_REPO = "Qwen/Qwen2.5-0.5B"


@dataclass
class DiagnoseReport:
    probe_repo: str
    timeout: float
    routes: list[RouteReport]
    checks: list[Check]
    verdict: Verdict
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return any(r.works for r in self.routes)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILURE

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(ok=self.ok, exit_code=self.exit_code)
        for route, out in zip(self.routes, data["routes"]):
            out["label"] = route.label
            out["failed_layer"] = route.failed.name if route.failed else None
        return data


def run(settings: Settings, repo: str | None = None, shells: tuple[str, ...] = ()) -> DiagnoseReport:
    """Every route and check; the verdict's lines also for each of `shells` (doctor/shells.py names)."""
    started = time.monotonic()
    timeout = settings.seconds("HFGET_DIAGNOSE_TIMEOUT")
    repo_ref = parse_repo_spec(repo or settings.get("DEFAULT_MODEL") or PROBE_REPO).repo
    settings, found = usable(settings)
    probes = _Probes(started, deadline=started + 3 * timeout + 1)
    route = None
    try:
        route = plan(settings, client_factory(settings, timeout=timeout))
    except HfgetError as error:
        found.append(Check("settings", "routes", FAIL, error.message, error.hint))
    if route is not None:
        found += probes.start(route.candidates, repo_ref, settings, timeout)
    found += local.settings_checks(settings) + local.proxy_settings_checks(settings)
    found += local.cache_checks(settings) + local.version_checks() + local.conflict_checks(settings)
    network_checks = probes.finish()
    if route is not None:
        route.close()
    all_checks = found + network_checks
    found_verdict = verdict(settings, probes.routes, all_checks, str(repo_ref), shells)
    return DiagnoseReport(str(repo_ref), timeout, probes.routes, all_checks, found_verdict, time.monotonic() - started)


class _Probes:
    """The checks that talk to the network, each on its own thread, bounded by one deadline for the whole run.

    At the deadline the report is closed: a thread still running is reported as hanging (at the layer a route had
    reached), and anything it finds later is dropped rather than mixed into a report being rendered."""

    def __init__(self, started: float, deadline: float) -> None:
        self.started, self.deadline = started, deadline
        self.routes: list[RouteReport] = []
        self.proxy_found: list[Check] = []
        self.token_found: list[Check] = []
        self._workers: list[tuple[threading.Thread, RouteReport | Check]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def start(self, candidates: list[Candidate], repo_ref: RepoRef, settings: Settings, timeout: float) -> list[Check]:
        """Probe every route, the proxies and the tokens; returns the checks known at once (where the token goes)."""
        for candidate in candidates:
            report = RouteReport(candidate.source.name, mask_url(candidate.source.endpoint),
                                 candidate.proxy.masked if candidate.proxy else None, candidate.reason)
            self.routes.append(report)
            self._spawn(_probe_route, candidate, repo_ref, settings, timeout, lambda c, r=report: self._add(r, c),
                        report=report)
        late = "did not finish within the time limit"
        self._spawn(_proxies, candidates, timeout, self.proxy_found, report=Check("proxy", "proxy checks", WARN, late))
        self._spawn(_tokens, settings, timeout, self.token_found, report=Check("tokens", "token checks", WARN, late))
        # The API checks send the token where a download would: say so for every host that is not huggingface.co.
        sent = [destination_note(c.source.endpoint, settings) for c in candidates if getattr(c.source, "grant", None)]
        return [Check("tokens", "token sent to", WARN, note) for note in dict.fromkeys(sent) if note]

    def finish(self) -> list[Check]:
        """Wait until the deadline at most, close the report, and return the proxy and token checks."""
        for thread, _ in self._workers:
            thread.join(max(0.0, self.deadline - time.monotonic()))
        with self._lock:
            self._closed.set()
            for thread, report in self._workers:
                if thread.is_alive() and isinstance(report, RouteReport):
                    report.layers.append(_hanging(report, self.deadline - self.started))
                elif thread.is_alive():
                    (self.proxy_found if report.group == "proxy" else self.token_found).append(report)
            for report in self.routes:
                http = next((c for c in report.layers if c.name == "http"), None)
                report.works = http is not None and http.status != FAIL
                report.serves_repo = http is not None and http.status == OK
            return list(self.proxy_found) + list(self.token_found)

    def _add(self, report: RouteReport, check: Check) -> None:
        with self._lock:
            if not self._closed.is_set():
                report.layers.append(check)

    def _spawn(self, target, *args, report: RouteReport | Check) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception as exc:  # noqa: BLE001 - a thread's traceback would land on the user's terminal
                if isinstance(report, RouteReport):
                    self._add(report, Check("http", "http", FAIL, f"internal error: {type(exc).__name__}: {exc}",
                                            "Please report this (run with HFGET_DEBUG=1 for details)."))

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self._workers.append((thread, report))



def _hanging(report: RouteReport, budget: float) -> Check:
    if report.proxy:
        steps = ("proxy", "http", "speed")
    else:
        tls = ("tls",) if report.endpoint.startswith("https://") else ()
        steps = ("dns", "tcp", *tls, "http", "speed")
    done = {c.name for c in report.layers}
    layer = next((name for name in steps if name not in done), "speed")
    return Check(layer, layer, FAIL, f"still no answer after {budget:.0f} s: the endpoint accepts but hangs (or "
                 "trickles) at this step", "A hanging endpoint stalls downloads too; use a route that answers.")


# --- one route, layer by layer ----------------------------------------------------------------------------------


def _probe_route(candidate: Candidate, repo: RepoRef, settings: Settings, timeout: float, add) -> None:
    parts = urlsplit(candidate.source.endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if candidate.proxy is None:
        addrs, dns = resolve_name(host, port, timeout)
        add(dns)
        if dns.status == FAIL:
            return
        sock, tcp = connect(addrs, port, timeout, host_label(candidate.source.endpoint))
        add(tcp)
        if sock is None:
            return
        if parts.scheme == "https":
            tls = tls_handshake(sock, host, timeout, settings.get("REQUESTS_CA_BUNDLE"))
            add(tls)
            if tls.status == FAIL:
                return
        else:
            sock.close()
    else:
        proxy = urlsplit(candidate.proxy.url)
        addrs, dns = resolve_name(proxy.hostname or "", proxy.port or 1080, timeout)
        where = f"the proxy {proxy.hostname}:{proxy.port}"
        sock, tcp = connect(addrs, proxy.port or 1080, timeout, where) if addrs else (None, dns)
        if sock is None:
            add(Check("proxy", "proxy", FAIL, tcp.detail, tcp.hint))
            return
        add(Check("proxy", "proxy", OK,
                  f"{candidate.proxy.masked} reachable; DNS, TCP and TLS to {host} go through it"))
        sock.close()
    api, snapshot = api_check(candidate.source, repo)
    add(api)
    if snapshot is not None:
        add(throughput(candidate.source, snapshot, min(2.0, timeout)))
    elif api.status != FAIL:
        add(Check("speed", "speed", SKIP, f"no file of {repo} to sample here"))


def _proxies(candidates: list[Candidate], timeout: float, out: list[Check]) -> None:
    """Each configured proxy once, handshaking towards the first endpoint that would go through it."""
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.proxy is not None and candidate.proxy.url not in seen:
            seen.add(candidate.proxy.url)
            out.extend(proxy_checks(candidate.proxy, candidate.source.endpoint, timeout))


def _tokens(settings: Settings, timeout: float, out: list[Check]) -> None:
    from .doctor.tokencheck import inspect

    try:
        report = inspect(settings, timeout=timeout)
    except HfgetError as error:
        out.append(Check("tokens", "tokens", FAIL, error.message, error.hint))
        return
    effective = report.in_effect
    if effective is None:
        out.append(Check("tokens", "HF token", WARN if any(t.state != "stored" for t in report.hf) else OK,
                         "none set: public repos only", report.hint))
    else:
        status = {True: OK, False: FAIL, None: WARN}[effective.valid]
        note = f"; {effective.note}" if effective.note else ""
        # Not checked means no route to the hub works: the routes above say why, the hint would say "run diagnose".
        hint = report.hint if status == FAIL else None
        out.append(Check("tokens", "HF token", status, f"{effective.masked} from {effective.source}: "
                         f"{effective.detail or 'not checked'}{note}", hint))
    shadowed = [t for t in report.hf if t.state == "shadowed"]
    if shadowed:
        out.append(Check("tokens", "shadowed HF tokens", WARN,
                         "; ".join(f"{t.masked} from {t.source}" for t in shadowed),
                         "Only one token is used; remove the others (hfget token-check lists them all)."))
    for info in report.modelscope:
        if info.state == "in effect":
            status = {True: OK, False: FAIL, None: WARN}[info.valid]
            out.append(Check("tokens", "ModelScope token", status, f"{info.masked} from {info.source}: {info.detail}",
                             None if status == OK else "Check MODELSCOPE_API_TOKEN (https://modelscope.cn/my/myaccesstoken)."))


# --- settings diagnose can carry on without ---------------------------------------------------------------------


def usable(settings: Settings) -> tuple[Settings, list[Check]]:
    """Report each malformed setting and carry on without it: a doctor does not stop at the first symptom."""
    problems: list[Check] = []

    def drop(key: str, error: HfgetError | str, hint: str | None = None, replacement: str | None = None) -> None:
        nonlocal settings
        message = error.message if isinstance(error, HfgetError) else error
        problems.append(Check("settings", key, FAIL, message, error.hint if isinstance(error, HfgetError) else hint))
        settings = settings.replaced(**{key: replacement})

    try:
        resolve_proxies(settings)
    except HfgetError as error:
        problems.append(Check("settings", "proxy", FAIL, error.message, error.hint))
        settings = settings.replaced(HFGET_PROXY=None, HTTPS_PROXY=None, HTTP_PROXY=None, ALL_PROXY=None)
    for key in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "HFGET_OFFICIAL_ENDPOINT"):
        value = settings[key]
        problem = endpoint_problem(value.value) if value.is_set else None
        if problem:
            fallback = None if key == "HF_ENDPOINT" else local_default(key)
            drop(key, f"{key}={mask_url(value.value.strip())} ({value.describe()}) {problem}; diagnose carries on "
                 "without it", f"Write it {'with its scheme' if problem == 'has no scheme' else 'as a full URL'}: "
                 f"{key}={suggested_url(value.value)}", fallback)
    mirrors = [m.strip() for m in (settings.get("HFGET_KNOWN_MIRRORS") or "").split(",") if m.strip()]
    if any(endpoint_problem(m) for m in mirrors):
        bad = [mask_url(m) for m in mirrors if endpoint_problem(m)]
        drop("HFGET_KNOWN_MIRRORS", f"HFGET_KNOWN_MIRRORS has entries that are not URLs: {', '.join(bad)}",
             "List full URLs, comma-separated.", ",".join(m for m in mirrors if not endpoint_problem(m)))
    for key in ("USE_MODELSCOPE", "HFGET_ALLOW_TOKEN_TO_MIRROR", "HFGET_ALLOW_INSECURE_TOKEN", "HF_HUB_OFFLINE"):
        try:
            settings.flag(key)
        except HfgetError as error:
            drop(key, error, replacement="0")
    try:
        source_order(settings)
    except HfgetError as error:
        drop("HFGET_SOURCES", error, replacement="auto")
    return settings, problems


def local_default(key: str) -> str | None:
    from .config import KEYS

    return KEYS[key]



