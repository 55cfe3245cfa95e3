"""A mirror whose redirect leaks a CDN host that does not resolve here (hf-mirror.com has at times passed the hub's
`cas-bridge.xethub.hf.co` through, blocked where people need a mirror): the error names the redirect and the host,
the fix is not "use a mirror", and the file goes to the next source in the chain."""

from __future__ import annotations

import json

import pytest

from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import demo_repos
from support import MODEL, MODEL_DIR, expected_files, official_offline_load

LEAKED = "cas-bridge.xethub.invalid"


@pytest.fixture
def leaky_mirror(sim):
    sim.cdn_base = f"http://{LEAKED}:{sim.cdn_port}"  # LFS redirects point at a host nothing resolves
    return sim


def test_an_unresolvable_redirect_is_named_and_the_fix_fits(leaky_mirror, cache, cli):
    result = cli("download", MODEL, "model.safetensors", "--endpoint", leaky_mirror.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    mirror = leaky_mirror.url.split("://", 1)[1]
    assert f"mirror {mirror} redirected model.safetensors to host {LEAKED}" in error["message"]
    assert "does not resolve here" in error["message"]
    assert "use a mirror" not in error["hint"].lower() and "hf-mirror.com" not in error["hint"]
    assert "ModelScope" in error["hint"] and f"proxy that reaches {LEAKED}" in error["hint"]
    # Given up at once (retrying a name that does not resolve cannot help), not after five rounds of backoff.
    assert len(leaky_mirror.requests_for("*/resolve/*/model.safetensors", "GET")) == 1
    weights = leaky_mirror.repo(MODEL).commits[leaky_mirror.repo(MODEL).refs["main"]]["model.safetensors"]
    assert not (cache / MODEL_DIR / "blobs" / weights.etag).exists()  # nothing placed


@pytest.fixture
def modelscope_sim():
    """ModelScope, reachable, with the same models (another simulator: its CDN is not the leaked one)."""
    with HubSimulator(demo_repos(large_mb=6)) as other:
        yield other


def test_with_modelscope_reachable_the_files_come_from_it(leaky_mirror, modelscope_sim, cache, cli, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", modelscope_sim.url)
    result = cli("download", MODEL, "--endpoint", leaky_mirror.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sources = {f["path"]: f["source"] for f in data["files"]}
    assert sources["model.safetensors"] == sources["onnx/model.onnx"] == "modelscope"  # the LFS files
    assert sources["config.json"] == "mirror"  # the mirror serves what it does not redirect
    mirror_attempt = next(a for a in data["attempts"] if a["source"] == "mirror" and a["outcome"] == "partial")
    assert f"to host {LEAKED}" in mirror_attempt["why"]
    assert official_offline_load(cache, MODEL)["files"] == expected_files(leaky_mirror, MODEL)


def test_a_source_that_was_never_reached_does_not_hide_what_the_mirror_said():
    """On a loaded machine the chain can hand the file to the next source before that source's probe has answered;
    when it then cannot even connect, the mirror's redirect to a blocked host stays the error (seen once in CI as
    "Connection to 127.0.0.1:… was refused" instead of the test above's message)."""
    from hfget.download import more_telling
    from hfget.errors import ConnectError, DnsError, ServerError, UnreachableRedirect

    leaked = UnreachableRedirect("mirror redirected model.safetensors to host cas-bridge.xethub.invalid", "")
    refused, no_host = ConnectError("refused", ""), DnsError("no such host", "")
    assert more_telling(leaked, refused) is leaked and more_telling(leaked, no_host) is leaked
    assert more_telling(None, refused) is refused  # the only failure
    server = ServerError("HTTP 500", "")
    assert more_telling(refused, server) is server  # a source that answered says more
    assert more_telling(server, ServerError("HTTP 502", "")).message == "HTTP 502"  # both answered: the latest
