"""The source chain on real loopback servers: fallback, handover mid-file, ModelScope, gated repos, token routing."""

from __future__ import annotations

import json

import pytest

from hfget.testing.hubsim import HubSimulator, SimUser, modelscope_commit
from hfget.testing.simrepo import SimRepo, blob_file, demo_repos, text_file

from support import (
    GATED_TOKEN,
    MODEL,
    MODEL_DIR,
    VALID_TOKEN,
    closed_port,
    expected_files,
    hfget_partials,
    official_offline_load,
    tree_state,
)


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("official", ["http://hub.invalid", "http://127.0.0.1:{closed}"])
def test_official_hub_unreachable_a_known_mirror_serves_and_the_summary_says_why(sim, cache, cli, official, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", official.format(closed=closed_port()))
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    summary = _json(cli("download", MODEL, "--cache-dir", cache, "--json"))
    assert (summary["source"], summary["endpoint"]) == ("mirror", sim.url)
    hub, mirror = summary["attempts"][:2]
    assert hub["source"] == "hub" and hub["outcome"] == "skipped"
    assert ("does not resolve" in hub["why"]) if "invalid" in official else ("refused" in hub["why"])
    assert mirror == {"source": "mirror", "endpoint": sim.url, "outcome": "ok", "why": "known public mirror"}
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)

    # The human summary shows the same story.
    text = cli("download", MODEL, "--cache-dir", cache, "-r", "v1.0").stdout
    assert "Sources tried" in text and "skipped" in text and "known public mirror" in text


def _span(range_header: str, size: int) -> tuple[int, int]:
    first, _, last = range_header[len("bytes="):].partition("-")
    return int(first), int(last) + 1 if last else size


