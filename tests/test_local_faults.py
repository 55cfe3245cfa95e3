"""Local faults: a disk that fills up mid-download, and downloads racing each other and a `cache clean`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import (
    MODEL,
    MODEL_DIR,
    expected_files,
    hfget_partial_bytes,
    hfget_partials,
    hfget_process,
    leftovers,
    official_offline_load,
)

HFGET = str(Path(sys.executable).with_name("hfget"))


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HFGET_KNOWN_MIRRORS": "", **extra}


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs: big enough for the download's free-space check, small enough to fill up on purpose."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount(8) to make a small file system")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _fill(disk: Path) -> Path:
    """Take every byte left on `disk`; returns the file that holds them."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_mid_download_is_a_clear_error_and_the_partial_resumes(sim, small_disk):
    cache = small_disk / "hub"
    weights = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
    sim.add_fault("throttle", "model.safetensors", rate=2_000_000)  # slow enough to fill the disk under it
    proc = subprocess.Popen(
        [HFGET, "download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", str(cache), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: hfget_partial_bytes(blobs) > 1_000_000)
    filler = _fill(small_disk)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    error = json.loads(out)["error"]
    assert error["kind"] == "disk_full" and "is full" in error["message"]
    assert "partial ones resume" in error["hint"]
    partials = [p for p in hfget_partials(blobs) if p.stat().st_size > 0]
    assert partials, "the bytes received before the disk filled are kept"
    assert not (blobs / weights.etag).exists()  # nothing unverified in blobs/
    kept = sum(p.stat().st_size for p in partials)

    filler.unlink()
    sim.clear_faults()
    sim.clear_log()
    again = subprocess.run([HFGET, "download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir",
                            str(cache), "--json"], capture_output=True, text=True, env=_env(), timeout=60)
    assert again.returncode == 0, again.stderr
    # Only what was missing moved the second time (plus at most one piece re-fetched at a ragged edge).
    assert sim.body_bytes_served("/cdn/*") <= weights.size - kept + 4 * 1024 * 1024
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"]["model.safetensors"] == weights.content.sha256
def test_disk_full_while_another_connection_is_stalled_is_reported_at_once(sim, small_disk):
    """The weights' connections get headers and then nothing (the default 30 s read timeout would end them) while
    the onnx file fills the disk: the error comes at once, and the stalled connections are not reported as failing."""
    cache = small_disk / "hub"
    files = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]
    weights, onnx = files["model.safetensors"], files["onnx/model.onnx"]
    sim.add_fault("stall", "model.safetensors", where="cdn", after=0)
    sim.add_fault("throttle", "onnx/model.onnx", where="cdn", rate=1_000_000)
    proc = hfget_process("download", MODEL, "model.safetensors", "onnx/model.onnx", "--endpoint", sim.url,
                         "--cache-dir", cache)
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: blobs.exists() and bool(sim.requests_for(f"/cdn/{weights.content.sha256}", "GET"))
              and hfget_partial_bytes(blobs, onnx.etag) > 100_000)
    _fill(small_disk)
    filled = time.monotonic()
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - filled
    assert proc.returncode == 1 and "is full" in " ".join(err.split()), err
    # Promised: the error within 2 s of the disk filling up (2.5x margin for a loaded machine); it used to wait for
    # the stalled connections' read timeout.
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert "model.safetensors:" not in err  # no retry or failure line for the connections our stop broke


def test_two_downloads_and_a_cache_clean_racing_on_one_repo(sim, tmp_path):
    cache = tmp_path / "hub"
    sim.rate_limit = 4_000_000
    # The weights take seconds (2 connections at 1 MB/s each), so the clean below surely meets both
    # downloads running, however slowly a loaded machine starts it.
    sim.add_fault("throttle", "model.safetensors", rate=1_000_000)
    cmd = [HFGET, "download", MODEL, "--endpoint", sim.url, "--cache-dir", str(cache), "--json", "--max-workers", "4",
           "--connections", "2"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(lambda: bool(hfget_partials(cache / MODEL_DIR / "blobs")))
    clean = subprocess.run([HFGET, "cache", "clean", MODEL, "--yes", "--cache-dir", str(cache), "--only", "huggingface"],
                           capture_output=True, text=True, env=_env(), timeout=60)
    results = [p.communicate(timeout=120) for p in (first, second)]
    assert clean.returncode in (0, 1), clean.stderr
    assert "Traceback" not in clean.stderr
    assert "in use" in clean.stdout + clean.stderr  # it saw the running downloads and stepped around them
    for (out, err), proc in zip(results, (first, second)):
        assert proc.returncode == 0, err
    # One correct copy: every blob verified, loadable offline, no partial left over.
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)
    assert not leftovers(cache)
    # Between them the two downloads fetched each file about once, not twice.
    total = sum(f.size for f in sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]].values())
    assert sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*") < 1.5 * total
    shutil.rmtree(cache)
