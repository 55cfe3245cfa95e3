"""Secrets shown safely: the one masking path for tokens, credentials in URLs, and text that may quote either.

Every message that contains something the user typed (a proxy URL, an endpoint, a token) or something a server or
library said is built from what this module returns, never from the raw value (DESIGN §7): a token shows as
`hf_****abcd`, a URL's credentials as `user:****@`. The CLI boundary scrubs every outgoing text once more with
`redact`, fed with every secret the run knows, so a server echoing a header back cannot leak one either.

The parsing here never raises: a value too broken to be a URL is still masked (a password in
`alice:s3cret@127.0.0.1:78900`, with no scheme and a bad port, is still a password).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A URL inside free text (an exception message): a scheme, then everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
# Hugging Face user access tokens: `hf_` and 34 letters/digits today; scrubbed even when nobody told us the token.
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")
MASK = "****"


def mask(token: str | None) -> str:
    """`hf_****abcd`: enough to tell tokens apart, never enough to use one."""
    if not token:
        return "(none)"
    tail = token[-4:] if len(token) >= 12 else ""
    prefix = "hf_" if token.startswith("hf_") else ""
    return f"{prefix}{MASK}{tail}"


def split_credentials(value: str) -> tuple[str, str | None, str]:
    """(`scheme://` or "", the user-info or None, the rest), for URLs with or without scheme.

    The user-info runs to the last `@` of the authority. As typed by people, a password may hold an unescaped `/`,
    `?`, `#` or `@` too (`http://bob:p@/ss@host:8080`): the last `@` of the whole value, with a `:` before it, still
    ends a user-info. Erring this way masks too much of an odd URL, never too little.
    """
    match = _SCHEME.match(value)
    start = match.end() if match else 0
    rest = value[start:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@")
    if at > end and ":" not in rest[:at]:  # an `@` in a path (`/x@y`), not a password with `/` in it
        at = rest.rfind("@", 0, end)
    if at < 0:
        return value[:start], None, rest
    return value[:start], rest[:at], rest[at + 1 :]


def mask_url(value: str) -> str:
    """`socks5h://user:secret@host:1080` -> `socks5h://user:****@host:1080`; a lone user name (it may be a token)
    -> `****@host`. Anything without credentials comes back unchanged."""
    prefix, userinfo, rest = split_credentials(value)
    if userinfo is None:
        return value
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{prefix}{shown}@{rest}"


def url_secrets(value: str | None) -> list[str]:
    """The secrets a URL holds (the password, or a user name standing alone), as typed and percent-decoded."""
    if not value:
        return []
    _, userinfo, _ = split_credentials(value.strip())
    if not userinfo:
        return []
    user, colon, password = userinfo.partition(":")
    secret = password if colon else user
    return [s for s in dict.fromkeys((secret, unquote(secret), quote(unquote(secret), safe=""))) if s]


def mask_urls_in(text: str) -> str:
    """Mask the credentials of every `scheme://...` URL inside free text (an exception message, say). The
    placeholder of hfget's own hints (`scheme://USER:PASSWORD@host:port`) stays as it is."""

    def masked(match: re.Match) -> str:
        url = match.group(0)
        _, userinfo, _ = split_credentials(url)
        return url if userinfo is not None and userinfo.endswith(":PASSWORD") else mask_url(url)

    return _URL_IN_TEXT.sub(masked, text)


def redact(text: str, *secrets: str | tuple[str, str] | None) -> str:
    """`text` with every known secret replaced, credentials in URLs masked, and anything shaped like an HF token
    masked. Secrets shorter than 4 characters are left alone: replacing them would garble ordinary words, and the
    messages that could hold them were built masked in the first place."""
    pairs = []
    for secret in secrets:
        if isinstance(secret, tuple):
            pairs.append(secret)
        elif secret:
            pairs.append((secret, mask(secret)))
    for secret, shown in sorted(pairs, key=lambda p: -len(p[0])):  # longest first: a secret may contain another
        if secret and len(secret) >= 4:
            text = text.replace(secret, shown)
    text = mask_urls_in(text)
    return _HF_TOKEN.sub(lambda m: mask(m.group(0)), text)
