"""Diagnose's verdict starts from what its checks flagged: a proxy or endpoint without scheme, a malformed proxy, a
mirror that accepts and never answers. It never says "No proxy is configured" when one was given."""

from __future__ import annotations

import json

from support import MODEL, closed_port, misbehaving_server


def _diagnose(cli, *args, env=None):
    as_json = cli("diagnose", MODEL, "--timeout", "1", "--json", *args, env=env)
    human = cli("diagnose", MODEL, "--timeout", "1", *args, env=env)
    assert "Traceback" not in as_json.output + human.output and "Internal error" not in human.output
    return json.loads(as_json.stdout), human


def test_a_proxy_without_scheme_is_tested_as_http_and_named_in_the_verdict(cli):
    port = closed_port()
    report, human = _diagnose(cli, "--proxy", f"127.0.0.1:{port}")
    verdict = report["verdict"]
    assert report["ok"] is False
    assert any(r["proxy"] == f"http://127.0.0.1:{port}" for r in report["routes"])  # tested, as http://
    assert not any("No proxy is configured" in a for a in verdict["advice"])
    assert any(f"The proxy http://127.0.0.1:{port} is not usable" in a for a in verdict["advice"]), verdict["advice"]
    note = [c for c in report["checks"] if c["name"] == "no scheme"][0]
    assert note["status"] == "warn" and note["hint"] == f"Write it with its scheme: --proxy http://127.0.0.1:{port}"
    assert "No proxy is configured" not in human.stdout


def test_a_malformed_proxy_comes_first_and_is_not_called_missing(cli):
    report, human = _diagnose(cli, "--proxy", "http://alice:s3cret-pw@127.0.0.1:78900")
    verdict = report["verdict"]
    assert verdict["fix_first"][0].startswith("The proxy http://alice:****@127.0.0.1:78900 (--proxy) has the port "
                                              "'78900', which is not a number from 1 to 65535.")
    assert not any("No proxy is configured" in a for a in verdict["advice"])
    assert any("Your proxy setting (HFGET_PROXY) could not be used" in a for a in verdict["advice"])
    out = human.stdout
    assert out.index("Fix these settings first:") < out.index("No route works from here")
    assert "s3cret-pw" not in human.output + json.dumps(report)


def test_an_endpoint_without_scheme_is_the_first_thing_to_fix(cli, isolated):
    dotenv = isolated / "work" / ".env"
    dotenv.write_text("HF_ENDPOINT=hf-mirror.invalid\n")
    report, human = _diagnose(cli)
    first = report["verdict"]["fix_first"][0]
    assert first == (f"HF_ENDPOINT=hf-mirror.invalid (.env ({dotenv})) has no scheme; diagnose carries on without "
                     "it. Fix: Write it with its scheme: HF_ENDPOINT=https://hf-mirror.invalid")
    assert human.stdout.index("Fix these settings first:") < human.stdout.index("No route works")


def test_a_configured_mirror_that_never_answers_is_named_for_removal(sim, cli, isolated, monkeypatch):
    dotenv = isolated / "work" / ".env"
    with misbehaving_server("hang") as port:
        hanging = f"http://127.0.0.1:{port}"
        dotenv.write_text(f"HF_ENDPOINT={hanging}\n")
        report, _ = _diagnose(cli)  # nothing else works either (the isolated hub and ModelScope are closed ports)
        remove = report["verdict"]["remove"]
        assert remove == [f"HF_ENDPOINT={hanging} (set in {dotenv}: delete that line): 127.0.0.1:{port} stopped "
                          "answering (read timed out)."]
        # With a mirror that works, the verdict replaces the hanging one.
        monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
        report, _ = _diagnose(cli)
    assert report["verdict"]["route"] == f"mirror {sim.url}"
    assert report["verdict"]["remove"][0].startswith(f"HF_ENDPOINT={hanging} (set in {dotenv}: delete that line)")


def test_an_https_proxy_that_speaks_plain_http_is_named_with_its_fix(sim, cli, tmp_path):
    from support import pproxy

    with pproxy(sim.port, tmp_path / "p.log", protocols="http") as port:
        report, human = _diagnose(cli, "--proxy", f"https://127.0.0.1:{port}")
    protocol = [c for c in report["checks"] if c["group"] == "proxy" and c["name"].endswith(": protocol")][0]
    assert protocol["status"] == "fail" and "this proxy speaks plain HTTP" in protocol["detail"]
    assert protocol["hint"].startswith(f"Use http://127.0.0.1:{port} ")
    assert any(f"Use http://127.0.0.1:{port}" in a for a in report["verdict"]["advice"])
