"""`hfget diagnose` on real loopback servers: the simulator, a real proxy (pproxy), closed ports, names under
`.invalid`, a TLS server with a self-signed certificate, a captive portal, and servers that hang or trickle.

Every test runs with a 1-second step timeout (`--timeout 1`) except the one that proves the default bound.
"""

from __future__ import annotations

import json
import time

import pytest

from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import demo_repos
from support import (
    GATED_TOKEN,
    MODEL,
    VALID_TOKEN,
    closed_port,
    misbehaving_server,
    pproxy,
    self_signed_cert,
    tls_context,
)


def diagnose(cli, *args, env=None):
    """Run diagnose twice, --json and human; return (json, human result). Both must agree on the exit code."""
    as_json = cli("diagnose", MODEL, "--timeout", "1", "--json", *args, env=env)
    human = cli("diagnose", MODEL, "--timeout", "1", *args, env=env)
    assert as_json.exit_code == human.exit_code, (as_json.output, human.output)
    assert "Traceback" not in as_json.output + human.output
    return json.loads(as_json.stdout), human


def route(report: dict, endpoint: str, via_proxy: bool = False) -> dict:
    matches = [r for r in report["routes"] if r["endpoint"] == endpoint and bool(r["proxy"]) == via_proxy]
    assert len(matches) == 1, [r["label"] for r in report["routes"]]
    return matches[0]


def check(report: dict, group: str, name_part: str) -> dict:
    matches = [c for c in report["checks"] if c["group"] == group and name_part in c["name"]]
    assert matches, [(c["group"], c["name"]) for c in report["checks"]]
    return matches[0]


