"""Resume across runs and sources: a killed or interrupted hfget leaves a partial and a state file; the next run,
from the same or another source, fetches only what is missing. Bytes are counted where the simulator sends them."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hfget.engine.resume_state import state_path
from hfget.engine.segments import PieceSizes
from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import demo_repos
from support import (
    MODEL,
    MODEL_DIR,
    SIGKILL,
    dead_hfget_partial,
    hfget_partials,
    interrupt_halfway,
    needs_posix_signals,
    official_offline_load,
)

# The most a resumed run may fetch beyond what is missing on disk: bytes written after the last state save. The
# engine saves every 512 KiB, so one minimal piece (1 MiB) is a safe bound that still fails if the state is ignored.
ONE_CHUNK = PieceSizes().min_piece


def _weights(sim):
    repo = sim.repo(MODEL)
    return repo.commits[repo.resolve("main")]["model.safetensors"]


def _partial(cache: Path, f) -> Path:
    """The partial the interrupted run left (named by that run: store/partials.py)."""
    (partial,) = hfget_partials(cache / MODEL_DIR / "blobs", f.etag)
    return partial


def _bytes_on_disk(partial: Path, f) -> int:
    """How many bytes of the partial are really the file's bytes (holes and garbage don't count)."""
    good = 0
    block = 64 * 1024
    with open(partial, "rb") as fh:
        for offset in range(0, f.size, block):
            data = fh.read(block)
            if data and data == f.content.read(offset, len(data)):
                good += len(data)
    return good


@pytest.mark.parametrize("sig", [
    pytest.param(SIGKILL, id="kill-9"),
    pytest.param(signal.SIGINT, id="ctrl-c", marks=needs_posix_signals),
    pytest.param(signal.SIGTERM, id="sigterm", marks=needs_posix_signals),
])
def test_a_run_killed_halfway_resumes_with_only_the_missing_bytes(sim, cache, cli, sig):
    """kill -9 leaves what the last state save recorded; Ctrl-C and SIGTERM (what `kill`, `timeout`, systemd and
    container runtimes send) stop the download, save the partial's state and exit 130."""
    f = _weights(sim)
    process, served_first = interrupt_halfway(sim, cache, sig)
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert process.returncode == 130, process.stderr.read()
        assert "Run the same command again to resume" in process.stderr.read()
    assert f.size // 2 <= served_first < f.size
    partial = _partial(cache, f)
    state = json.loads(state_path(partial).read_text())  # several connections left holes: the state says where
    assert state["size"] == f.size and state["expected"] == f.content.sha256 and state["done"]
    missing = f.size - _bytes_on_disk(partial, f)
    assert missing < f.size // 2 + ONE_CHUNK

    sim.clear_log()
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    served_again = sim.body_bytes_served("/cdn/*")
    assert missing <= served_again <= missing + ONE_CHUNK
    assert json.loads(result.stdout)["bytes_downloaded"] == served_again
    assert not partial.exists() and not state_path(partial).exists()
    loaded = official_offline_load(cache, MODEL, files=["model.safetensors"])
    assert loaded["files"]["model.safetensors"] == f.content.sha256


@pytest.fixture
def other_sim():
    """A second, independent server with the same repos: another source for the same files."""
    with HubSimulator(demo_repos(large_mb=6)) as other:
        yield other


def test_resume_continues_from_another_source_with_the_same_hash(sim, other_sim, cache, cli):
    f = _weights(sim)
    interrupt_halfway(sim, cache, SIGKILL)
    missing = f.size - _bytes_on_disk(_partial(cache, f), f)
    sim.clear_log()
    result = cli("download", MODEL, "model.safetensors", "--endpoint", other_sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert sim.body_bytes_served("/cdn/*") == 0
    assert missing <= other_sim.body_bytes_served("/cdn/*") <= missing + ONE_CHUNK
    loaded = official_offline_load(cache, MODEL, files=["model.safetensors"])
    assert loaded["files"]["model.safetensors"] == f.content.sha256


def test_a_state_for_another_file_is_not_trusted(sim, cache, cli):
    """A state whose size or hash differs from the file now listed is thrown away with its partial."""
    f = _weights(sim)
    partial = dead_hfget_partial(cache / MODEL_DIR / "blobs", f.etag)
    partial.write_bytes(f.content.read(0, f.size // 2))
    state_path(partial).write_text(
        json.dumps({"version": 1, "size": f.size + 1, "algo": "sha256", "expected": f.content.sha256,
                    "done": [[0, f.size // 2]]})
    )
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert sim.body_bytes_served("/cdn/*") == f.size
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256
