"""`hfget token-check` against the simulator's whoami-v2, gated and private repos, and ModelScope's users/me.

Every test also asserts that no token it used appears unmasked in anything hfget printed (human and --json).
"""

from __future__ import annotations

import json

import pytest

from hfget.testing.hubsim import HubSimulator, SimUser
from hfget.testing.simrepo import SimRepo, text_file
from support import GATED_TOKEN, MODEL, VALID_TOKEN, closed_port

GATED = "hfget-demo/gated-model"
INVALID_TOKEN = "hf_simTokenNobodyZZZZYYYYXXXXWWWW9999"
SECRETS = (VALID_TOKEN, GATED_TOKEN, INVALID_TOKEN)


@pytest.fixture
def official(sim, monkeypatch):
    """The simulator plays huggingface.co, and ModelScope under another name (one endpoint is one route)."""
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://localhost:{sim.port}")
    return sim


def flat(text: str) -> str:
    """Rich wraps to the terminal width (80 under the test runner): compare words, not line breaks."""
    return " ".join(text.split())


def token_check(cli, *args, env=None, secrets=SECRETS):
    as_json = cli("token-check", *args, "--json", env=env)
    human = cli("token-check", *args, env=env)
    assert as_json.exit_code == human.exit_code, (as_json.output, human.output)
    for output in (as_json.output, human.output):
        assert "Traceback" not in output
        for secret in secrets:
            assert secret not in output, "a token was printed unmasked"
    return json.loads(as_json.stdout), human


