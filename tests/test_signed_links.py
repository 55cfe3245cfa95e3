"""Signed CDN links that expire, or that are signed for one byte range: the download goes on through fresh links,
with one re-resolve per expiry shared by every connection of the file, and without counting any of it as a failure.
A refusal from the hub itself is still an auth error."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import SimRepo, blob_file, text_file
from support import official_offline_load

BIG = "hfget-demo/big-model"
MIB = 1 << 20


@pytest.fixture(scope="module")
def _big_sim():
    repo = SimRepo(BIG)
    repo.commit([text_file("config.json", "{}\n"), blob_file("model.safetensors", 96 * MIB, seed=41)])
    with HubSimulator([repo]) as sim:
        _ = repo.commits[repo.refs["main"]]["model.safetensors"].content.sha256  # hashed once, not under a timer
        yield sim


@pytest.fixture
def big_sim(_big_sim):
    _big_sim.clear_log()
    _big_sim.clear_faults()
    _big_sim.link_ttl, _big_sim.link_per_range, _big_sim.rate_limit = None, False, 0
    yield _big_sim


def _weights(sim):
    repo = sim.repo(BIG)
    return repo.commits[repo.refs["main"]]["model.safetensors"]


def _cdn_bytes(sim) -> int:
    """File bytes the CDN sent (not its refusals' short bodies)."""
    return sum(r.body_bytes for r in sim.requests_for("/cdn/*", "GET") if r.status in (200, 206))


def _signature(record) -> str:
    return parse_qs(record.query)["sig"][0]


def _resolves(sim) -> list:
    return sim.requests_for(f"/{BIG}/resolve/*/model.safetensors", "GET")


@pytest.mark.parametrize(
    ("ttl", "connections"),
    [(2.0, None), (2.0, "8"), (1.2, None)],
    # With 64 connections at 1 MiB/s the file may take little more than one 2 s lifetime of its first link on a fast
    # machine; links valid 1.2 s are outlived by default settings on any machine (the second round of pieces).
    ids=["2s-default", "2s-8-connections", "1.2s-default"],
)
def test_links_that_expire_do_not_stop_a_long_download(big_sim, cache, cli, ttl, connections):
    f = _weights(big_sim)
    big_sim.link_ttl = ttl
    big_sim.rate_limit = MIB  # per connection: with 8 connections the file takes 12 s, six lifetimes of a link
    extra = ["--connections", connections] if connections else []
    result = cli("download", BIG, "model.safetensors", "--endpoint", big_sim.url, "--cache-dir", cache, *extra)
    assert result.exit_code == 0, result.output
    assert official_offline_load(cache, BIG, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256
    assert _cdn_bytes(big_sim) <= 1.25 * f.size
    cdn = big_sim.requests_for("/cdn/*", "GET")
    expired = [r for r in cdn if r.status == 403]
    if ttl < 2 or connections:
        assert expired, "the links did expire during the download (else this case shows nothing)"
    # No stampede: however many connections an expired link refused, one of them re-resolves it while the others
    # wait for the fresh link. (Without sharing, each refused connection resolves on its own.)
    assert len(_resolves(big_sim)) <= 1 + len({_signature(r) for r in expired})
    assert "retry" not in result.stderr and "FAILED" not in result.stderr  # an expired link is no failure


def test_links_signed_for_one_range_are_re_resolved_per_range(big_sim, cache, cli):
    f = _weights(big_sim)
    big_sim.link_per_range = True
    result = cli("download", BIG, "model.safetensors", "--endpoint", big_sim.url, "--cache-dir", cache,
                 "--connections", "8")
    assert result.exit_code == 0, result.output
    assert official_offline_load(cache, BIG, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256
    cdn = big_sim.requests_for("/cdn/*", "GET")
    refused = [r for r in cdn if r.status == 403]
    assert 1 <= len(refused) <= 8  # learnt once (the connections trying the first link together), then per range
    assert _cdn_bytes(big_sim) == f.size
    assert len(_resolves(big_sim)) == len([r for r in cdn if r.status == 206])  # every piece through the hub


def test_a_refusal_from_the_hub_itself_is_still_an_auth_error(sim, cache, cli):
    """The gate of a gated repo answers the resolve URL itself: no link to refresh, the error says what to do."""
    result = cli("download", "hfget-demo/gated-model", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "gated" and "accept" in error["hint"].lower()
    assert not sim.requests_for("/cdn/*")
