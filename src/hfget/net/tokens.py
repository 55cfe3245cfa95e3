"""Where a token may go, and how it is shown (DESIGN §7).

The HF token goes to the official hub over https. Any other endpoint (a mirror) gets it only with an explicit
opt-in, and over plain http only when the host is loopback (a local mirror) unless the user also allows insecure
transport. Redirects never carry it off its origin (enforced in `http.HttpClient`). Everywhere a token is shown,
it is masked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings, Value, clean_token
from ..redact import mask, redact  # noqa: F401  (re-exported: the token policy's callers mask with these)
from .http import TokenGrant
from .urls import Origin, host_label, is_loopback_host, origin_of

OFFICIAL_ORIGINS: frozenset[Origin] = frozenset({("https", "huggingface.co", 443), ("https", "hf.co", 443)})


@dataclass(frozen=True)
class TokenDecision:
    grant: TokenGrant | None
    note: str | None  # why it was withheld, or a warning that it is sent to a mirror


def official_origins(settings: Settings) -> frozenset[Origin]:
    """huggingface.co, plus HFGET_OFFICIAL_ENDPOINT when it names another hub (self-hosted, or the tests' own)."""
    configured = settings.get("HFGET_OFFICIAL_ENDPOINT")
    return OFFICIAL_ORIGINS | ({origin_of(configured)} if configured else set())


def decide(endpoint: str, settings: Settings, token: Value | None = None) -> TokenDecision:
    """Whether the HF token (or `token`, e.g. a shadowed one token-check validates) may go to `endpoint` (DESIGN
    §7), and what to tell the user about it."""
    token = settings.token if token is None else token
    if not token.is_set:
        return TokenDecision(None, None)
    origin = origin_of(endpoint)
    scheme, host, _ = origin
    shown = f"{mask(token.value)} (from {token.describe()})"
    if origin in official_origins(settings):
        if scheme == "https" or is_loopback_host(host) or settings.flag("HFGET_ALLOW_INSECURE_TOKEN"):
            return TokenDecision(TokenGrant(token.value, origin), None)
        return TokenDecision(None, f"Your HF token {shown} was not sent to {host}: plain http would expose it.")
    if not settings.flag("HFGET_ALLOW_TOKEN_TO_MIRROR"):
        return TokenDecision(
            None,
            f"Your HF token {shown} was not sent to {host}: it is not huggingface.co. "
            "Pass --allow-token-to-mirror (or set HFGET_ALLOW_TOKEN_TO_MIRROR=1) if you trust this mirror.",
        )
    if scheme != "https" and not is_loopback_host(host) and not settings.flag("HFGET_ALLOW_INSECURE_TOKEN"):
        return TokenDecision(
            None,
            f"Your HF token {shown} was not sent to {host}: plain http would expose it on the network. "
            "Use an https mirror, or add --allow-insecure-token if you accept the risk.",
        )
    return TokenDecision(TokenGrant(token.value, origin), None)


def destination_note(
    endpoint: str, settings: Settings, token: Value | None = None, source: str | None = None
) -> str | None:
    """What to tell the user when the HF token (or `token`, named `source`) is sent to `endpoint` and that is not
    huggingface.co: the host, and the setting that allowed it. None for huggingface.co (and for no token)."""
    token = settings.token if token is None else token
    if not token.is_set or origin_of(endpoint) in OFFICIAL_ORIGINS:
        return None
    shown = f"{mask(token.value)} ({source or 'from ' + token.describe()})"
    host = host_label(endpoint)
    if origin_of(endpoint) in official_origins(settings):
        why = f"HFGET_OFFICIAL_ENDPOINT ({settings['HFGET_OFFICIAL_ENDPOINT'].describe()}) names it as the official hub"
    else:
        why = f"allowed by HFGET_ALLOW_TOKEN_TO_MIRROR ({settings['HFGET_ALLOW_TOKEN_TO_MIRROR'].describe()})"
    return f"Your HF token {shown} was sent to {host}, which is not huggingface.co: {why}."


def modelscope_grant(endpoint: str, settings: Settings) -> TokenGrant | None:
    """MODELSCOPE_API_TOKEN goes only to the ModelScope endpoint, over https or to a loopback host."""
    token = settings.get("MODELSCOPE_API_TOKEN")
    if not token:
        return None
    origin = origin_of(endpoint)
    if origin[0] != "https" and not is_loopback_host(origin[1]) and not settings.flag("HFGET_ALLOW_INSECURE_TOKEN"):
        return None
    return TokenGrant(clean_token(token), origin)
