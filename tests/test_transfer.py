"""The transfer engine against real server misbehaviour: resume, ignored Range, resets, bursts of 5xx."""

from __future__ import annotations

import json
import threading
import time

import pytest

from hfget.engine.file_task import EngineSettings, FileTask
from hfget.engine.segments import PieceSizes
from hfget.engine.transfer import FileJob
from support import MODEL, MODEL_DIR, dead_hfget_partial, expected_files, leftovers, official_offline_load


def _weights(sim, revision="main"):
    repo = sim.repo(MODEL)
    return repo.commits[repo.resolve(revision)]["model.safetensors"]


def _partial(cache, f):
    """A partial an earlier, dead hfget run left."""
    return dead_hfget_partial(cache / MODEL_DIR / "blobs", f.etag)


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
        # Whichever piece was cut (the lead's, or one that overtook it to the fault), its rest was asked for.
        broken = next(g for g in gets if g.body_bytes == cut)
        resumed_at = int(broken.range[len("bytes="):].split("-")[0]) + cut
        assert any(g.range.startswith(f"bytes={resumed_at}-") for g in gets)
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


@pytest.mark.parametrize(
    ("kind", "said"),
    [("ignore_range", "with the whole file (HTTP 200)"), ("status", "with HTTP 416")],
    ids=["200", "416"],
)
def test_one_odd_answer_after_ranges_worked_is_a_retried_piece_not_a_restart(sim, cache, cli, kind, said):
    """The third piece's answer is the whole file (a 200) or a 416, after the server has answered ranges: that piece
    is asked again; what the other connections fetched is kept, not truncated and fetched a second time."""
    f = _weights(sim)
    sim.add_fault(kind, "model.safetensors", where="cdn", status=416, skip=2, times=1)
    result = cli("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache,
                 "--connections", "4")
    assert result.exit_code == 0, result.output
    assert said in " ".join(result.stderr.split())  # reported as a retry of that piece
    gets = sim.requests_for("/cdn/*", "GET")
    assert sum(r.body_bytes for r in gets if r.status == 206) == f.size  # every byte once, as a range
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
    blobs = cache / MODEL_DIR / "blobs"
    assert len([p for p in blobs.iterdir() if p not in leftovers(blobs)]) == 5
    assert not (cache / MODEL_DIR / "refs" / "main").exists()


def test_a_restart_empties_the_partial_only_after_the_writes_in_flight_have_landed(tmp_path):
    """A connection has claimed bytes and is writing them when another restarts the file: the partial is emptied
    after that write, never before (else its bytes would land in the new, empty partial as stale data)."""
    job = FileJob(key="f", url="http://127.0.0.1:9/f", size=4 << 20, algo="sha256", expected="0" * 64,
                  partial=tmp_path / "f.incomplete", deliver=lambda path: None)
    settings = EngineSettings(connections=4, sizes=PieceSizes(), attempts=3, lock_timeout=None,
                              backoff=lambda failures, retry_after: 0.0, emit=lambda event: None)
    task = FileTask(job, settings)
    assert task.start() == "running"
    lead = task.take_segment(time.monotonic())
    at, take = task.claim(lead, 1000)  # these bytes are on their way to the disk
    restart = threading.Thread(target=task.restart_whole_body, args=(lead,))
    restart.start()
    restart.join(0.3)
    assert restart.is_alive()  # it waits for the write in flight
    task.write(lead, at, memoryview(b"x" * take))
    restart.join(5)
    assert not restart.is_alive() and job.partial.stat().st_size == 0
    task.cancel()
