"""Downloads through a real proxy server (pproxy, HTTP and SOCKS5 modes), and every way a proxy setting can be wrong.

The hub is reachable only through the proxy: its host names (`hub.invalid`, `cdn.invalid`) do not resolve here,
and pproxy tunnels every request it forwards, whatever host it names, to the simulator. pproxy's own log proves the
traffic went through it.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from support import MODEL, closed_port, expected_files, official_offline_load, pproxy, tree_state


@pytest.fixture
def only_via_proxy(sim):
    """The hub and its CDN under names that resolve nowhere: only a proxy can reach them."""
    sim.cdn_base = "http://cdn.invalid"
    return "http://hub.invalid"


@pytest.mark.parametrize(("scheme", "logged"), [("http", "http "), ("socks5h", "socks5 ")])
def test_download_through_a_proxy_in_each_mode(sim, cache, cli, tmp_path, only_via_proxy, scheme, logged):
    log = tmp_path / "pproxy.log"
    with pproxy(sim.port, log) as port:
        result = cli("download", MODEL, "--endpoint", only_via_proxy, "--proxy", f"{scheme}://127.0.0.1:{port}",
                     "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["attempts"][0]["outcome"] == "ok"
    assert f"through the proxy {scheme}://127.0.0.1:{port} (--proxy)" in summary["attempts"][0]["why"]
    lines = log.read_text().splitlines()
    assert any(line.startswith(logged) and "-> hub.invalid:80" in line for line in lines), lines
    # The CDN, another name that resolves nowhere, was reached through the proxy too. (An HTTP proxy may carry it
    # on a kept-alive connection opened for hub.invalid, so its log need not name it; the simulator saw the name.)
    cdn = sim.requests_for("/cdn/*", "GET")
    assert cdn and {r.host for r in cdn} == {"cdn.invalid"}
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_proxy_and_mirror_from_dotenv(sim, cache, cli, tmp_path, only_via_proxy, isolated):
    with pproxy(sim.port, tmp_path / "pproxy.log") as port:
        (isolated / "work" / ".env").write_text(f"HF_ENDPOINT={only_via_proxy}\nALL_PROXY=socks5h://127.0.0.1:{port}\n")
        result = cli("download", MODEL, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    why = json.loads(result.stdout)["attempts"][0]["why"]
    assert "HF_ENDPOINT from .env" in why and "ALL_PROXY from .env" in why


def test_no_proxy_is_honoured_and_a_dead_proxy_falls_back_to_direct(sim, cache, cli):
    dead = f"http://127.0.0.1:{closed_port()}"
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json",
                 env={"HTTP_PROXY": dead, "NO_PROXY": "localhost,127.0.0.0/8"})
    attempts = json.loads(result.stdout)["attempts"]
    assert [a["endpoint"] for a in attempts] == [sim.url]  # exempt: no proxied route at all

    result = cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "--json",
                 env={"HTTP_PROXY": dead})
    attempts = json.loads(result.stdout)["attempts"]
    *proxied, direct = attempts
    assert proxied and all(a["outcome"] == "skipped" and "cannot be reached" in a["why"] for a in proxied), attempts
    assert proxied[0]["endpoint"] == f"{sim.url} via {dead}"
    assert direct == {"source": "mirror", "endpoint": sim.url, "outcome": "ok", "why": "HF_ENDPOINT from flag"}


@pytest.fixture
def warm_cache(sim, cache, cli):
    assert cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "-q").exit_code == 0
    return cache


@pytest.mark.parametrize(
    ("proxy", "needles"),
    [
        ("socks5h//127.0.0.1:1080", ["malformed scheme", "socks5h://HOST:PORT"]),
        ("http:/127.0.0.1:1080", ["malformed scheme", "http://HOST:PORT"]),
        ("ftp://127.0.0.1:21", ["scheme 'ftp'", "socks5h"]),
        ("http://127.0.0.1:99999", ["port '99999'", "1 to 65535"]),
        ("http://alice:s3cret-pw@127.0.0.1:78900", ["port '78900'", "alice:****@127.0.0.1:78900"]),
        ("alice:s3cret-pw@127.0.0.1:78900", ["port '78900'", "alice:****@127.0.0.1:78900"]),
        ("socks5://", ["no valid host"]),
        ("http://127.0.0.1 :7890", ["spaces"]),
    ],
)
def test_malformed_proxy_settings_are_usage_errors(sim, warm_cache, cli, proxy, needles):
    before = tree_state(warm_cache)
    sim.clear_log()
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", warm_cache, "--proxy", proxy)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output and "Fix:" in result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert "(--proxy)" in result.stderr and "s3cret-pw" not in result.output
    assert sim.requests_for() == [] and tree_state(warm_cache) == before
    # The same from the environment (lower case, as Clash's "copy command" sets it) names where it came from.
    env = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", warm_cache, env={"https_proxy": proxy, "http_proxy": proxy})
    assert env.exit_code == 2 and "(HTTP_PROXY from env (http_proxy))" in env.stderr, env.output
    assert "s3cret-pw" not in env.output and "Internal error" not in env.output


def test_a_proxy_without_scheme_is_taken_as_http_with_a_note(sim, cache, cli, tmp_path, only_via_proxy):
    """`HTTPS_PROXY=127.0.0.1:7890`, as requests, pip and curl take it: http://, said once in a note."""
    log = tmp_path / "pproxy.log"
    with pproxy(sim.port, log, auth="alice:s3cret-pass") as port:
        result = cli("download", MODEL, "--endpoint", only_via_proxy, "--cache-dir", cache, "--json",
                     env={"HTTPS_PROXY": f"alice:s3cret-pass@127.0.0.1:{port}", "HTTP_PROXY": f"alice:s3cret-pass@127.0.0.1:{port}"})
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    assert [n for n in notes if "has no scheme: taken as http://alice:****@127.0.0.1" in n] and len(notes) == 1, notes
    assert "s3cret-pass" not in result.output
    assert any(line.startswith("http ") and "hub.invalid" in line for line in log.read_text().splitlines())
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_unreachable_proxy_is_named_as_such(sim, warm_cache, cli, only_via_proxy):
    before = tree_state(warm_cache)
    proxy = f"socks5h://127.0.0.1:{closed_port()}"
    result = cli("download", MODEL, "--endpoint", only_via_proxy, "--proxy", proxy, "--cache-dir", warm_cache)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Fix: Start the proxy, or fix its host and port" in result.stderr and tree_state(warm_cache) == before
    error = json.loads(cli("download", MODEL, "--endpoint", only_via_proxy, "--proxy", proxy, "--cache-dir", warm_cache,
                           "--json").stdout)["error"]
    assert f"The proxy {proxy} (--proxy) cannot be reached: connection refused, for {only_via_proxy}" in error["message"]
    assert tree_state(warm_cache) == before


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_wrong_proxy_credentials_are_named_as_such_and_masked(sim, warm_cache, cli, tmp_path, only_via_proxy, scheme):
    before = tree_state(warm_cache)
    with pproxy(sim.port, tmp_path / "pproxy.log", auth="alice:s3cret-pass") as port:
        bad = cli("download", MODEL, "--endpoint", only_via_proxy, "--cache-dir", warm_cache,
                  "--proxy", f"{scheme}://alice:wrong-pass@127.0.0.1:{port}")
        assert tree_state(warm_cache) == before
        good = cli("download", MODEL, "--endpoint", only_via_proxy, "--cache-dir", warm_cache, "--json",
                   "--proxy", f"{scheme}://alice:s3cret-pass@127.0.0.1:{port}")
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "requires authentication" in bad.stderr and "USER:PASSWORD@" in bad.stderr
    assert "wrong-pass" not in bad.output and f"alice:****@127.0.0.1:{port}" in bad.stderr
    assert good.exit_code == 0, good.output
    assert "s3cret-pass" not in good.output


