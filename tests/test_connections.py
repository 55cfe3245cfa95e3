"""Several connections per file against a misbehaving server: ranges ignored, stalls, slow connections, corrupt
pieces, two processes on one repo, and memory that does not grow with the file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from hfget.engine.events import FileRetrying
from hfget.engine.segments import PieceSizes
from hfget.engine.transfer import FileJob, Transfer
from hfget.net.http import HttpClient
from hfget.testing.simrepo import SimRepo, blob_file, text_file
from support import MODEL, MODEL_DIR, expected_files, official_offline_load

MIB = 1 << 20


def _weights(sim):
    repo = sim.repo(MODEL)
    return repo.commits[repo.resolve("main")]["model.safetensors"]


def _job(sim, tmp_path: Path, f) -> tuple[FileJob, Path]:
    dest = tmp_path / "out" / f.path
    job = FileJob(
        key=f.path,
        url=f"{sim.url}/{MODEL}/resolve/main/{f.path}",
        size=f.size,
        algo="sha256",
        expected=f.content.sha256,
        partial=tmp_path / "partials" / f"{f.etag}.incomplete",
        deliver=lambda verified: (dest.parent.mkdir(parents=True, exist_ok=True), os.replace(verified, dest)),
        lock=tmp_path / "locks" / f"{f.etag}.lock",
    )
    return job, dest


def _run_bounded(transfer: Transfer, jobs, seconds: float = 60):
    """Run a transfer on a thread; a hang (no stall detection, no stealing) fails the test instead of the suite."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("report", transfer.run(jobs)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the transfer did not finish within {seconds} s"
    return outcome["report"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _starts(gets) -> list[int]:
    return [int(g.range[len("bytes="):].split("-")[0]) if g.range else 0 for g in gets]


def test_a_stalled_connection_is_replaced(sim, tmp_path):
    f = _weights(sim)
    stall_at = 200_000  # inside the first request's piece: that connection goes silent for good
    sim.add_fault("stall", "model.safetensors", where="cdn", after=stall_at, times=1)
    events: list = []
    job, dest = _job(sim, tmp_path, f)
    transfer = Transfer(HttpClient(), connections=4, stall_timeout=1.0, on_event=events.append)
    report = _run_bounded(transfer, [job], seconds=15)  # far less than the HTTP client's own 30 s read timeout
    assert report.done == ["model.safetensors"] and _sha256(dest) == f.content.sha256
    assert any(isinstance(e, FileRetrying) and "stopped answering" in e.reason for e in events)
    # The stalled connection's range was asked for again, from the first byte it never delivered.
    assert stall_at in _starts(sim.requests_for("/cdn/*", "GET")[1:])


def test_a_slow_connection_gives_up_half_its_range_to_an_idle_one(sim, tmp_path):
    f = _weights(sim)
    sim.add_fault("throttle", "model.safetensors", where="cdn", rate=100_000, times=1)  # the first request crawls
    sizes = PieceSizes(min_piece=2 * MIB, max_piece=2 * MIB, min_steal=64 * 1024)
    job, dest = _job(sim, tmp_path, f)
    report = _run_bounded(Transfer(HttpClient(), connections=4, piece_sizes=sizes), [job])
    assert report.done == ["model.safetensors"] and _sha256(dest) == f.content.sha256
    gets = sim.requests_for("/cdn/*", "GET")
    assert gets[0].range == f"bytes=0-{2 * MIB - 1}"
    # Idle connections took over the tail of the slow one's piece (pieces otherwise start at multiples of 2 MiB).
    assert any(0 < start < 2 * MIB for start in _starts(gets[1:]))
    # Only the block the slow connection was reading when its tail was taken is thrown away.
    assert f.size <= sim.body_bytes_served("/cdn/*") < f.size + 256 * 1024


def test_a_server_ignoring_range_is_read_as_one_stream(sim, cache, cli):
    f = _weights(sim)
    sim.add_fault("ignore_range", "model.safetensors")
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    gets = sim.requests_for("/cdn/*", "GET")
    assert len(gets) == 1 and gets[0].range is not None  # it asked for a piece, got the whole file, kept it
    assert sim.body_bytes_served("/cdn/*") == f.size
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


def test_a_chunked_body_without_content_length_is_read_as_one_stream(sim, cache, cli):
    f = _weights(sim)
    fault = sim.add_fault("chunked", "model.safetensors")
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert fault.hits >= 1  # the weights really came chunked, without a length, whatever Range asked for
    weights = sim.requests_for(f"/cdn/{f.content.sha256}", "GET")
    assert [r.status for r in weights] == [200]  # one stream, read to its end: not split, not restarted
    assert weights[0].body_bytes == f.size
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_a_corrupt_piece_in_the_middle_is_detected_and_fetched_again(sim, cache, cli):
    f = _weights(sim)
    sim.add_fault("corrupt", "model.safetensors", offset=3 * MIB + 5, times=1)  # hits whichever piece holds it
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "hash mismatch" in result.stderr
    assert sim.body_bytes_served("/cdn/*") == 2 * f.size  # the whole file again: a whole-file hash can't say where
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == f.content.sha256


def _hfget(sim, cache: Path, repo: str = MODEL) -> subprocess.Popen:
    # The test environment as the `isolated` fixture left it: no user settings, and the default sources (official
    # hub, ModelScope, public mirrors) pointed at closed loopback ports, so nothing leaves this machine.
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, "-m", "hfget", "download", repo, "--endpoint", sim.url, "--cache-dir", str(cache)],
        env={**env, "HF_HUB_DISABLE_TELEMETRY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_on_the_same_repo_share_the_files_and_end_with_one_correct_copy(sim, cache):
    sim.rate_limit = 2_000_000  # slow enough that the two runs overlap
    first, second = _hfget(sim, cache), _hfget(sim, cache)
    for process in (first, second):
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
    sim.rate_limit = 0
    files = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]].values()
    # Every file crossed the network once in total: each process took the files the other was not holding.
    assert sim.body_bytes_served("/cdn/*") == sum(f.size for f in files if f.lfs)
    assert sim.body_bytes_served("/api/resolve-cache/*") == sum(f.size for f in files if not f.lfs)
    blobs = cache / MODEL_DIR / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(f.etag for f in files)  # no partial, no state
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_memory_stays_flat_while_a_large_file_moves(sim, cache):
    """A 256 MiB file through many connections: the process stays far below the file's size."""
    repo_id = "hfget-demo/large-file"
    if ("model", repo_id) not in sim.repos:
        big = SimRepo(repo_id)
        big.commit([text_file("config.json", "{}\n"), blob_file("model.safetensors", 256 * MIB + 77, seed=41)])
        sim.add_repo(big)
    # The child's own high-water mark (VmHWM of its address space), written as it exits. Not wait4's ru_maxrss:
    # Linux carries the parent's peak into a vfork-ed child's maxrss across exec, so that measured the pytest
    # process (hundreds of MB once in-process API downloads have run) as much as hfget.
    peak_file = cache.parent / "peak-kb"
    code = ("import atexit, runpy, sys; out = sys.argv.pop(1); atexit.register(lambda: open(out, 'w').write("
            "next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])); "
            "sys.argv[0] = 'hfget'; runpy.run_module('hfget', run_name='__main__')")
    done = subprocess.run(
        [sys.executable, "-c", code, str(peak_file), "download", repo_id, "--endpoint", sim.url, "--cache-dir",
         str(cache)], env={**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(peak_file.read_text()) / 1024
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB"
    blob = cache / f"models--{repo_id.replace('/', '--')}" / "blobs"
    assert sum(p.stat().st_size for p in blob.iterdir()) == 256 * MIB + 77 + 3


def test_connections_is_a_flag_and_a_setting(sim, cache, cli):
    bad = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--connections", "0")
    assert bad.exit_code == 2 and "connections must be a number from 1 to 256" in bad.stderr
    assert not cache.exists()
    one = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache,
              env={"HFGET_CONNECTIONS": "1"})
    assert one.exit_code == 0, one.output
    assert [g.range for g in sim.requests_for("/cdn/*", "GET")] == [None]  # one connection: one plain stream