def test_a_mirror_that_dies_half_way_hands_over_to_the_next_source_keeping_received_bytes(sim, cache, cli, monkeypatch):
    with HubSimulator(demo_repos(large_mb=6)) as official:
        weights = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
        half = weights.size // 2
        sim.add_fault("truncate", "model.safetensors", where="cdn", at=half)  # never serves past the middle
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", official.url)
        monkeypatch.setenv("HFGET_RETRIES", "2")
        result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
        summary = _json(result)
        by_path = {f["path"]: f for f in summary["files"]}
        assert by_path["model.safetensors"]["source"] == "hub"
        assert {f["source"] for p, f in by_path.items() if p != "model.safetensors"} == {"mirror"}
        # The next source sent only the second half: the first half, from the mirror, was kept.
        assert official.body_bytes_served("/cdn/*") == weights.size - half
        # (asked for in pieces, which together cover exactly the second half)
        spans = sorted(_span(r.range, weights.size) for r in official.requests_for("/cdn/*", "GET"))
        assert spans[0][0] == half and spans[-1][1] == weights.size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        outcomes = [(a["source"], a["outcome"]) for a in summary["attempts"]]
        assert outcomes == [("mirror", "ok"), ("mirror", "partial"), ("hub", "ok")]
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_every_hugging_face_source_fails_and_modelscope_serves_into_the_hf_cache(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    summary = _json(cli("download", MODEL, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--cache-dir", cache, "--json"))
    assert summary["source"] == "modelscope"
    assert [a["outcome"] for a in summary["attempts"]] == ["skipped", "skipped", "ok"]
    ms_commit = modelscope_commit(sim.repo(MODEL).refs["main"])
    assert summary["commit"] == ms_commit  # ModelScope's own commit id names the snapshot
    assert sim.requests_for("/api/v1/models/hfget-demo/tiny-model/repo/files")
    # huggingface_hub loads it offline under the Hugging Face id, at main.
    loaded = official_offline_load(cache, MODEL)
    assert loaded["files"] == expected_files(sim, MODEL)
    assert loaded["path"].endswith(f"models--hfget-demo--tiny-model/snapshots/{ms_commit}")
    # Regular files are named by their git blob id, as the hub names them; LFS files by sha256.
    blobs = {p.name for p in (cache / MODEL_DIR / "blobs").iterdir()}
    files = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]
    assert blobs == {f.etag for f in files.values()}
    # A second run moves nothing.
    again = _json(cli("download", MODEL, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--cache-dir", cache, "--json"))
    assert again["bytes_downloaded"] == 0


def test_use_modelscope_puts_it_first_and_ids_are_mapped(cache, cli, monkeypatch, isolated):
    llama = SimRepo("meta-llama/Tiny-Llama", modelscope_id="LLM-Research/Tiny-Llama")
    llama.commit([text_file("config.json", "{}\n"), blob_file("model.safetensors", 50_000, seed=5)])
    other = SimRepo("someone/renamed", modelscope_id="elsewhere/renamed-on-ms")
    other.commit([text_file("config.json", '{"a": 1}\n')])
    monkeypatch.delenv("MODELSCOPE_ENDPOINT")  # let the .env file speak (the environment would win over it)
    with HubSimulator([llama, other]) as ms:
        (isolated / "work" / ".env").write_text(f"USE_MODELSCOPE=True\nMODELSCOPE_ENDPOINT={ms.url}\n")
        summary = _json(cli("download", "meta-llama/Tiny-Llama", "--cache-dir", cache, "--json"))
        assert summary["source"] == "modelscope"
        assert summary["attempts"][0]["why"].startswith("ModelScope (USE_MODELSCOPE is set)")
        assert ms.requests_for("/api/v1/models/LLM-Research/Tiny-Llama/repo/files")

        missing = cli("download", "someone/renamed", "--cache-dir", cache)
        assert missing.exit_code == 1 and "--modelscope-id" in missing.stderr
        summary = _json(cli("download", "someone/renamed", "--modelscope-id", "elsewhere/renamed-on-ms",
                            "--cache-dir", cache, "--json"))
        assert summary["source"] == "modelscope"
    assert official_offline_load(cache, "meta-llama/Tiny-Llama")["files"].keys() == {"config.json", "model.safetensors"}


def test_a_closed_gate_is_the_error_when_the_other_source_then_fails_on_the_network(sim, cache, cli, monkeypatch):
    """The hub says the repo is gated; ModelScope serves its listing but every file body breaks off. What the user
    must do is open the gate (accept the license, set HF_TOKEN), so that is the error, with ModelScope's failure in
    the table. (Seen on a loaded machine with ModelScope on a refused port whose probe had not yet answered: the
    connection error was reported instead.)"""
    before = tree_state(cache)
    with HubSimulator(demo_repos(large_mb=1)) as ms:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", ms.url)
        ms.add_fault("reset", "*", after=0)
        result = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache, "--json",
                     env={"HFGET_RETRIES": "1", "HFGET_READ_TIMEOUT": "2"})
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert "is gated" in error["message"] and "HF_TOKEN" in error["hint"], error
    assert [a["source"] for a in error["attempts"] if a["outcome"] == "failed"][-1] == "modelscope", error["attempts"]
    repo = cache / "models--hfget-demo--gated-model"
    assert not hfget_partials(repo / "blobs")  # nothing half-written kept (the bodies broke off at their first byte)
    assert not [p for p in (repo / "snapshots").rglob("*") if p.is_file()]  # no file of it to load
    assert {k for k in tree_state(cache) if not k.startswith((".locks", "models--", "CACHEDIR.TAG"))} == set(before)


def test_gated_repo_needs_a_token_and_opens_with_one(sim, cache, cli, monkeypatch):
    before = tree_state(cache)
    denied = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache)
    assert denied.exit_code == 1
    assert "is gated" in denied.stderr and "accept" in denied.stderr and "HF_TOKEN" in denied.stderr
    assert tree_state(cache) == before

    # A token the hub does not know for this gate: told to request access.
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    pending = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache, "--allow-token-to-mirror")
    assert pending.exit_code == 1 and "not been granted access" in pending.stderr

    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    sim.clear_log()
    # Without the opt-in the token stays home, and the error says so.
    withheld = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache)
    assert withheld.exit_code == 1 and "--allow-token-to-mirror" in withheld.stderr
    assert not any(r.authorization for r in sim.requests_for())
    ok = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache, "--allow-token-to-mirror")
    assert ok.exit_code == 0, ok.output
    assert f"Your HF token hf_****5678 (from env (HF_TOKEN)) was sent to 127.0.0.1:{sim.port}, which is not " \
           "huggingface.co: allowed by HFGET_ALLOW_TOKEN_TO_MIRROR (flag)." in ok.stdout  # the warning, masked
    assert GATED_TOKEN not in ok.output
    assert official_offline_load(cache, "hfget-demo/gated-model")["files"] == expected_files(sim, "hfget-demo/gated-model")


