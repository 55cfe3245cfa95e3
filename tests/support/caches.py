"""Building real caches for the `cache` and shared-cache tests: a repo whose main moves on, a download caught in the
act or interrupted half-way, and the older ModelScope layout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from hfget.testing.simrepo import SimRepo, blob_file, text_file

from .clients import hfget_process
from .names import MODEL


def moving_repo(sim) -> SimRepo:
    """A fresh repo whose `main` can be moved on (`advance`), leaving the old commit detached in a cache."""
    repo = SimRepo(f"hfget-test/moving-{uuid.uuid4().hex[:8]}")
    repo.commit(_files(1), message="first")
    sim.add_repo(repo)
    return repo


def advance(repo: SimRepo, n: int = 2) -> str:
    return repo.commit(_files(n), message=f"commit {n}")


def _files(n: int) -> list:
    # config.json and the tokenizer are the same in every commit (shared blobs); the weights change.
    return [
        text_file("config.json", '{"model_type": "tiny"}\n'),
        blob_file("tokenizer.json", 50_000, seed=7),
        blob_file("model.safetensors", 200_000 + n, seed=100 + n),
    ]


@contextmanager
def download_in_progress(sim, cache: Path, repo: str = MODEL, path: str = "model.safetensors"):
    """A real `hfget download` in another process, held mid-file by a throttled server: its locks are held and its
    partial grows. Yields the partial file; afterwards the process is killed (the partial stays)."""
    argv = [sys.executable, "-m", "hfget", "download", repo, path, "--endpoint", sim.url, "--cache-dir", str(cache),
            "--quiet"]
    blobs = cache / ("models--" + repo.replace("/", "--")) / "blobs"
    with _held_mid_file(sim, path, argv, os.environ, blobs, "*.hfget-*.partial") as partial:
        yield partial


@contextmanager
def modelscope_download_in_progress(sim, ms_cache: Path, repo: str = MODEL, path: str = "model.safetensors"):
    """The same with the official `modelscope download` CLI filling a ModelScope cache."""
    argv = [str(Path(sys.executable).with_name("modelscope")), "download", repo]
    env = {**os.environ, "MODELSCOPE_ENDPOINT": sim.url, "MODELSCOPE_CACHE": str(ms_cache)}
    with _held_mid_file(sim, path, argv, env, ms_cache, f"**/{path}.incomplete") as partial:
        yield partial


@contextmanager
def _held_mid_file(sim, path: str, argv: list[str], env, where: Path, pattern: str):
    sim.add_fault("throttle", path, rate=200_000)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        partial = None
        while time.monotonic() < deadline and partial is None:
            found = [p for p in where.glob(pattern) if p.stat().st_size > 0]
            partial = found[0] if found else None
            if proc.poll() is not None:
                raise AssertionError(f"the download ended early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        assert partial is not None, "no partial file appeared"
        yield partial
    finally:
        proc.kill()  # SIGKILL; TerminateProcess on Windows
        proc.wait(timeout=10)
        sim.clear_faults()


def legacy_modelscope_repo(ms_cache: Path, owner: str, name: str, files: dict[str, bytes], where: str = "hub",
                           revision: str = "v1.0.2") -> Path:
    """A repo as modelscope SDK <= 1.37 stored it (no client that old is installed here to write it for real):
    files plus `.mdl`/`.msc`/`.mv` bookkeeping, in `hub/models/{owner}/{name___}` (the old default cache),
    `models/{owner}/{name___}` (MODELSCOPE_CACHE set) or `{owner}/{name}` (flat, older still)."""
    prefix = {"hub": ms_cache / "hub" / "models", "models": ms_cache / "models", "flat": ms_cache}[where]
    folder = prefix / owner / (name if where == "flat" else name.replace(".", "___"))
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / ".mdl").write_bytes(b"\x80\x04}\x94.")  # an (empty) pickle: hfget must never load it
    (folder / ".msc").write_bytes(b"\x80\x04]\x94.")
    (folder / ".mv").write_text(f"Revision:{revision},CreatedAt:1700000000")
    return folder


def _start_hfget(sim, cache: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return hfget_process("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache,
                         "--connections", "4", *extra, env=env)


def interrupt_halfway(sim, cache: Path, sig: int, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """Start hfget (4 connections) on the model's weights on a throttled simulator and send `sig` once about half
    the file has been served. Returns the process and the bytes served. `env`: the process's environment."""
    repo = sim.repo(MODEL)
    f = repo.commits[repo.resolve("main")]["model.safetensors"]
    sim.rate_limit = 1_000_000  # per connection: 4 connections, about 1.5 s for the file
    # Nothing past three quarters of the file is served until the signal has gone out: the download is certainly
    # still running when it arrives, however late a loaded machine lets this test look at the byte count.
    sim.add_fault("stall", "model.safetensors", where="cdn", at=f.size * 3 // 4)
    process = _start_hfget(sim, cache, env=env)
    deadline = time.monotonic() + 60
    while sim.body_bytes_served("/cdn/*") < f.size // 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the download never got halfway"
        time.sleep(0.02)
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # show where it hangs: faulthandler dumps every thread on SIGABRT
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=10)
        pytest.fail(f"hfget did not stop within 30 s of signal {sig}:\n{err[-6000:]}")
    sim.clear_faults()
    sim.rate_limit = 0
    return process, sim.body_bytes_served("/cdn/*")
