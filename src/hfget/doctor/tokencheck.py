"""`hfget token-check`: which token is in effect and which ones it shadows, whether each is valid, and whether the
one in effect opens a given repo. Returns a `TokenReport` of masked values only: a raw token never leaves this
module's local variables, so no renderer, log or `--json` output can print one.

Tokens are validated where DESIGN §7 lets them go: the HF token against the official hub (through the configured
proxy first, then direct, as a download would), against a mirror only with HFGET_ALLOW_TOKEN_TO_MIRROR; the
ModelScope token against the ModelScope endpoint, over https or to a loopback host.
"""

from __future__ import annotations

import configparser
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..chain.route import Candidate, plan, probe
from ..config import DEFAULT, ENV, FLAG, Settings, Value, clean_token
from ..errors import GatedRepoError, HfgetError, InvalidTokenError, NetworkError, NotFoundError
from ..net.clients import client_factory
from ..net.http import TokenGrant
from ..net.tokens import decide, destination_note, mask
from ..net.urls import host_label, is_loopback_host, origin_of
from ..repo import RepoRef

MAX_VALIDATED = 6  # distinct tokens checked against the hub; more would be a token collection, not a config
OPENS = ("public", "private-readable", "gated-accepted")


@dataclass
class TokenInfo:
    source: str  # "--token", "HF_TOKEN from env", "token file (/path)", "stored token 'work' (/path)"
    masked: str
    state: str  # in effect | shadowed | stored | empty
    note: str = ""  # what shadows it, format problems
    valid: bool | None = None  # None: not checked (no route, or the token may not go there)
    detail: str = ""  # "alice (orgs: acme), read token" / "rejected: invalid or expired" / why not checked
    user: str | None = None
    orgs: list[str] = field(default_factory=list)
    role: str | None = None
    checked_at: str | None = None


@dataclass
class RepoAccess:
    repo: str
    status: str  # public | private-readable | gated-accepted | gated-not-accepted | gated-no-token | token-withheld
    #              | private-no-access | token-invalid | unreachable
    detail: str
    hint: str | None = None
    endpoint: str | None = None

    @property
    def opens(self) -> bool:
        return self.status in OPENS


@dataclass
class TokenReport:
    hf: list[TokenInfo]
    modelscope: list[TokenInfo]
    repo: RepoAccess | None = None
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    hint: str | None = None

    @property
    def in_effect(self) -> TokenInfo | None:
        return next((t for t in self.hf if t.state == "in effect"), None)

    @property
    def ok(self) -> bool:
        """With a repo: it opens. Without: an HF token is in effect and the hub accepts it."""
        if self.repo is not None:
            return self.repo.opens
        return self.in_effect is not None and self.in_effect.valid is True

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


def inspect(settings: Settings, repo: RepoRef | None = None, *, timeout: float | None = None) -> TokenReport:
    timeout = timeout or settings.seconds("HFGET_DIAGNOSE_TIMEOUT")
    found = hf_tokens(settings)
    ms_found = modelscope_tokens(settings)
    # Every source, in the planned order, whatever --source says: the token's home is always the official hub.
    route = plan(settings.replaced(HFGET_SOURCES="auto"), client_factory(settings, timeout=timeout))
    try:
        probe(route.candidates, timeout)
        reachable = [c for c in route.candidates if c.unreachable is None]
        report = TokenReport(hf=[info for info, _ in found], modelscope=[info for info, _ in ms_found])
        sent_to: list[str] = []
        _validate_hf(settings, found, _hub_candidates(reachable), sent_to)
        _validate_modelscope(settings, ms_found, [c for c in reachable if c.source.name == "modelscope"])
        if repo is not None:
            report.repo = repo_access(settings, repo, _hub_candidates(reachable))
        _summarise(report)
        report.notes += [note for note in dict.fromkeys(sent_to) if note]
        return report
    finally:
        route.close()



def _hub_candidates(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.source.name in ("hub", "mirror")]


# --- where tokens come from -------------------------------------------------------------------------------------


def _where(key: str, value: Value) -> str:
    if value.origin == FLAG:
        return "--token"
    if value.origin == ENV:
        return f"{value.where or key} from env"
    return f"{key} from {value.describe()}"


