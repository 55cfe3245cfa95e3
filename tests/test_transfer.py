"""The transfer engine against real server misbehaviour: resume, ignored Range, resets, bursts of 5xx."""

from __future__ import annotations

import json

import pytest
from conftest import dead_hfget_partial, expected_files, leftovers, official_offline_load

MODEL = "hfget-demo/tiny-model"


def _weights(sim, revision="main"):
    repo = sim.repo(MODEL)
    return repo.commits[repo.resolve(revision)]["model.safetensors"]


def _partial(cache, f):
    """A partial an earlier, dead hfget run left."""
    return dead_hfget_partial(cache / "models--hfget-demo--tiny-model" / "blobs", f.etag)


def _asked(gets, size):
    """The byte ranges [start, end) that GET requests asked for (no Range header: the whole file)."""
    spans = []
    for r in gets:
        if r.range is None:
            spans.append((0, size))
            continue
        first, _, last = r.range[len("bytes="):].partition("-")
        spans.append((int(first), int(last) + 1 if last else size))
    return sorted(spans)


def test_resume_from_a_partial_moves_only_the_missing_bytes(sim, cache, cli):
    f = _weights(sim)
    half = f.size // 2
    _partial(cache, f).write_bytes(f.content.read(0, half))
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    assert sim.body_bytes_served("/cdn/*") == f.size - half
    assert json.loads(result.stdout)["bytes_downloaded"] == f.size - half
    # Several ranged requests (pieces), which together ask for exactly the missing half, each byte once.
    spans = _asked(sim.requests_for("/cdn/*", "GET"), f.size)
    assert len(spans) > 1 and spans[0][0] == half and spans[-1][1] == f.size
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


def test_server_ignoring_range_still_yields_a_correct_file(sim, cache, cli):
    f = _weights(sim)
    _partial(cache, f).write_bytes(f.content.read(0, 1000))
    sim.add_fault("ignore_range", "model.safetensors")
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert sim.body_bytes_served("/cdn/*") == f.size  # the whole body, once
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


@pytest.mark.parametrize("connections", ["1", "8"])
def test_a_connection_closed_mid_body_resumes_without_refetching_received_bytes(sim, cache, cli, connections):
    f = _weights(sim)
    cut = 300_000  # inside the first request's range, whether it asks for a piece or for the whole file
    sim.add_fault("truncate", "model.safetensors", after=cut, times=1)
    result = cli(
        "download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--connections", connections
    )
    assert result.exit_code == 0, result.output
    assert "retry 1" in result.stderr and "closed the connection before the end" in result.stderr
    gets = sim.requests_for("/cdn/*", "GET")
    if connections == "1":  # one stream: the whole file, then the rest of it
        assert [g.range for g in gets] == [None, f"bytes={cut}-"]
    else:
        assert gets[0].range.startswith("bytes=0-") and any(g.range.startswith(f"bytes={cut}-") for g in gets)
    assert sim.body_bytes_served("/cdn/*") == f.size  # not one byte twice
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


@pytest.mark.parametrize("connections", ["1", "8"])
def test_a_tcp_reset_mid_body_is_retried(sim, cache, cli, connections):
    # A reset also discards whatever sat unread in the socket buffer, so some bytes may be fetched twice.
    f = _weights(sim)
    sim.add_fault("reset", "model.safetensors", after=300_000, times=1)
    result = cli(
        "download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--connections", connections
    )
    assert result.exit_code == 0, result.output
    # Depending on timing the client sees the reset itself or a body cut short: both are retried.
    assert "was reset by the other side" in result.stderr or "closed the connection before the end" in result.stderr
    if connections == "1":
        assert len(sim.requests_for("/cdn/*", "GET")) == 2
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


def test_a_partial_that_is_not_a_prefix_is_detected_and_refetched(sim, cache, cli):
    f = _weights(sim)
    _partial(cache, f).write_bytes(b"garbage" * 1000)
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "hash mismatch" in result.stderr
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


def test_bursts_of_503_and_429_are_retried(sim, cache, cli):
    sim.add_fault("status", "config.json", status=503, times=2)
    sim.add_fault("status", "model.safetensors", where="cdn", status=429, retry_after="0", times=1)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_persistent_5xx_is_a_clear_server_error_and_keeps_finished_files(sim, cache, cli):
    sim.add_fault("status", "model.safetensors", where="cdn", status=502, retry_after="0")
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1
    assert "HTTP 502" in result.stderr and "The other 5 file(s) are in place" in result.stderr
    blobs = cache / "models--hfget-demo--tiny-model" / "blobs"
    assert len([p for p in blobs.iterdir() if p not in leftovers(blobs)]) == 5
    assert not (cache / "models--hfget-demo--tiny-model" / "refs" / "main").exists()
