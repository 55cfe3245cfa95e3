"""Server faults during a download: a correct file or a clear error, never a corrupt blob, never an endless wait."""

from __future__ import annotations

import json
import time

import pytest

from support import MODEL, MODEL_DIR, expected_files, hfget_partials, leftovers, official_offline_load, tree_state

# Short timeouts so a hanging or trickling server costs seconds; few retries so giving up is quick.
FAST = {"HFGET_READ_TIMEOUT": "1", "HFGET_CONNECT_TIMEOUT": "1", "HFGET_RETRIES": "2"}


def _weights(sim, revision="main"):
    repo = sim.repo(MODEL)
    return repo.commits[repo.resolve(revision)]["model.safetensors"]


def _no_unverified_blob(cache, sim) -> None:
    blobs = cache / MODEL_DIR / "blobs"
    if not blobs.exists():
        return
    from hfget.engine.digest import Digest

    files = {f.etag: f for rev in sim.repo(MODEL).commits.values() for f in rev.values()}
    for blob in blobs.iterdir():
        if blob in leftovers(blobs):
            continue
        f = files[blob.name]
        algo, expected = ("sha256", f.content.sha256) if f.lfs else ("git-sha1", f.blob_id)
        assert Digest.of_file(blob, algo, expected, f.size), f"corrupt blob {blob.name}"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_bursts_of_server_errors_are_retried(sim, cache, cli, status):
    sim.add_fault("status", "model.safetensors", where="cdn", status=status, times=2)
    sim.add_fault("status", "config.json", status=status, times=2)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_429_retry_after_is_honoured(sim, cache, cli):
    sim.add_fault("status", "config.json", status=429, retry_after="1", times=1)
    result = cli("download", MODEL, "config.json", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    first, second = [r for r in sim.requests_for("*/config.json", "GET")][:2]
    assert first.status == 429 and second.status in (200, 307)
    assert second.time - first.time >= 0.95  # it waited as told, not its own shorter backoff


@pytest.mark.parametrize("where", ["/api/models/*", "/cdn/*"])
def test_a_server_that_accepts_and_never_answers_gives_a_clear_error_in_bounded_time(sim, cache, cli, where):
    sim.add_fault("hang", where)
    before = tree_state(cache)
    started = time.monotonic()
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, env=FAST)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "stopped answering" in result.stderr or "timed out" in result.stderr
    if where.startswith("/api"):
        assert tree_state(cache) == before
    _no_unverified_blob(cache, sim)


@pytest.mark.parametrize("target", ["api", "file"])
def test_an_endless_slow_trickle_is_cut_off(sim, cache, cli, target):
    if target == "api":
        sim.add_fault("throttle", "/api/models/hfget-demo/tiny-model/revision/*", where="api", rate=40)
    else:
        sim.add_fault("throttle", "model.safetensors", where="cdn", rate=2000)
    started = time.monotonic()
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, env=FAST)
    assert time.monotonic() - started < 40
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is trickling" in " ".join(result.stderr.split())
    _no_unverified_blob(cache, sim)


def test_a_wrong_content_range_is_never_written(sim, cache, cli):
    weights = _weights(sim)
    sim.add_fault("bad_content_range", "model.safetensors", where="cdn")
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--connections", "4",
                 env=FAST)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Content-Range" in result.stderr
    assert not (cache / MODEL_DIR / "blobs" / weights.etag).exists()
    _no_unverified_blob(cache, sim)


def test_a_file_that_changed_between_two_runs(sim, cache, cli):
    """Run 1 dies half-way; the repo then moves on (new weights). Run 2 gets the new file whole and verified; the old
    partial is left for `cache clean --incomplete`, and never mixed into the new file."""
    from hfget.testing.simrepo import blob_file

    repo = sim.repo(MODEL)
    old = _weights(sim)
    sim.add_fault("truncate", "model.safetensors", where="cdn", at=old.size // 2)
    first = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, env=FAST)
    assert first.exit_code == 1
    sim.clear_faults()
    files = list(repo.commits[repo.refs["main"]].values())
    saved_main = repo.refs["main"]
    new_weights = blob_file("model.safetensors", old.size, seed=99)  # same size, other bytes: another etag
    try:
        repo.commit([f for f in files if f.path != "model.safetensors"] + [new_weights], message="v3")
        sim.clear_log()
        second = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json")
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["bytes_downloaded"] == new_weights.size  # nothing taken from the old partial
        loaded = official_offline_load(cache, MODEL, files=["model.safetensors"])
        assert loaded["files"]["model.safetensors"] == new_weights.content.sha256
        blobs = cache / MODEL_DIR / "blobs"
        assert hfget_partials(blobs, old.etag)  # the old partial, still resumable if main goes back
        listed = json.loads(cli("cache", "list", "--cache-dir", cache, "--json", "--only", "huggingface").stdout)
        (entry,) = [r for r in listed["repos"] if r["id"] == MODEL]
        assert entry["incomplete"]["count"] == 1  # the old partial, counted for cache clean to free
        assert 0 < entry["incomplete"]["size"] <= old.size
    finally:
        repo.refs["main"] = saved_main


def test_a_mirror_serving_other_bytes_than_it_lists_never_lands(sim, cache, cli):
    """The listing promises one file; the bytes are another's (a stale mirror): an integrity error, nothing placed."""
    weights = _weights(sim)
    sim.add_fault("corrupt", "model.safetensors", offset=weights.size - 1)
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, env=FAST)
    assert result.exit_code == 1 and "does not match its expected sha256" in " ".join(result.stderr.split())
    assert not (cache / MODEL_DIR / "blobs" / weights.etag).exists()
    _no_unverified_blob(cache, sim)