def hf_tokens(settings: Settings) -> list[tuple[TokenInfo, str]]:
    """Every HF token hfget can see, highest precedence first, with the raw value kept beside (never in) the info.

    Precedence is `Settings.token`'s: HF_TOKEN (flag > env > .env), then HUGGING_FACE_HUB_TOKEN, then the token
    file. huggingface_hub's stored tokens (`hf auth login` keeps one per name) are listed last: they are used only
    once `hf auth switch` copies one into the token file.
    """
    found: list[tuple[TokenInfo, str]] = []
    effective: str | None = None
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        for i, value in enumerate(settings.layers.get(key, ())):
            where = _where(key, value)
            if not value.is_set or not value.value.strip():
                note = "set but empty: hfget and huggingface_hub ignore it" if i == 0 else "set but empty"
                found.append((TokenInfo(where, "(empty)", "empty", note), ""))
                continue
            state = "in effect" if effective is None and i == 0 else "shadowed"
            raw = clean_token(value.value)
            found.append((TokenInfo(where, mask(raw), state, pasted_as(value.value)), raw))
            effective = effective or (where if state == "in effect" else None)
    path = settings.token_path
    text = _read(path)
    if text:
        found.append((TokenInfo(f"token file ({path})", mask(text), "shadowed" if effective else "in effect"), text))
        effective = effective or f"token file ({path})"
    stored_path = path.parent / "stored_tokens"
    for name, token in _stored_tokens(stored_path).items():
        active = " (the active one: same as the token file)" if token == text else ""
        found.append((TokenInfo(f"stored token {name!r} ({stored_path})", mask(token), "stored",
                                "used only after `hf auth switch`" + active), token))
    for info, raw in found:
        if info.state == "shadowed":
            info.note = f"shadowed by {effective}" + (f"; {info.note}" if info.note else "")
        if raw:
            problem = token_format_problem(raw)
            if problem:
                info.note = f"{info.note}; {problem}" if info.note else problem
    return found


def modelscope_tokens(settings: Settings) -> list[tuple[TokenInfo, str]]:
    found = []
    for i, value in enumerate(settings.layers.get("MODELSCOPE_API_TOKEN", ())):
        where = _where("MODELSCOPE_API_TOKEN", value)
        raw = clean_token(value.value or "")
        if not raw:
            found.append((TokenInfo(where, "(empty)", "empty", "set but empty"), ""))
            continue
        found.append((TokenInfo(where, mask(raw), "in effect" if i == 0 else "shadowed",
                                "" if i == 0 else f"shadowed by {_where('MODELSCOPE_API_TOKEN', settings['MODELSCOPE_API_TOKEN'])}"),
                      raw))
    cookies = settings.home / ".modelscope" / "credentials" / "cookies"
    if cookies.is_file():
        # The modelscope library's own login (a pickled cookie jar): listed, never unpickled.
        found.append((TokenInfo(f"modelscope login ({cookies})", "(not read)", "stored",
                                "the modelscope library's saved login; hfget uses MODELSCOPE_API_TOKEN only"), ""))
    return found


def pasted_as(value: str) -> str:
    """What was around a token as set (quotes, `Bearer `): hfget strips it, other tools may not."""
    if clean_token(value) == value.strip():
        return ""
    return ("set with quotes or a 'Bearer ' prefix around it: hfget strips them, but transformers and "
            "huggingface_hub do not; set the token alone")


def token_format_problem(token: str) -> str | None:
    if token[:1] in "\"'" or token[-1:] in "\"'":
        return "has quotes around it (copied with them?)"
    if any(c.isspace() for c in token):
        return "contains spaces or line breaks"
    if token.startswith("api_"):
        return "an old-style api_ token: create a new one (hf_...)"
    return None