def test_official_hub_dns_fails_and_the_mirror_is_recommended_with_its_env_line(sim, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    report, human = diagnose(cli)
    assert human.exit_code == 0 and report["ok"] is True
    hub = route(report, "http://hub.invalid")
    assert hub["failed_layer"] == "dns" and "does not resolve" in hub["layers"][0]["detail"]
    mirror = route(report, sim.url)
    assert mirror["works"] and mirror["serves_repo"]
    assert [c["name"] for c in mirror["layers"]] == ["dns", "tcp", "http", "speed"]
    assert "B/s" in mirror["layers"][-1]["detail"]  # a real throughput sample from the simulator's CDN
    assert sim.requests_for("/cdn/*", "GET")
    verdict = report["verdict"]
    assert verdict["route"] == f"mirror {sim.url}"
    assert verdict["env_lines"] == [f"HF_ENDPOINT={sim.url}"]
    assert verdict["flags"] == [f"--endpoint {sim.url}"]
    assert "fails at DNS" in verdict["headline"]
    # The human verdict carries the exact line to paste.
    assert f"Use mirror {sim.url}: hub http://hub.invalid fails at DNS." in human.stdout
    assert f"    HF_ENDPOINT={sim.url}\n" in human.stdout


def test_a_dead_mirror_in_dotenv_is_replaced_by_the_one_that_works(sim, cli, isolated, monkeypatch):
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    dotenv = isolated / "work" / ".env"
    dead = f"http://127.0.0.1:{closed_port()}"
    dotenv.write_text(f"HF_ENDPOINT={dead}\n")
    report, human = diagnose(cli)
    verdict = report["verdict"]
    assert verdict["headline"] == f"Use mirror {sim.url}: mirror {dead} fails at TCP connect."
    assert verdict["env_lines"] == [f"HF_ENDPOINT={sim.url}"]
    assert verdict["remove"] == [f"HF_ENDPOINT={dead} (set in {dotenv}: delete that line): that mirror fails"]
    assert f"  Add to {dotenv}:\n    HF_ENDPOINT={sim.url}\n" in human.stdout


def test_mirror_already_in_dotenv_works_as_configured(sim, cli, isolated):
    (isolated / "work" / ".env").write_text(f"HF_ENDPOINT={sim.url}\n")
    report, human = diagnose(cli)
    assert human.exit_code == 0
    assert report["verdict"]["env_lines"] == [] and report["verdict"]["remove"] == []
    assert report["verdict"]["headline"] == f"Downloads work as configured, through mirror {sim.url}."
    assert f"{sim.url}  (.env ({isolated / 'work' / '.env'}))" in check(report, "settings", "HF_ENDPOINT")["detail"]


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
def test_only_the_proxy_route_works_and_the_proxy_is_recommended(sim, cli, tmp_path, monkeypatch, scheme):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    log = tmp_path / "pproxy.log"
    with pproxy(sim.port, log) as port:
        proxy = f"{scheme}://127.0.0.1:{port}"
        report, human = diagnose(cli, "--proxy", proxy)
    assert human.exit_code == 0
    assert route(report, "http://hub.invalid")["failed_layer"] == "dns"
    proxied = route(report, "http://hub.invalid", via_proxy=True)
    assert proxied["works"] and [c["name"] for c in proxied["layers"]] == ["proxy", "http", "speed"]
    assert "-> hub.invalid:80" in log.read_text()  # the traffic really went through the proxy
    verdict = report["verdict"]
    assert verdict["route"] == f"hub http://hub.invalid via proxy {proxy}"
    assert verdict["env_lines"] == [f"HTTP_PROXY={proxy}"]  # the endpoint is http://; for https:// it is HTTPS_PROXY
    assert verdict["flags"] == [f"--proxy {proxy}"]
    assert f"    HTTP_PROXY={proxy}\n" in human.stdout
    assert [c["status"] for c in report["checks"] if c["group"] == "proxy" and c["subject"]] == ["ok", "ok", "ok"]


def test_a_socks5_proxy_that_leaves_dns_here_gets_socks5h_advice(sim, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://modelscope.invalid")
    with pproxy(sim.port, tmp_path / "pproxy.log") as port:
        report, human = diagnose(cli, "--proxy", f"socks5://127.0.0.1:{port}")
    proxied = route(report, "http://hub.invalid", via_proxy=True)
    assert proxied["failed_layer"] == "dns" and "socks5h://" in proxied["layers"][-1]["hint"]
    assert human.exit_code == 1
    assert any(f"write it as socks5h://127.0.0.1:{port}" in a for a in report["verdict"]["advice"])


def test_a_dead_proxy_is_named_and_the_route_that_works_is_recommended(sim, cli, isolated, monkeypatch):
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    dead = f"http://127.0.0.1:{closed_port()}"
    dotenv = isolated / "work" / ".env"
    dotenv.write_text(f"HTTP_PROXY={dead}\nHTTPS_PROXY={dead}\n")
    report, human = diagnose(cli)
    assert human.exit_code == 0
    reachable = check(report, "proxy", f"proxy {dead}: reachable")
    assert reachable["status"] == "fail" and "connection refused" in reachable["detail"]
    assert route(report, sim.url, via_proxy=True)["failed_layer"] == "proxy"
    verdict = report["verdict"]
    assert verdict["route"] == f"mirror {sim.url}"
    assert verdict["env_lines"] == [f"HF_ENDPOINT={sim.url}"]
    assert verdict["remove"] == [f"{key}={dead} (set in {dotenv}: delete that line): the proxy is not working"
                                 for key in ("HTTPS_PROXY", "HTTP_PROXY")]
    assert any(f"The proxy {dead} is not usable: the proxy 127.0.0.1:" in a and "connection refused" in a
               for a in verdict["advice"])
    assert f"  Remove:\n    HTTPS_PROXY={dead} (set in {dotenv}: delete that line)" in human.stdout
    assert "connection refused" in human.stdout


def test_nothing_reachable_names_the_failing_layer_of_each_endpoint_and_exits_1(cli, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)
    closed = f"http://127.0.0.1:{closed_port()}"
    with HubSimulator(demo_repos(large_mb=1), tls=tls_context(cert, key)) as tls_hub, \
            misbehaving_server("hang") as hang, misbehaving_server("portal") as portal:
        portal_url, hang_url = f"http://127.0.0.1:{portal}", f"http://127.0.0.1:{hang}"
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
        monkeypatch.setenv("HFGET_KNOWN_MIRRORS", f"{closed},{portal_url}")
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", hang_url)
        started = time.monotonic()
        report, human = diagnose(cli, "--endpoint", tls_hub.url)
        elapsed = time.monotonic() - started
    assert human.exit_code == 1 and report["ok"] is False and report["exit_code"] == 1
    layers = {r["endpoint"]: r["failed_layer"] for r in report["routes"]}
    assert layers == {tls_hub.url: "tls", "http://hub.invalid": "dns", closed: "tcp", portal_url: "http", hang_url: "http"}
    details = {r["endpoint"]: r["layers"][-1]["detail"] for r in report["routes"]}
    assert "certificate problem with 127.0.0.1: self-signed certificate" in details[tls_hub.url]
    assert "did not answer" in details[portal_url] and "like a Hugging Face hub" in details[portal_url]
    assert "stopped answering" in details[hang_url] or "no answer" in details[hang_url]
    assert report["verdict"]["route"] is None and report["verdict"]["env_lines"] == []
    assert len(report["verdict"]["failures"]) == 5
    for needle in ("No route works from here", "fails at DNS", "fails at TLS", "fails at TCP connect", "fails at HTTP (API)"):
        assert needle in human.stdout
    assert elapsed < 20  # both runs together; each is bounded by ~3x the 1 s step timeout


def test_a_hanging_or_trickling_endpoint_does_not_hang_diagnose_with_default_timeouts(sim, cli, monkeypatch):
    """The issue's bound: about 15 s at most, even when servers accept connections and then never finish answering.

    The trickling server sends one byte every 0.3 s, so no socket timeout ever fires: only diagnose's own time
    limit stops it. Default step timeout (4 s) here, so this test takes ~13 s.
    """
    sim.add_fault("hang", "/api/*")
    with misbehaving_server("trickle") as trickle, misbehaving_server("hang") as hang:
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", f"http://127.0.0.1:{trickle}")
        monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{hang}")
        started = time.monotonic()
        result = cli("diagnose", MODEL, "--json")
        elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["timeout"] == 4
    trickled = route(report, f"http://127.0.0.1:{trickle}")
    assert trickled["failed_layer"] == "http" and "still no answer after 13 s" in trickled["layers"][-1]["detail"]
    hung = route(report, sim.url)
    assert [c["status"] for c in hung["layers"]] == ["ok", "ok", "fail"]  # DNS and TCP fine, the API hangs
    assert "read timed out" in hung["layers"][-1]["detail"]


def test_certificate_problems_are_named_and_the_ca_bundle_fixes_them(cli, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)
    with HubSimulator(demo_repos(large_mb=1), tls=tls_context(cert, key)) as hub:
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", hub.url)
        untrusted, _ = diagnose(cli)
        tls = route(untrusted, hub.url)["layers"][2]
        assert (tls["name"], tls["status"]) == ("tls", "fail")
        assert "certificate problem" in tls["detail"] and "REQUESTS_CA_BUNDLE" in tls["hint"]
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        trusted, human = diagnose(cli)
    assert human.exit_code == 0
    layers = route(trusted, hub.url)["layers"]
    assert [(c["name"], c["status"]) for c in layers[:3]] == [("dns", "ok"), ("tcp", "ok"), ("tls", "ok")]
    assert "certificate for 127.0.0.1 issued by 127.0.0.1, verified" in layers[2]["detail"]
    assert trusted["verdict"]["headline"] == f"Downloads work as configured, through hub {hub.url}."


def test_a_certificate_for_another_name_is_named_as_such(cli, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path, ("mirror.example.invalid",))
    with HubSimulator(demo_repos(large_mb=1), tls=tls_context(cert, key)) as hub:
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", hub.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        report, _ = diagnose(cli)
    tls = route(report, hub.url)["layers"][2]
    assert tls["status"] == "fail" and "certificate problem" in tls["detail"] and "mismatch" in tls["detail"].lower()


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
def test_proxy_authentication_is_checked_and_the_password_never_shown(sim, cli, tmp_path, monkeypatch, scheme):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    with pproxy(sim.port, tmp_path / "pproxy.log", auth="alice:s3cret-pass") as port:
        wrong, wrong_human = diagnose(cli, "--proxy", f"{scheme}://alice:wrong-pass@127.0.0.1:{port}")
        right, right_human = diagnose(cli, "--proxy", f"{scheme}://alice:s3cret-pass@127.0.0.1:{port}")
        none, _ = diagnose(cli, "--proxy", f"{scheme}://127.0.0.1:{port}")
    masked = f"{scheme}://alice:****@127.0.0.1:{port}"
    auth = check(wrong, "proxy", f"proxy {masked}: authentication")
    assert auth["status"] == "fail" and "rejected" in auth["detail"]
    assert check(right, "proxy", f"proxy {masked}: authentication")["detail"] == "user and password accepted"
    assert "requires a user name and password" in check(none, "proxy", "authentication")["detail"]
    assert wrong_human.exit_code == 1 and right_human.exit_code == 0
    assert right["verdict"]["env_lines"] == [f"HTTP_PROXY={masked}"]
    for output in (wrong_human.output, right_human.output, json.dumps(wrong), json.dumps(right)):
        assert "wrong-pass" not in output and "s3cret-pass" not in output


def test_settings_provenance_shadowing_conflicts_and_masked_tokens(sim, cli, isolated, monkeypatch):
    dotenv = isolated / "work" / ".env"
    dotenv.write_text(f"HF_TOKEN={GATED_TOKEN}\nHF_HUB_OFFLINE=1\nHTTP_PROXY=http://127.0.0.1:{closed_port()}\n"
                      "MODELSCOPE_API_TOKEN=ms-secret-modelscope-token-0000\n")
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)
    report, human = diagnose(cli)
    token = check(report, "settings", "HF_TOKEN")["detail"]
    assert token == f"hf_****1234  (env); shadows hf_****5678 from .env ({dotenv})"
    assert check(report, "settings", ".env file")["detail"] == f"{dotenv} (in the working folder)"
    assert check(report, "conflicts", "HF_HUB_OFFLINE")["status"] == "warn"
    assert "HTTPS_PROXY is not" in check(report, "conflicts", "HTTP_PROXY only")["detail"]
    hf = check(report, "tokens", "HF token")
    assert hf["status"] == "ok" and hf["detail"].startswith("hf_****1234 from HF_TOKEN from env: alice")
    assert "hf_****5678" in check(report, "tokens", "shadowed HF tokens")["detail"]
    for output in (human.output, json.dumps(report)):
        assert VALID_TOKEN not in output and GATED_TOKEN not in output and "ms-secret-modelscope-token" not in output


def test_malformed_settings_are_reported_and_diagnose_carries_on(sim, cli, isolated, monkeypatch):
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    (isolated / "work" / ".env").write_text("HF_ENDPOINT=hf-mirror.invalid\nHTTPS_PROXY=127.0.0.1:7890\n")
    report, human = diagnose(cli)
    assert human.exit_code == 0  # the known mirror still works
    endpoint = check(report, "settings", "HF_ENDPOINT")
    assert endpoint["status"] == "fail" and endpoint["hint"] == "Write it with its scheme: HF_ENDPOINT=https://hf-mirror.invalid"
    # A proxy without scheme is what requests, pip and curl take it for: http://, said as a warning with the fix.
    proxy = check(report, "proxy", "no scheme")
    assert proxy["status"] == "warn" and "taken as http://127.0.0.1:7890" in proxy["detail"]
    assert proxy["hint"] == "Write it with its scheme: HTTPS_PROXY=http://127.0.0.1:7890"
    assert report["verdict"]["route"] == f"mirror {sim.url}"
    # The verdict starts from the broken setting, with its fix, before the route to use.
    assert report["verdict"]["fix_first"] == [endpoint["detail"] + ". Fix: " + endpoint["hint"]]
    assert human.stdout.index("Fix these settings first:") < human.stdout.index(f"Use mirror {sim.url}")


def test_cache_folders_are_checked(cli, isolated, monkeypatch):
    blocker = isolated / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HF_HUB_CACHE", str(blocker / "hub"))
    report, _ = diagnose(cli)
    hub_cache = check(report, "cache", "hub cache")
    assert hub_cache["status"] == "fail" and "is a file, not a folder" in hub_cache["detail"]
    home = check(report, "cache", "HF_HOME")
    assert home["status"] in ("ok", "warn") and "writable" in home["detail"] and "free" in home["detail"]
    versions = {c["name"] for c in report["checks"] if c["group"] == "versions"}
    assert {"Python", "hfget", "huggingface_hub", "modelscope"} <= versions


def test_a_proxy_url_with_the_wrong_scheme_is_named_as_such(sim, cli, tmp_path):
    # A SOCKS-only proxy given as http://: it hangs up on the HTTP CONNECT.
    with pproxy(sim.port, tmp_path / "pproxy.log", protocols="socks5") as port:
        report, human = diagnose(cli, "--proxy", f"http://127.0.0.1:{port}")
    protocol = check(report, "proxy", "protocol")
    assert protocol["status"] == "fail" and "does not answer as an HTTP proxy" in protocol["detail"]
    assert "a SOCKS proxy needs socks5h://" in protocol["hint"] and human.exit_code == 1
    # A web server given as socks5h://: it waits for a request line that never comes.
    report, _ = diagnose(cli, "--proxy", f"socks5h://127.0.0.1:{sim.port}")
    protocol = check(report, "proxy", "protocol")
    assert protocol["status"] == "fail" and "does not answer as a socks5h proxy" in protocol["detail"]
    assert "http:// vs socks5h://" in protocol["hint"]
