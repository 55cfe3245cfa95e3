"""The source chain (DESIGN §6): which sources to try, in what order, and why each is on the list.

`plan()` builds the ordered candidates from the settings, each with the reason it is there (which setting, from
where). `probe()` checks them all at once with a short timeout so that unreachable routes (a blocked
huggingface.co, a dead proxy) are skipped instead of each costing a full timeout; the survivors keep the planned
order, so the choice stays predictable and explainable.

Order when nothing says otherwise: the configured mirror (HF_ENDPOINT / --endpoint) if any, the official hub, the
known public mirrors, then ModelScope; `USE_MODELSCOPE=1` puts ModelScope first; `--source` sets the order
outright. Where a proxy is configured, the routes through it come before the direct ones: the proxy is what the
user set up for this machine (DESIGN §6 lists the direct routes first; we put the user's explicit setting first and
keep the direct routes as the fallback).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import DEFAULT, Settings
from ..errors import HfgetError, UsageError
from ..modelscope import ModelScopeSource
from ..net.http import HttpClient
from ..net.proxy import NO_PROXY_CONFIG, Proxy, ProxyConfig
from ..net.proxy import resolve as resolve_proxies
from ..net.tokens import decide, modelscope_grant, official_origins
from ..net.urls import endpoint_problem, origin_of, suggested_url
from ..redact import mask_url
from ..sources import HubSource, Source

SOURCE_NAMES = ("auto", "hub", "mirror", "modelscope")


@dataclass
class Candidate:
    source: Source
    reason: str
    proxy: Proxy | None = None
    unreachable: HfgetError | None = None  # set by probe()

    @property
    def label(self) -> str:
        via = f" via proxy {self.proxy.masked}" if self.proxy else ""
        return f"{self.source.label}{via}"

    @property
    def key(self) -> tuple[str, str, str | None]:
        """The same protocol at the same endpoint through the same proxy is the same route."""
        protocol = "modelscope" if self.source.name == "modelscope" else "hf"
        return (protocol, self.source.endpoint, self.proxy.url if self.proxy else None)


@dataclass
class Route:
    """The planned candidates and the clients they use (closed together)."""

    candidates: list[Candidate]
    clients: list[HttpClient] = field(default_factory=list)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def source_order(settings: Settings) -> list[str]:
    raw = [s.strip().lower() for s in (settings.get("HFGET_SOURCES") or "auto").split(",") if s.strip()]
    bad = [s for s in raw if s not in SOURCE_NAMES]
    if bad:
        raise UsageError(
            f"Unknown source {bad[0]!r} (from {settings['HFGET_SOURCES'].describe()}).",
            "Use --source with auto, hub, mirror or modelscope (repeat it to set the order).",
        )
    if raw in ([], ["auto"]):
        configured_mirror = _configured_mirror(settings) is not None
        order = ["mirror", "hub", "modelscope"] if configured_mirror else ["hub", "mirror", "modelscope"]
        if settings.flag("USE_MODELSCOPE"):
            order = ["modelscope"] + [s for s in order if s != "modelscope"]
        return order
    return [s for s in dict.fromkeys(raw) if s != "auto"]


def _configured_mirror(settings: Settings) -> str | None:
    endpoint = settings.endpoint
    if endpoint.origin == DEFAULT or origin_of(endpoint.value) in official_origins(settings):
        return None
    return endpoint.value


def plan(settings: Settings, make_client: Callable[[ProxyConfig], HttpClient]) -> Route:
    proxies = resolve_proxies(settings)
    direct = make_client(NO_PROXY_CONFIG)
    proxied = make_client(proxies) if proxies.configured else None
    route = Route([], [c for c in (direct, proxied) if c is not None])

    endpoints: list[tuple[str, str, str]] = []  # (kind, endpoint, reason)
    official = (settings.get("HFGET_OFFICIAL_ENDPOINT") or "https://huggingface.co").rstrip("/")
    for kind in source_order(settings):
        if kind == "hub":
            endpoints.append(("hub", official, _official_reason(settings)))
        elif kind == "mirror":
            mirror = _configured_mirror(settings)
            if mirror:
                endpoints.append(("mirror", mirror, f"HF_ENDPOINT from {settings.endpoint.describe()}"))
            for known in (settings.get("HFGET_KNOWN_MIRRORS") or "").split(","):
                if known.strip() and known.strip().rstrip("/") != mirror:
                    endpoints.append(("mirror", known.strip().rstrip("/"), "known public mirror"))
        elif kind == "modelscope":
            value = settings["MODELSCOPE_ENDPOINT"]
            reason = "ModelScope" + (" (USE_MODELSCOPE is set)" if settings.flag("USE_MODELSCOPE") else "")
            if value.origin != DEFAULT:
                reason += f", MODELSCOPE_ENDPOINT from {value.describe()}"
            endpoints.append(("modelscope", value.value.rstrip("/"), reason))

    seen: set[tuple[str, str, str | None]] = set()
    for use_proxy in ([True, False] if proxied else [False]):
        for kind, endpoint, reason in endpoints:
            proxy = proxies.for_url(endpoint) if use_proxy else None
            if use_proxy and proxy is None:
                continue  # NO_PROXY exempts it: the direct candidate covers it
            client = proxied if proxy else direct
            source = _make_source(kind, endpoint, client, settings)
            candidate = Candidate(source, reason + (f"; through the proxy {proxy.describe()}" if proxy else ""), proxy)
            if candidate.key not in seen:
                seen.add(candidate.key)
                route.candidates.append(candidate)
    return route


def _official_reason(settings: Settings) -> str:
    value = settings["HFGET_OFFICIAL_ENDPOINT"]
    return "the official hub" + ("" if value.origin == DEFAULT else f" (HFGET_OFFICIAL_ENDPOINT from {value.describe()})")


def _make_source(kind: str, endpoint: str, client: HttpClient, settings: Settings) -> Source:
    _check_url(endpoint, kind, settings)
    if kind == "modelscope":
        return ModelScopeSource(
            endpoint=endpoint,
            client=client,
            grant=modelscope_grant(endpoint, settings),
            id_override=settings.get("HFGET_MODELSCOPE_ID"),
        )
    decision = decide(endpoint, settings)
    return HubSource(
        name=kind,
        endpoint=endpoint,
        client=client,
        grant=decision.grant,
        token_note=decision.note,
        has_token=settings.token.is_set,
    )


def _check_url(endpoint: str, kind: str, settings: Settings) -> None:
    problem = endpoint_problem(endpoint)
    if problem:
        key = {"mirror": "HF_ENDPOINT", "hub": "HFGET_OFFICIAL_ENDPOINT", "modelscope": "MODELSCOPE_ENDPOINT"}[kind]
        value = settings[key]
        flag = {"HF_ENDPOINT": "--endpoint", "MODELSCOPE_ENDPOINT": "--modelscope-endpoint"}.get(key)
        origin = flag if flag and value.origin == "flag" else f"{key} from {value.describe()}"
        if kind == "mirror" and value.value and value.value.strip().rstrip("/") != endpoint:
            origin = "HFGET_KNOWN_MIRRORS"
        raise UsageError(f"The {kind} endpoint {mask_url(endpoint)!r} ({origin}) {problem}.",
                         f"Write it as a full URL: {suggested_url(endpoint)}.")


def probe(candidates: list[Candidate], timeout: float) -> None:
    """Check the candidates' endpoints all at once (one HEAD each) and mark the unreachable ones.

    Returns as soon as the first candidate in order is known to answer: a working first choice costs one round
    trip, not the slowest candidate's timeout. The other checks finish in the background and mark their candidates
    for later (a handover after a mid-download failure). At most about `timeout` seconds.
    """
    if len(candidates) < 2:
        return

    def check(candidate: Candidate) -> None:
        try:
            candidate.source.client.request(
                "HEAD", candidate.source.endpoint + "/", retry=False, follow_redirects=False,
                timeout=(timeout, timeout),
            ).close()
        except HfgetError as error:
            candidate.unreachable = error

    threads = [threading.Thread(target=check, args=(c,), daemon=True) for c in candidates]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 1
    for candidate, thread in zip(candidates, threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():  # DNS can ignore the socket timeout: treat as unreachable
            from ..errors import NetworkTimeout

            candidate.unreachable = NetworkTimeout(
                f"{mask_url(candidate.source.endpoint)} did not answer within {timeout:g} s.",
                "The host is unreachable or filtered from here; use a mirror or a proxy.",
            )
        elif candidate.unreachable is None:
            return