@pytest.mark.parametrize(
    "env",
    [
        {"HTTPS_PROXY": "http://upper.invalid:1", "https_proxy": "http://lower.invalid:2"},
        {"HTTPS_PROXY": "http://upper.invalid:1"},
        {"https_proxy": "http://lower.invalid:2"},
        {"HTTPS_PROXY": "http://upper.invalid:1", "https_proxy": ""},  # an empty lower-case one switches it off
        {"HTTPS_PROXY": "", "https_proxy": "http://lower.invalid:2"},
        {"ALL_PROXY": "socks5h://all.invalid:3", "https_proxy": "http://lower.invalid:2"},
        {"all_proxy": "socks5h://lower-all.invalid:4", "ALL_PROXY": "socks5h://all.invalid:3"},
        {"HTTP_PROXY": "http://only-http.invalid:5"},
    ],
)
def test_proxy_variables_are_read_as_requests_and_urllib_read_them(tmp_path, env):
    """hfget picks, for an https URL, the proxy requests would pick in a process with this environment."""
    import subprocess
    import sys

    from hfget import config
    from hfget.net.proxy import resolve

    code = ("import json, requests.utils; "
            "print(json.dumps(requests.utils.get_environ_proxies('https://hub.invalid/api/x', no_proxy=None)))")
    proc = subprocess.run([sys.executable, "-c", code], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=60)
    theirs = json.loads(proc.stdout)
    expected = theirs.get("https") or theirs.get("all")  # requests' select_proxy order for an https URL
    ours = resolve(config.resolve(environ=env, cwd=tmp_path)).for_url("https://hub.invalid/api/x")
    assert (ours.url if ours else None) == expected, (theirs, ours)


