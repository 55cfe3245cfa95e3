"""A token never appears in output, --json, errors or tracebacks (even with HFGET_DEBUG=1), whatever goes wrong."""

from __future__ import annotations

import pytest

from support import GATED_TOKEN, MODEL, closed_port

GATED = "hfget-demo/gated-model"
UNKNOWN_TOKEN = "hf_notKnownToTheHubXXXXYYYYZZZZ0000abcd"


def _assert_never_printed(result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.output, f"secret leaked: {result.output}"
        assert secret not in (result.stderr or "")


def _token_sources(tmp_path, monkeypatch, how: str, token: str) -> list[str]:
    """Put the token where `how` says; return the extra CLI args."""
    if how == "flag":
        return ["--token", token]
    if how == "env":
        monkeypatch.setenv("HF_TOKEN", token)
    elif how == "dotenv":
        (tmp_path / "work" / ".env").write_text(f"HF_TOKEN={token}\n")
    elif how == "token file":
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        (tmp_path / "hf-home").mkdir(exist_ok=True)
        (tmp_path / "hf-home" / "token").write_text(token)
    return []


@pytest.mark.parametrize("how", ["flag", "env", "dotenv", "token file"])
@pytest.mark.parametrize("debug", ["0", "1"])
def test_no_token_in_any_output(sim, cache, cli, tmp_path, monkeypatch, how, debug):
    monkeypatch.setenv("HFGET_DEBUG", debug)
    args = _token_sources(tmp_path, monkeypatch, how, GATED_TOKEN)
    runs = [
        # success through a mirror the token was allowed to reach (it warns, masked)
        cli("download", GATED, "--endpoint", sim.url, "--cache-dir", cache, "--allow-token-to-mirror", *args),
        cli("download", GATED, "--endpoint", sim.url, "--cache-dir", cache, "--allow-token-to-mirror", "--json", *args),
        # the gate stays shut: the token was withheld from the mirror, and the error says so (masked)
        cli("download", GATED, "--endpoint", sim.url, "--cache-dir", tmp_path / "c2", *args),
        cli("download", GATED, "--endpoint", sim.url, "--cache-dir", tmp_path / "c2", "--json", *args),
        # nothing reachable
        cli("download", MODEL, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--cache-dir", cache, *args),
        # bad input after the token was read
        cli("download", MODEL, "-r", "..", "--cache-dir", cache, *args),
    ]
    assert runs[0].exit_code == 0 and "hf_****5678" in runs[0].stdout
    assert runs[2].exit_code == 1 and "hf_****5678" in runs[2].stderr
    if debug == "1":
        assert "Traceback" in runs[2].stderr  # the traceback is there, redacted
    for result in runs:
        _assert_never_printed(result, GATED_TOKEN)


def test_an_invalid_token_at_the_official_hub(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)  # the simulator plays huggingface.co: the token goes there
    monkeypatch.setenv("HFGET_DEBUG", "1")
    result = cli("download", GATED, "--cache-dir", cache, "--token", UNKNOWN_TOKEN)
    assert result.exit_code == 1
    assert "rejected your HF token as invalid or expired" in result.stderr
    assert any(r.authorization == f"Bearer {UNKNOWN_TOKEN}" for r in sim.requests_for())  # it was sent, to the hub
    _assert_never_printed(result, UNKNOWN_TOKEN)


def test_the_mask_shows_only_the_last_four_characters():
    from hfget.net.tokens import mask, redact

    assert mask(GATED_TOKEN) == "hf_****5678"
    assert mask("short") == "****"
    assert mask(None) == "(none)"
    assert redact(f"x {GATED_TOKEN} y {GATED_TOKEN}", GATED_TOKEN) == "x hf_****5678 y hf_****5678"
