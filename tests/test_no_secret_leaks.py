"""No output channel ever contains a secret (property-based, hypothesis).

Each example puts an HF token and a proxy password (random, with the characters that break URLs: `@ : / % # ?`)
where people put them — the flag, the environment in upper or lower case, `.env`, the token file, pasted with
quotes or `Bearer `, a proxy without scheme, with a bad port or scheme, an endpoint with credentials — and runs
download, diagnose or token-check in every channel: plain, `--json`, `HFGET_DEBUG=1` (tracebacks), `-q`. Neither
secret may appear in stdout or stderr, in any spelling (as typed, percent-encoded, percent-decoded), and no run
may end in an internal error.
"""

from __future__ import annotations

import os
import string
from urllib.parse import quote, unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import MODEL, closed_port

GATED = "hfget-demo/gated-model"

tokens = st.text(string.ascii_letters + string.digits, min_size=34, max_size=34).map(lambda s: "hf_" + s)
# A password people type: letters, digits and the characters that break URLs. "Pw"/"Z9" around it so that it
# cannot occur in an output by coincidence.
passwords = st.text(string.ascii_letters + string.digits + "@:/%#?!$&*+=._~-", min_size=3, max_size=14).map(
    lambda s: f"Pw{s}Z9")

TOKEN_PLACES = ("flag", "env", "env lower-priority name", "dotenv", "token file", "quoted", "bearer")
PROXY_FORMS = ("url", "no scheme", "bad port", "ftp scheme", "missing colon", "socks5h", "with a path")
PROXY_PLACES = ("flag", "HTTPS_PROXY", "https_proxy", "ALL_PROXY in .env")
COMMANDS = ("download", "download --json", "download -q", "download (debug)", "diagnose", "diagnose --json",
            "token-check", "token-check --json", "download via the simulator")


def _proxy(form: str, password: str, port: int) -> str:
    return {
        "url": f"http://alice:{password}@127.0.0.1:{port}",
        "no scheme": f"alice:{password}@127.0.0.1:{port}",
        "bad port": f"http://alice:{password}@127.0.0.1:7{port}9",
        "ftp scheme": f"ftp://alice:{password}@127.0.0.1:{port}",
        "missing colon": f"socks5h//alice:{password}@127.0.0.1:{port}",
        "socks5h": f"socks5h://alice:{password}@127.0.0.1:{port}",
        "with a path": f"http://alice:{password}@127.0.0.1:{port}/proxy.pac",
    }[form]


def _spellings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret, safe=":@"), unquote(secret)}


@settings(max_examples=int(os.environ.get("HFGET_LEAK_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(token=tokens, password=passwords, token_place=st.sampled_from(TOKEN_PLACES),
       proxy_form=st.sampled_from(PROXY_FORMS), proxy_place=st.sampled_from(PROXY_PLACES),
       endpoint_password=st.booleans(), command=st.sampled_from(COMMANDS))
def test_no_channel_ever_shows_a_token_or_a_proxy_password(
    sim, cli, isolated, token, password, token_place, proxy_form, proxy_place, endpoint_password, command
):
    work, hf_home = isolated / "work", isolated / "hf-home"
    hf_home.mkdir(exist_ok=True)
    (hf_home / "token").unlink(missing_ok=True)
    (work / ".env").unlink(missing_ok=True)
    env = {"HF_HOME": str(hf_home), "HFGET_DEBUG": "1" if command == "download (debug)" else "0",
           "HFGET_RETRIES": "1", "HFGET_CONNECT_TIMEOUT": "1", "HFGET_READ_TIMEOUT": "1"}
    args: list[str] = []
    dotenv: list[str] = []

    # The token, where people put it.
    shown_token = {"quoted": f'"{token}"', "bearer": f"Bearer {token}"}.get(token_place, token)
    if token_place == "flag":
        args += ["--token", token]
    elif token_place == "env lower-priority name":
        env["HUGGING_FACE_HUB_TOKEN"] = token
    elif token_place == "dotenv":
        dotenv.append(f"HF_TOKEN={token}")
    elif token_place == "token file":
        (hf_home / "token").write_text(token + "\n")
    else:
        env["HF_TOKEN"] = shown_token

    # The proxy, with its password, in one of the forms people write.
    proxy = _proxy(proxy_form, password, closed_port())
    if proxy_place == "flag":
        args += ["--proxy", proxy]
    elif proxy_place == "ALL_PROXY in .env":
        dotenv.append(f"ALL_PROXY={proxy}")
    else:
        env[proxy_place] = proxy
    if dotenv:
        (work / ".env").write_text("\n".join(dotenv) + "\n")

    endpoint = f"http://bob:{password}@127.0.0.1:{closed_port()}" if endpoint_password else f"http://127.0.0.1:{closed_port()}"
    name, _, mode = command.partition(" ")
    if command == "download via the simulator":
        # A run that gets somewhere: the token is sent to the mirror (opt-in) and the notes name where it went.
        run = ["download", GATED, "--endpoint", sim.url, "--allow-token-to-mirror", "--cache-dir", str(isolated / "c")]
        args = [a for a in args if a != "--proxy" and a != proxy]
        env = {k: v for k, v in env.items() if k not in ("HTTPS_PROXY", "https_proxy")}
        (work / ".env").write_text("\n".join(d for d in dotenv if not d.startswith("ALL_PROXY")) + "\n")
    elif name == "download":
        run = ["download", MODEL, "--endpoint", endpoint, "--cache-dir", str(isolated / "c")]
    elif name == "diagnose":
        run = ["diagnose", MODEL, "--endpoint", endpoint, "--timeout", "0.5"]
    else:
        run = ["token-check", MODEL, "--endpoint", endpoint]
    if mode in ("--json", "-q"):
        run.append(mode)
    if name == "diagnose":  # diagnose has no --token of its own to spare; token-check and download do
        args = [a for a in args if a != "--token" and a != token]
        if token_place == "flag":
            env["HF_TOKEN"] = token

    result = cli(*run, *args, env=env)
    output = result.stdout + (result.stderr or "")
    for secret in _spellings(token) | _spellings(password):
        assert secret not in output, f"{secret!r} leaked by {command} ({token_place}, {proxy_form} in {proxy_place}):\n{output}"
    assert "Internal error" not in output, output
    assert result.exit_code in (0, 1, 2), (result.exit_code, output)