def test_valid_token(official, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    report, human = token_check(cli)
    assert human.exit_code == 0 and report["ok"] is True
    [token] = report["hf"]
    assert (token["source"], token["masked"], token["state"]) == ("HF_TOKEN from env", "hf_****1234", "in effect")
    assert (token["valid"], token["user"], token["orgs"], token["role"]) == (True, "alice", ["hfget-demo"], "read")
    assert token["checked_at"] == f"hub {official.url}"
    # One whoami per run (--json, then human), to the official hub only.
    assert [r.authorization for r in official.requests_for("/api/whoami-v2")] == [f"Bearer {VALID_TOKEN}"] * 2
    assert "hf_****1234" in human.stdout and "alice (orgs: hfget-demo), read token" in flat(human.stdout)


def test_invalid_token_fails_even_for_a_public_repo_and_says_where_it_is_set(official, cli, isolated):
    dotenv = isolated / "work" / ".env"
    dotenv.write_text(f"HF_TOKEN={INVALID_TOKEN}\n")
    report, human = token_check(cli)
    assert human.exit_code == 1
    assert report["hf"][0]["valid"] is False and "rejected" in report["hf"][0]["detail"]
    assert f"HF_TOKEN from .env ({dotenv})" in report["hint"]
    with_repo, human = token_check(cli, MODEL)
    assert human.exit_code == 1 and with_repo["repo"]["status"] == "token-invalid"
    assert "Even public repos fail with an invalid token" in with_repo["repo"]["hint"]


def test_missing_token(official, cli):
    report, human = token_check(cli)
    assert human.exit_code == 1 and report["hf"] == [] and "No HF token is set" in report["summary"]
    assert "HF_TOKEN=hf_..." in report["hint"] and "Fix:" in human.stdout
    public, human = token_check(cli, MODEL)
    assert human.exit_code == 0 and public["repo"]["status"] == "public"
    gated, human = token_check(cli, GATED)
    assert human.exit_code == 1 and gated["repo"]["status"] == "gated-no-token"
    assert f"https://huggingface.co/{GATED}" in gated["repo"]["hint"]


def test_gated_repo_accepted(official, cli):
    report, human = token_check(cli, GATED, "--token", GATED_TOKEN)
    assert human.exit_code == 0
    assert report["repo"]["status"] == "gated-accepted" and report["hf"][0]["source"] == "--token"
    assert report["hf"][0]["user"] == "bob"
    assert f"{GATED}: gated-accepted" in flat(human.stdout)


def test_gated_repo_not_accepted(official, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    report, human = token_check(cli, GATED)
    assert human.exit_code == 1
    assert report["hf"][0]["valid"] is True  # the token is fine; its account has not been let through the gate
    assert report["repo"]["status"] == "gated-not-accepted"
    assert report["repo"]["hint"].startswith(f"Request access at https://huggingface.co/{GATED}")
    assert "Fix: Request access" in flat(human.stdout)


def test_private_repo_readable_or_not(cli, monkeypatch):
    secret = SimRepo("alice/secret-model", private=True)
    secret.commit([text_file("config.json", "{}\n")])
    users = [SimUser(VALID_TOKEN, "alice"), SimUser(GATED_TOKEN, "bob")]
    with HubSimulator([secret], users=users) as hub:
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", hub.url)
        mine, human = token_check(cli, "alice/secret-model", "--token", VALID_TOKEN)
        assert human.exit_code == 0 and mine["repo"]["status"] == "private-readable"
        theirs, human = token_check(cli, "alice/secret-model", "--token", GATED_TOKEN)
        assert human.exit_code == 1 and theirs["repo"]["status"] == "private-no-access"
        assert "needs read access" in theirs["repo"]["hint"]


def test_every_token_source_is_listed_with_what_shadows_what(official, cli, isolated, monkeypatch):
    hf_home = isolated / "home" / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    (hf_home / "token").write_text(GATED_TOKEN + "\n")
    (hf_home / "stored_tokens").write_text(f"[work]\nhf_token = {GATED_TOKEN}\n\n[old]\nhf_token = {INVALID_TOKEN}\n")
    dotenv = isolated / "work" / ".env"
    dotenv.write_text(f"HF_TOKEN={VALID_TOKEN}\n")
    monkeypatch.setenv("HF_TOKEN", INVALID_TOKEN)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", VALID_TOKEN)
    report, human = token_check(cli)
    rows = [(t["source"], t["masked"], t["state"], t["valid"]) for t in report["hf"]]
    assert rows == [
        ("HF_TOKEN from env", "hf_****9999", "in effect", False),
        (f"HF_TOKEN from .env ({dotenv})", "hf_****1234", "shadowed", True),
        ("HUGGING_FACE_HUB_TOKEN from env", "hf_****1234", "shadowed", True),
        (f"token file ({hf_home / 'token'})", "hf_****5678", "shadowed", True),
        (f"stored token 'work' ({hf_home / 'stored_tokens'})", "hf_****5678", "stored", True),
        (f"stored token 'old' ({hf_home / 'stored_tokens'})", "hf_****9999", "stored", False),
    ]
    assert all(t["note"].startswith("shadowed by HF_TOKEN from env") for t in report["hf"] if t["state"] == "shadowed")
    assert "the active one" in report["hf"][4]["note"]
    # Each distinct token is asked once per run (two runs: --json and human).
    asked = [r.authorization for r in official.requests_for("/api/whoami-v2")]
    assert len(asked) == 6 and len(set(asked)) == 3
    assert human.exit_code == 1 and "use that one" in report["hint"]
    # --token beats them all.
    flagged, human = token_check(cli, "--token", VALID_TOKEN)
    assert flagged["hf"][0]["source"] == "--token" and flagged["hf"][0]["state"] == "in effect"
    assert human.exit_code == 0


def test_the_token_is_validated_at_a_mirror_only_when_allowed(sim, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", f"http://127.0.0.1:{closed_port()}")  # the hub is unreachable
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    report, human = token_check(cli, "--endpoint", sim.url)
    assert human.exit_code == 1 and report["hf"][0]["valid"] is None
    assert "--allow-token-to-mirror" in report["hf"][0]["detail"]
    assert all(r.authorization is None for r in sim.requests_for())  # the mirror never saw the token
    allowed, human = token_check(cli, "--endpoint", sim.url, "--allow-token-to-mirror")
    assert human.exit_code == 0 and allowed["hf"][0]["valid"] is True
    assert allowed["hf"][0]["checked_at"] == f"mirror {sim.url}"


def test_a_repo_through_a_mirror_that_never_sees_the_token(sim, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    report, human = token_check(cli, GATED, "--token", GATED_TOKEN, "--endpoint", sim.url)
    assert human.exit_code == 1 and report["repo"]["status"] == "token-withheld"
    assert "--allow-token-to-mirror" in report["repo"]["hint"]


def test_modelscope_token_valid_invalid_and_shadowed(official, cli, isolated, monkeypatch):
    (isolated / "work" / ".env").write_text("MODELSCOPE_API_TOKEN=ms-shadowed-token-abcdefgh\n")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", VALID_TOKEN)
    report, _ = token_check(cli, secrets=SECRETS + ("ms-shadowed-token-abcdefgh",))
    valid, shadowed = report["modelscope"]
    assert (valid["state"], valid["valid"], valid["user"], valid["masked"]) == ("in effect", True, "alice", "hf_****1234")
    assert shadowed["state"] == "shadowed" and shadowed["masked"] == "****efgh" and shadowed["valid"] is False
    assert official.requests_for("/openapi/v1/users/me")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", INVALID_TOKEN)
    report, _ = token_check(cli, secrets=SECRETS + ("ms-shadowed-token-abcdefgh",))
    assert report["modelscope"][0]["valid"] is False and "rejected" in report["modelscope"][0]["detail"]


def test_output_is_redacted_once_more_on_the_way_out(capsys):
    """Reports hold masked tokens only; should a server echo a token into a detail, the printer still masks it."""
    from hfget.cli import _show
    from hfget.doctor.tokencheck import TokenInfo, TokenReport
    from hfget.ui.render_diagnose import token_check as render

    echoed = TokenInfo("HF_TOKEN from env", "hf_****1234", "in effect", valid=False,
                       detail=f"the server said: bad token {VALID_TOKEN}")
    report = TokenReport(hf=[echoed], modelscope=[], summary=f"echo {VALID_TOKEN}")
    for json_out in (True, False):
        _show(report, render, json_out, [VALID_TOKEN])
        out = capsys.readouterr().out
        assert VALID_TOKEN not in out and "hf_****1234" in out


@pytest.mark.parametrize("how", ["flag", "env", "dotenv", "token file", "stored"])
def test_no_command_prints_a_token_from_any_source(official, cli, isolated, monkeypatch, how):
    hf_home = isolated / "home" / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    args = []
    if how == "flag":
        args = ["--token", GATED_TOKEN]
    elif how == "env":
        monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    elif how == "dotenv":
        (isolated / "work" / ".env").write_text(f"HF_TOKEN={GATED_TOKEN}\n")
    elif how == "token file":
        (hf_home / "token").write_text(GATED_TOKEN)
    else:
        (hf_home / "stored_tokens").write_text(f"[main]\nhf_token = {GATED_TOKEN}\n")
    monkeypatch.setenv("HFGET_DEBUG", "1")
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", VALID_TOKEN)
    report, _ = token_check(cli, GATED, *args)
    assert report["hf"][0]["masked"] == "hf_****5678"
    for extra in ([], ["--json"]):
        result = cli("diagnose", MODEL, "--timeout", "1", *extra, *args)
        assert ("hf_****5678" in result.output) == (how != "stored")  # a stored token is not in effect
        for secret in SECRETS:
            assert secret not in result.output