def _read(path: Path) -> str:
    try:
        return clean_token(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return ""


def _stored_tokens(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return {name: parser[name].get("hf_token", "").strip() for name in parser.sections() if parser[name].get("hf_token")}


# --- validating -------------------------------------------------------------------------------------------------


def _validate_hf(settings: Settings, found, candidates: list[Candidate], sent_to: list[str]) -> None:
    """Each distinct token checked once; `sent_to` collects a note for every host other than huggingface.co that a
    token was sent to."""
    results: dict[str, tuple] = {}
    for info, raw in found:
        if not raw:
            continue
        if raw not in results:
            if len(results) >= MAX_VALIDATED:
                info.detail = "not checked (too many tokens)"
                continue
            results[raw] = _whoami(settings, raw, info, candidates, sent_to)
        valid, detail, user, orgs, role, where = results[raw]
        info.valid, info.detail, info.user, info.orgs, info.role, info.checked_at = valid, detail, user, orgs, role, where


def _whoami(settings: Settings, raw: str, info: TokenInfo, candidates: list[Candidate], sent_to: list[str]):
    """(valid, detail, user, orgs, role, endpoint) from the first reachable endpoint the token may go to."""
    withheld: list[str] = []
    last: HfgetError | None = None
    for candidate in candidates:
        endpoint = candidate.source.endpoint
        decision = decide(endpoint, settings, Value(raw, DEFAULT, info.source))
        if decision.grant is None:
            withheld.append(host_label(endpoint))
            continue
        sent_to.append(destination_note(endpoint, settings, Value(raw, DEFAULT), info.source) or "")
        try:
            response = candidate.source.client.request("GET", f"{endpoint}/api/whoami-v2", grant=decision.grant, retry=False)
        except NetworkError as error:
            last = error
            continue
        with response:
            where = candidate.label
            if response.status_code == 401:
                return False, "rejected by the hub: invalid, expired or revoked", None, [], None, where
            if response.status_code != 200:
                return None, f"the hub answered HTTP {response.status_code}; validity unknown", None, [], None, where
            try:
                data = response.json()
            except ValueError:
                return None, f"{host_label(endpoint)} did not answer like a hub", None, [], None, where
        user = str(data.get("name") or "?")
        orgs = [str(o.get("name")) for o in data.get("orgs") or [] if isinstance(o, dict)]
        role = ((data.get("auth") or {}).get("accessToken") or {}).get("role")
        shown_role = {"fineGrained": "fine-grained"}.get(role, role) or "unknown role"
        detail = f"{user}" + (f" (orgs: {', '.join(orgs)})" if orgs else "") + f", {shown_role} token"
        return True, detail, user, orgs, role, where
    if withheld:  # the fix the user can apply comes first, whatever else failed
        hub = f"the hub cannot be reached ({last.message.rstrip('.')}); " if last is not None else ""
        note = (f"not checked: {hub}the other endpoints ({', '.join(dict.fromkeys(withheld))}) are not the official "
                "hub, and the token goes there only with --allow-token-to-mirror")
        return None, note, None, [], None, None
    if last is not None:
        return None, f"not checked: the hub cannot be reached ({last.message})", None, [], None, None
    return None, "not checked: no hub endpoint could be reached", None, [], None, None


def _validate_modelscope(settings: Settings, found, candidates: list[Candidate]) -> None:
    for info, raw in found:
        if not raw:
            continue
        info.valid, info.detail = None, "not checked: ModelScope cannot be reached"
        for candidate in candidates:
            endpoint = candidate.source.endpoint
            scheme, host, _ = origin_of(endpoint)
            if scheme != "https" and not is_loopback_host(host) and not settings.flag("HFGET_ALLOW_INSECURE_TOKEN"):
                info.detail = f"not checked: {host_label(endpoint)} is plain http and the token would be exposed"
                break
            grant = TokenGrant(raw, origin_of(endpoint))
            try:
                response = candidate.source.client.request("GET", f"{endpoint}/openapi/v1/users/me", grant=grant, retry=False)
            except NetworkError as error:
                info.detail = f"not checked: {error.message}"
                continue
            with response:
                info.checked_at = candidate.label
                if response.status_code in (401, 403):
                    info.valid, info.detail = False, "rejected by ModelScope: invalid or expired"
                elif response.status_code == 200:
                    data = _data(response)
                    name = data.get("username") or data.get("Username") or data.get("name") or "?"
                    info.valid, info.detail, info.user = True, str(name), str(name)
                else:
                    info.detail = f"ModelScope answered HTTP {response.status_code}; validity unknown"
            break


def _data(response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    data = payload.get("data", payload.get("Data", payload)) if isinstance(payload, dict) else {}
    return data if isinstance(data, dict) else {}


# --- does the token open the repo -------------------------------------------------------------------------------


def repo_access(settings: Settings, repo: RepoRef, candidates: list[Candidate]) -> RepoAccess:
    """What a download of `repo` would meet: the first endpoint that lets it through, else the most telling refusal.

    Endpoints the token is sent to are asked first: a mirror that never sees the token cannot speak for it.
    """
    page = f"https://huggingface.co/{repo.url_prefix}{repo.repo_id}"
    token = settings.token
    ordered = sorted(candidates, key=lambda c: getattr(c.source, "grant", None) is None)
    answers: list[RepoAccess] = []
    for candidate in ordered:
        source = candidate.source
        try:
            snapshot = source.resolve(repo, "main")
            if snapshot.gated and snapshot.files:
                source.check_access(snapshot, min(snapshot.files, key=lambda f: f.size))
        except NetworkError:
            continue
        except GatedRepoError as error:
            if source.grant is not None:
                status, hint = "gated-not-accepted", f"Request access at {page} with the account of your token; once it is approved, download again."
            elif token.is_set:
                status, hint = "token-withheld", error.hint
            else:
                status, hint = "gated-no-token", (f"Accept the conditions at {page}, create a read token at "
                                                  "https://huggingface.co/settings/tokens, then set HF_TOKEN=hf_... in .env.")
            answers.append(RepoAccess(str(repo), status, error.message, hint, candidate.label))
            continue
        except InvalidTokenError as error:
            answers.append(RepoAccess(str(repo), "token-invalid", error.message,
                                      "Even public repos fail with an invalid token: replace it (create one at "
                                      f"https://huggingface.co/settings/tokens) or remove it from {_token_home(token)}.",
                                      candidate.label))
            continue
        except NotFoundError as error:
            if source.grant is not None:
                hint = ("Check the spelling (owner/name, case-sensitive; --repo-type for datasets). If it is private, "
                        "your token's account needs read access to it (or use a token of an account that has).")
            elif token.is_set:
                hint = source.token_note or error.hint
            else:
                hint = "Check the spelling; if it is private, set HF_TOKEN to a token of an account that can read it."
            answers.append(RepoAccess(str(repo), "private-no-access" if source.grant or not token.is_set else "token-withheld",
                                      error.message, hint, candidate.label))
            continue
        except HfgetError as error:
            answers.append(RepoAccess(str(repo), "unreachable", error.message, error.hint, candidate.label))
            continue
        if snapshot.gated:
            return RepoAccess(str(repo), "gated-accepted", "gated, and your token's account has been granted access",
                              None, candidate.label)
        if snapshot.private:
            return RepoAccess(str(repo), "private-readable", "private, and your token can read it", None, candidate.label)
        return RepoAccess(str(repo), "public", "public: anyone can download it, no token needed", None, candidate.label)
    if answers:
        return answers[0]
    return RepoAccess(str(repo), "unreachable", "no hub endpoint could be reached to check it",
                      "Run hfget diagnose to see why, and which route works.")


def _token_home(token: Value) -> str:
    if token.origin == FLAG:
        return "the command line (--token)"
    return token.describe() if token.origin != ENV else f"the environment ({token.where})"


def _summarise(report: TokenReport) -> None:
    effective = report.in_effect
    if effective is None:
        report.summary = "No HF token is set: public repos download fine; gated and private ones need one."
        report.hint = ("Create a read token at https://huggingface.co/settings/tokens and put HF_TOKEN=hf_... in .env "
                       "(or run `hf auth login`).")
    elif effective.valid is True:
        report.summary = f"The HF token in effect ({effective.masked}, {effective.source}) is valid: {effective.detail}."
    elif effective.valid is False:
        report.summary = f"The HF token in effect ({effective.masked}, {effective.source}) is not valid: {effective.detail}."
        others = [t for t in report.hf if t.valid and t is not effective]
        swap = f" The {others[0].source} token ({others[0].masked}) is valid: use that one." if others else ""
        report.hint = (f"Replace it where it is set ({effective.source}) with a token from "
                       f"https://huggingface.co/settings/tokens, or remove it.{swap}")
    else:
        report.summary = f"The HF token in effect ({effective.masked}, {effective.source}) could not be checked: {effective.detail}."
        report.hint = "Run hfget diagnose to see which route to the hub works."
    if report.repo is not None and not report.repo.opens:
        report.hint = report.repo.hint or report.hint
    if effective is not None and effective.source.startswith(("HF_TOKEN from .env", "HUGGING_FACE_HUB_TOKEN from .env")):
        report.notes.append("transformers and huggingface_hub do not read .env by themselves: for them, export "
                            "HF_TOKEN or run `hf auth login` (hfget reads .env).")