def test_the_official_hub_gets_the_token_without_opt_in(sim, cache, cli, monkeypatch, isolated):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)  # the simulator plays huggingface.co
    (isolated / "work" / ".env").write_text(f"HF_TOKEN={GATED_TOKEN}\n")
    result = cli("download", "hfget-demo/gated-model", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert any(r.authorization == f"Bearer {GATED_TOKEN}" for r in sim.requests_for("/hfget-demo/gated-model/resolve/*"))


def test_no_authorization_reaches_a_mirror_without_opt_in_nor_any_cdn(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    assert cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache).exit_code == 0
    assert sim.requests_for() and not any(r.authorization for r in sim.requests_for())

    sim.clear_log()
    opted = cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "--allow-token-to-mirror")
    assert opted.exit_code == 0
    assert any(r.authorization for r in sim.requests_for("/api/models/*"))
    cdn = sim.requests_for("/cdn/*")
    assert cdn and not any(r.authorization for r in cdn)  # the CDN is another origin: never the token


def test_plain_http_mirror_on_another_host_gets_no_token_even_with_opt_in(sim, cache, cli, monkeypatch):
    from hfget import config
    from hfget.net.tokens import decide

    settings = config.resolve({"HF_TOKEN": VALID_TOKEN, "HFGET_ALLOW_TOKEN_TO_MIRROR": "1"})
    assert decide("http://mirror.example.org", settings).grant is None
    assert "plain http" in decide("http://mirror.example.org", settings).note
    assert decide("http://127.0.0.1:9", settings).grant is not None  # a local mirror (olah) is fine
    assert decide("https://mirror.example.org", settings).grant is not None
    insecure = config.resolve({"HF_TOKEN": VALID_TOKEN, "HFGET_ALLOW_TOKEN_TO_MIRROR": "1", "HFGET_ALLOW_INSECURE_TOKEN": "1"})
    assert decide("http://mirror.example.org", insecure).grant is not None
    assert decide("https://huggingface.co", config.resolve({"HF_TOKEN": VALID_TOKEN})).grant is not None


def test_source_flag_sets_the_order(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    summary = _json(cli("download", MODEL, "--source", "modelscope", "--source", "mirror", "--endpoint", sim.url,
                        "--cache-dir", cache, "--json"))
    assert summary["source"] == "modelscope"
    bad = cli("download", MODEL, "--source", "github", "--cache-dir", cache)
    assert bad.exit_code == 2 and "Unknown source 'github'" in bad.stderr


def test_nothing_reachable_names_every_route(cache, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    result = cli("download", MODEL, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--cache-dir", cache, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["message"].startswith("No source could be reached (")
    assert [a["source"] for a in error["attempts"]] == ["mirror", "hub", "modelscope"]
    assert "DNS lookup failed: http://hub.invalid" in error["message"] and "connection refused: " in error["message"]
    assert "does not resolve" in error["attempts"][1]["why"]
    assert not cache.exists()


def test_a_gate_the_mirror_cannot_open_goes_to_the_hub_with_the_token_then_modelscope(sim, cache, cli, monkeypatch):
    gated = "hfget-demo/gated-model"
    with HubSimulator(demo_repos(large_mb=1), users=[SimUser(GATED_TOKEN, "bob", gated_access=frozenset({gated}))]) as hub:
        monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
        summary = _json(cli("download", gated, "--endpoint", sim.url, "--cache-dir", cache, "--json"))
        # The mirror listed the files but its gate stayed shut (the token is not sent to mirrors): the hub served.
        assert [(a["source"], a["outcome"]) for a in summary["attempts"]] == [("mirror", "ok"), ("mirror", "failed"), ("hub", "ok")]
        assert {f["source"] for f in summary["files"]} == {"hub"}
        assert not any(r.authorization for r in sim.requests_for())
        assert all(r.authorization == f"Bearer {GATED_TOKEN}" for r in hub.requests_for(f"/{gated}/resolve/*"))

    # No token at all, but ModelScope publishes the model openly: it serves, verified against the hub's hashes.
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    summary = _json(cli("download", gated, "--endpoint", sim.url, "--cache-dir", cache, "--json", "--revision", "main"))
    assert summary["bytes_downloaded"] == 0  # already there from the hub
    other = cache.parent / "other-cache"
    summary = _json(cli("download", gated, "--endpoint", sim.url, "--cache-dir", other, "--json"))
    assert {f["source"] for f in summary["files"]} == {"modelscope"}
    assert official_offline_load(other, gated)["files"] == expected_files(sim, gated)