def test_the_lower_case_proxy_wins_and_diagnose_shows_the_conflict(sim, cache, cli, tmp_path, only_via_proxy):
    dead = f"http://127.0.0.1:{closed_port()}"
    with pproxy(sim.port, tmp_path / "pproxy.log") as port:
        working = f"http://127.0.0.1:{port}"
        # Clash's "copy command" sets the lower-case ones; an old shell profile still sets the upper-case ones.
        env = {"https_proxy": working, "http_proxy": working, "HTTPS_PROXY": dead, "HTTP_PROXY": dead}
        ok = cli("download", MODEL, "--endpoint", only_via_proxy, "--cache-dir", cache, "--json", env=env)
        assert ok.exit_code == 0, ok.output
        assert f"through the proxy {working} (HTTP_PROXY from env (http_proxy))" in json.loads(ok.stdout)["attempts"][0]["why"]
        report = json.loads(cli("diagnose", MODEL, "--timeout", "1", "--json", env=env).stdout)
    conflicts = {c["name"]: c for c in report["checks"] if c["group"] == "conflicts"}
    assert conflicts["https_proxy vs HTTPS_PROXY"]["detail"] == (
        f"https_proxy={working} and HTTPS_PROXY={dead} differ in your environment: hfget, requests, urllib and "
        "huggingface_hub use the lower-case https_proxy")
    assert "http_proxy vs HTTP_PROXY" in conflicts
    # The other way round, the dead lower-case one is the one in effect, and the error names it so.
    bad = cli("download", MODEL, "--endpoint", only_via_proxy, "--cache-dir", tmp_path / "c2",
              env={"https_proxy": dead, "http_proxy": dead, "HTTPS_PROXY": working, "HTTP_PROXY": working})
    assert bad.exit_code == 1 and f"The proxy {dead} (HTTP_PROXY from env (http_proxy)) cannot be reached" in bad.stderr


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_a_password_that_is_not_latin_1_works_through_a_real_proxy(sim, cache, cli, tmp_path, only_via_proxy, scheme):
    """A Chinese password, percent-encoded as a proxy URL must carry it (requests alone raises UnicodeEncodeError:
    it encodes proxy credentials as latin-1). The proxy receives the UTF-8 bytes and lets the download through."""
    password = "密码-s3cret"
    with pproxy(sim.port, tmp_path / "pproxy.log", auth=f"alice:{password}") as port:
        proxy = f"{scheme}://alice:{quote(password)}@127.0.0.1:{port}"
        result = cli("download", MODEL, "--endpoint", only_via_proxy, "--proxy", proxy, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "Internal error" not in result.output and quote(password) not in result.output and password not in result.output
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_a_percent_escape_that_is_not_utf_8_is_sent_as_typed_not_an_internal_error(sim, warm_cache, cli, tmp_path,
                                                                                    only_via_proxy):
    """`%80` in a password (hypothesis found it): the proxy gets the byte 0x80, as curl would send it; this proxy
    expects another password, so the answer is the usual wrong-credentials error, with the password masked."""
    before = tree_state(warm_cache)
    with pproxy(sim.port, tmp_path / "pproxy.log", auth="alice:s3cret-pass") as port:
        proxy = f"http://alice:Pw%80Z9@127.0.0.1:{port}"
        result = cli("download", MODEL, "--endpoint", only_via_proxy, "--proxy", proxy, "--cache-dir", warm_cache)
    assert result.exit_code == 1, result.output
    assert "Internal error" not in result.output and "Traceback" not in result.output
    assert "rejected the credentials" in " ".join(result.stderr.split()) or "407" in result.stderr, result.stderr
    assert "Pw%80Z9" not in result.output and tree_state(warm_cache) == before
