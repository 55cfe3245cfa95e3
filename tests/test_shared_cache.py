"""One cache, many clients: hfget beside the real huggingface_hub 0.x (`huggingface-cli`, what transformers 4.x
users have, in a venv of its own) and 2.x (`hf`, in hfget's venv), in every order they meet in the field: killed
half-way, running at once, cleaned under. Every run ends with every sha256 right (`hf cache verify`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hfget.engine.resume_state import state_path
from hfget.testing.simrepo import SimRepo, blob_file, text_file
from support import (
    MODEL,
    MODEL_DIR,
    SIGKILL,
    expected_files,
    hfget_partials,
    interrupt_halfway,
    leftovers,
    needs_posix_signals,
    official_offline_load,
)

from interop_envs import interop_venv

# The first test to use `hf0` builds its venv (about 30 s here, from PyPI): more than the default test timeout
# allows on a loaded machine. Every wait inside the tests has its own bound.
pytestmark = [pytest.mark.official_client, pytest.mark.timeout(900)]

HFGET = str(Path(sys.executable).with_name("hfget"))
HF2 = str(Path(sys.executable).with_name("hf"))
MIB = 1024 * 1024


@pytest.fixture(scope="session")
def hf0() -> str:
    """`huggingface-cli` of huggingface_hub 0.36 (the last 0.x), from its own venv, built once (~30 s)."""
    return str(interop_venv("huggingface_hub-0.x", ["huggingface_hub==0.36.2"]) / "huggingface-cli")


@pytest.fixture(scope="session")
def big(_session_sim) -> SimRepo:
    """A repo with a 24 MiB file: the official clients write their partials in 10 MiB steps, so it takes a file
    this size to catch one with bytes on disk."""
    repo = SimRepo(f"hfget-test/big-{uuid.uuid4().hex[:8]}")
    repo.commit([text_file("config.json", "{}\n"), blob_file("model.safetensors", 24 * MIB + 123, seed=24)])
    return _session_sim.add_repo(repo)


def _env(sim) -> dict[str, str]:
    """The official clients, pointed at the simulator (the `isolated` fixture already emptied every setting)."""
    return {**os.environ, "HF_ENDPOINT": sim.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _run(sim, *argv, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, argv)], env=_env(sim), capture_output=True, text=True, timeout=timeout)


def _start(sim, *argv) -> subprocess.Popen:
    return subprocess.Popen([*map(str, argv)], env=_env(sim), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _verified(sim, cache: Path, repo_id: str) -> None:
    """huggingface_hub 2.x's own check of every file of the snapshot against the hub's checksums."""
    verify = _run(sim, HF2, "cache", "verify", repo_id, "--cache-dir", cache)
    assert verify.returncode == 0 and "All checksums match" in verify.stdout, verify.stdout + verify.stderr


def _blobs(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--")) / "blobs"


def _weights(sim, repo_id: str = MODEL):
    repo = sim.repo(repo_id)
    return repo.commits[repo.resolve("main")]["model.safetensors"]


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# --- hfget killed, huggingface_hub 0.x next ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [pytest.param(SIGKILL, id="kill-9"),
                                 pytest.param(signal.SIGINT, id="ctrl-c", marks=needs_posix_signals)])
def test_hub_0x_after_a_killed_multi_connection_hfget_gets_every_byte_right(sim, cache, cli, hf0, sig):
    f = _weights(sim)
    interrupt_halfway(sim, cache, sig)
    blobs = cache / MODEL_DIR / "blobs"
    (partial,) = hfget_partials(blobs, f.etag)
    done = json.loads(state_path(partial).read_text())["done"]
    assert len(done) > 1 or done[0][0] != 0, "the interrupted run should have left holes (several connections)"

    # huggingface_hub 0.x resumes `{etag}.incomplete` by appending: hfget's partial is not one, so it starts clean.
    sim.clear_log()
    old = _run(sim, hf0, "download", MODEL, "model.safetensors", "--cache-dir", cache)
    assert old.returncode == 0, old.stderr[-3000:]
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"] == {
        "model.safetensors": f.content.sha256}
    _verified(sim, cache, MODEL)

    # The next hfget run finds the blob in place: nothing moves, and its own partial and state are gone.
    again = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert again.exit_code == 0, again.output
    assert not hfget_partials(blobs) and not leftovers(cache)
    _verified(sim, cache, MODEL)


# --- another client killed, hfget next -----------------------------------------------------------------------------


def _partial_of(client: str, blobs: Path, etag: str) -> list[Path]:
    pattern = f"{etag}.incomplete" if client == "0.x" else f"{etag}.????????.incomplete"
    return [p for p in blobs.glob(pattern) if p.stat().st_size > 0] if blobs.exists() else []


@pytest.mark.parametrize("client", ["0.x", "2.x"])
@pytest.mark.usefixtures("sim_cdn_elsewhere")  # huggingface_hub below 2.2 needs the CDN on another host name
def test_hfget_after_a_killed_official_client_resumes_its_prefix_and_gets_every_byte_right(
        sim, cache, cli, hf0, big, client):
    f = _weights(sim, big.repo_id)
    blobs = _blobs(cache, big.repo_id)
    sim.add_fault("throttle", "model.safetensors", rate=6_000_000)
    exe = hf0 if client == "0.x" else HF2
    official = _start(sim, exe, "download", big.repo_id, "model.safetensors", "--cache-dir", cache)
    (partial,) = _wait_for(lambda: _partial_of(client, blobs, f.etag), official)
    official.kill()
    official.wait(timeout=10)
    prefix = partial.stat().st_size
    assert 0 < prefix < f.size
    sim.clear_faults()
    sim.clear_log()

    result = cli("download", big.repo_id, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    served = sim.body_bytes_served("/cdn/*")
    assert f.size - prefix <= served <= f.size - prefix + 4 * MIB  # the prefix was reused (the hash covers it)
    assert json.loads(result.stdout)["bytes_downloaded"] == served
    assert official_offline_load(cache, big.repo_id, files=["model.safetensors"])["files"] == {
        "model.safetensors": f.content.sha256}
    _verified(sim, cache, big.repo_id)
    if client == "0.x":
        assert not partial.exists()  # taken over under the blob lock, as 0.x itself resumes it
    else:
        # 2.x's partial is its own process's: copied, never touched; a clean takes it now that its lock is free.
        assert partial.exists()
        clean = cli("cache", "clean", "--incomplete", "--yes", "--cache-dir", cache, "--only", "huggingface")
        assert clean.exit_code == 0 and "Freed" in clean.stdout, clean.output
        assert not partial.exists()
    assert not leftovers(cache)


# --- a clean while huggingface_hub 2.x is writing -------------------------------------------------------------------


@pytest.mark.usefixtures("sim_cdn_elsewhere")  # huggingface_hub below 2.2 needs the CDN on another host name
def test_cache_clean_incomplete_while_hf_download_is_writing(sim, cache, cli, big):
    f = _weights(sim, big.repo_id)
    blobs = _blobs(cache, big.repo_id)
    # Something the clean may take: what a killed hfget left of a file of another repo.
    stale = cache / MODEL_DIR / "blobs"
    interrupt_halfway(sim, cache, SIGKILL)
    assert hfget_partials(stale)
    sim.add_fault("throttle", "model.safetensors", rate=3_000_000)  # some 8 s for 24 MiB
    writer = _start(sim, HF2, "download", big.repo_id, "--cache-dir", cache)
    (live,) = _wait_for(lambda: _partial_of("2.x", blobs, f.etag), writer)
    clean = subprocess.run([HFGET, "cache", "clean", "--incomplete", "--yes", "--cache-dir", str(cache), "--only",
                            "huggingface"], capture_output=True, text=True, timeout=60)
    assert writer.poll() is None, "hf download was still writing when the clean ran"
    still_there = live.exists()
    sim.clear_faults()
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-3000:]
    _verified(sim, cache, big.repo_id)
    assert clean.returncode == 0, clean.stderr
    assert "skipped:" in clean.stdout and "in use: a download holds" in clean.stdout
    assert f"{f.etag}.lock" in clean.stdout and "Freed" in clean.stdout
    assert still_there and not hfget_partials(stale)  # the live one stayed, the dead one went


# --- three at once -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("sim_cdn_elsewhere")  # huggingface_hub below 2.2 needs the CDN on another host name
def test_two_hfget_and_one_hf_download_on_one_repo_at_once(sim, cache):
    sim.rate_limit = 3_000_000  # per connection: the three overlap
    runs = [
        _start(sim, HFGET, "download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--quiet"),
        _start(sim, HF2, "download", MODEL, "--cache-dir", cache),
        _start(sim, HFGET, "download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--quiet"),
    ]
    for process in runs:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
    sim.rate_limit = 0
    _verified(sim, cache, MODEL)
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)
    assert not leftovers(cache)
    locks = cache / ".locks" / MODEL_DIR
    assert not list(locks.glob("*.hfget"))  # every hfget marker went with its process
