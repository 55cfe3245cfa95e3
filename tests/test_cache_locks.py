"""Locks in a shared cache: hfget's repo lock against `cache clean` (before, during and after a download's blob
locks; with a working flock, a silent one, and none), lock files past the descriptor limit and locks that cannot
be opened, group-writable lock files. Every download and clean here is a real hfget process."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hfget.cache import CleanRequest, plan_clean
from hfget.config import resolve
from hfget.fs import locks
from hfget.fs.repo_lock import RepoBusy, RepoLock, live_markers
from support import (
    MODEL,
    MODEL_DIR,
    expected_files,
    hfget_download,
    hfget_partial_bytes,
    hfget_partials,
    leftovers,
    official_offline_load,
    tree_state,
)

HFGET = str(Path(sys.executable).with_name("hfget"))
# flock stand-ins, setpriv, rlimits, a umask set for the child: POSIX tools. Windows' locks (msvcrt) are tested by
# test_nonposix.py's stand-in, and the lock hfget takes there is filelock's (see the README, "Windows and macOS").
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX locks and process tools; see test_nonposix.py")


def _hfget(*args, preexec=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([HFGET, *map(str, args)], capture_output=True, text=True, timeout=120,
                          preexec_fn=preexec, **kwargs)


def _start(*args, wrapper: list[str] | None = None) -> subprocess.Popen:
    argv = [*(wrapper or [HFGET]), *map(str, args)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# --- the repo lock ----------------------------------------------------------------------------------------------


def test_a_clean_skips_a_repo_whose_download_holds_no_blob_lock_yet(sim, cache, cli):
    """A download between its first write and its first blob lock (or linking, after its last) holds the repo lock
    only: the download's own lock, taken here in-process as `download()` takes it."""
    hfget_download(cli, sim, cache, MODEL)
    settings = resolve({"HF_HUB_CACHE": str(cache)})
    planned_earlier = plan_clean(settings, CleanRequest(targets=(MODEL,)))  # before the download started
    with RepoLock(cache / ".locks" / MODEL_DIR, locks.new_owner()) as held:
        held.acquire_shared(wait=5)
        result = _hfget("cache", "clean", MODEL, "--yes", "--cache-dir", cache, "--only", "huggingface")
        assert result.returncode == 0, result.stderr
        assert "skipped:" in result.stdout and "in use: hfget download, pid" in result.stdout
        listed = json.loads(_hfget("cache", "list", "--json", "--cache-dir", cache, "--only", "huggingface").stdout)
        assert listed["repos"][0]["in_use"] and "hfget download" in listed["repos"][0]["in_use_because"][0]
        late = planned_earlier.execute()  # the lock itself, at deletion time, not only the plan's look
        assert not late.done and late.skipped[0].note.startswith("in use: hfget download, pid")
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)
    assert not live_markers(cache / ".locks" / MODEL_DIR, "download")  # released: its marker is gone


def test_a_download_waits_for_a_clean_and_then_fetches_what_it_deleted(sim, cache, cli):
    """The download looked at the cache (everything there), then found a clean holding the repo: it waits, writing
    nothing, and once the clean is done looks again under the lock, fetching what the clean took."""
    hfget_download(cli, sim, cache, MODEL)
    clean = RepoLock(cache / ".locks" / MODEL_DIR, locks.new_owner())
    clean.try_exclusive()
    try:
        download = _start("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
        _wait_for(lambda: list((cache / ".locks" / MODEL_DIR).glob("download.*.hfget")))  # it is at the lock
        before = tree_state(cache / MODEL_DIR)
        time.sleep(1)  # (nothing timed is asserted: only that nothing is written while the clean holds the repo)
        assert download.poll() is None and tree_state(cache / MODEL_DIR) == before
        with pytest.raises(RepoBusy):  # and a second clean is turned away
            RepoLock(cache / ".locks" / MODEL_DIR, locks.new_owner()).try_exclusive()
        shutil.rmtree(cache / MODEL_DIR)  # what the clean deletes
    finally:
        clean.release()
    out, err = download.communicate(timeout=60)
    assert download.returncode == 0, err
    assert json.loads(out)["bytes_downloaded"] > 0
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


# --- where flock does nothing, or is not there at all -------------------------------------------------------------

NO_FLOCK = {
    # Lustre without -o flock, GPFS, some NFS mounts: flock "succeeds" for everyone and excludes no one.
    "noop": "import fcntl; fcntl.flock = lambda fd, op: None",
    # flock unsupported (ENOSYS): filelock falls back to soft locks there; hfget to its markers alone.
    "enosys": "import errno, fcntl\n"
              "def flock(fd, op): raise OSError(errno.ENOSYS, 'Function not implemented')\n"
              "fcntl.flock = flock",
}


def _without_flock(mode: str) -> list[str]:
    """hfget as a process on such a file system: flock is replaced before hfget starts, for the whole process."""
    return [sys.executable, "-c", NO_FLOCK[mode] + "\nimport sys\nfrom hfget.cli import main\n"
            "sys.argv[0] = 'hfget'\nmain()"]


@pytest.mark.parametrize("mode", ["noop", "enosys"])
def test_without_a_working_flock_a_clean_still_steps_around_a_running_download(sim, cache, mode):
    sim.add_fault("throttle", "model.safetensors", rate=300_000)
    download = _start("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--connections", "2",
                      wrapper=_without_flock(mode))
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: hfget_partial_bytes(blobs) > 0)
    clean = subprocess.run([*_without_flock(mode), "cache", "clean", MODEL, "--yes", "--cache-dir", str(cache),
                            "--only", "huggingface"], capture_output=True, text=True, timeout=60)
    assert "in use: hfget download, pid" in clean.stdout, clean.stdout + clean.stderr  # the marker said so
    sim.clear_faults()
    out, err = download.communicate(timeout=60)
    assert download.returncode == 0, err
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)
    assert not leftovers(cache)


def test_where_flock_excludes_nobody_two_downloads_of_one_blob_each_write_their_own_partial(sim, cache):
    """Where no lock excludes anyone, both processes download the same file at once: each into its own partial,
    each moved into place only verified, one correct blob in the end (the price is bandwidth, never the bytes)."""
    sim.add_fault("throttle", "model.safetensors", rate=500_000)
    args = ("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--connections", "4")
    first = _start(*args, wrapper=_without_flock("noop"))
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: hfget_partials(blobs))
    second = _start(*args, wrapper=_without_flock("noop"))
    # Both write at once, each its own file (with a lock that excluded, the second would wait instead).
    _wait_for(lambda: len(hfget_partials(blobs)) == 2)
    for process in (first, second):
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    weights = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"] == {
        "model.safetensors": weights.content.sha256}
    assert not leftovers(cache)


def test_where_flock_is_refused_the_blob_lock_is_filelocks_soft_lock(sim, cache):
    """flock refused (ENOSYS: NFS without a lock manager): filelock, hence huggingface_hub, falls back to its soft
    lock there, and so does hfget: the lock file exists while held, with the holder's `pid\nhost\n` record. A second
    download waits for it, writing nothing, then finds the blob in place; the lock file is gone afterwards."""
    sim.add_fault("throttle", "model.safetensors", rate=500_000)
    args = ("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--connections", "4",
            "--json")
    first = _start(*args, wrapper=_without_flock("enosys"))
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: hfget_partials(blobs))
    weights = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
    lock = cache / ".locks" / MODEL_DIR / f"{weights.content.sha256}.lock"
    assert lock.read_text().splitlines()[0] == str(first.pid)  # filelock's record: pid, host
    second = _start(*args, wrapper=_without_flock("enosys"))
    _wait_for(lambda: list((cache / ".locks" / MODEL_DIR).glob("download.*.hfget")).__len__() == 2)
    time.sleep(1)  # (nothing timed is asserted: only that the second writes no partial while the first holds)
    assert len(hfget_partials(blobs)) == 1
    results = []
    for process in (first, second):
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert [r["bytes_downloaded"] for r in results] == [weights.size, 0]
    assert official_offline_load(cache, MODEL, files=["model.safetensors"])["files"] == {
        "model.safetensors": weights.content.sha256}
    assert not leftovers(cache) and not lock.exists()


# --- markers of processes that are gone ---------------------------------------------------------------------------


def test_a_killed_download_does_not_hold_the_repo_forever(sim, cache):
    sim.add_fault("throttle", "model.safetensors", rate=200_000)
    download = _start("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    blobs = cache / MODEL_DIR / "blobs"
    _wait_for(lambda: hfget_partial_bytes(blobs) > 0)
    download.kill()
    download.wait(timeout=10)
    marker_dir = cache / ".locks" / MODEL_DIR
    assert list(marker_dir.glob("download.*.hfget"))  # kill -9 left its marker behind...
    result = _hfget("cache", "clean", MODEL, "--yes", "--cache-dir", cache, "--only", "huggingface")
    assert result.returncode == 0 and "Freed" in result.stdout, result.stdout  # ...which counts for nothing
    assert not (cache / MODEL_DIR).exists() and not list(marker_dir.glob("*.hfget"))


def test_marker_liveness_rules(tmp_path):
    """Another host's marker is alive while it is refreshed; this host's is alive while its pid is."""
    folder = tmp_path / ".locks" / MODEL_DIR
    folder.mkdir(parents=True)
    elsewhere = folder / "download.00000000-123-abcdef.hfget"  # another machine sharing the cache (NFS)
    elsewhere.write_text("{}")
    assert locks.owner_alive("00000000-123-abcdef", elsewhere)
    old = time.time() - locks.STALE_AFTER - 60
    os.utime(elsewhere, (old, old))
    assert not locks.owner_alive("00000000-123-abcdef", elsewhere)
    here = locks.host_id()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = folder / f"download.{here}-{sleeper.pid}-abcdef.hfget"
        mine.write_text("{}")
        assert locks.owner_alive(f"{here}-{sleeper.pid}-abcdef", mine)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not locks.owner_alive(f"{here}-{sleeper.pid}-abcdef", mine)
    # This very process, under an owner name it never used (a container that reuses pids): dead.
    reused = folder / f"download.{here}-{os.getpid()}-abcdef.hfget"
    reused.write_text("{}")
    assert not locks.owner_alive(f"{here}-{os.getpid()}-abcdef", reused)


# --- lock files: many, unreadable, group-writable ------------------------------------------------------------------


def test_cache_clean_of_a_repo_with_more_lock_files_than_the_descriptor_limit(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL)
    lock_dir = cache / ".locks" / MODEL_DIR
    for i in range(300):  # what years of huggingface_hub downloads leave: one lock file per blob ever fetched
        (lock_dir / f"{i:064x}.lock").touch()
    limit = 200  # well above what the interpreter needs, well below the lock files to check

    def low_limit():
        import resource  # (POSIX only)

        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    listed = _hfget("cache", "list", "--json", "--cache-dir", cache, "--only", "huggingface", preexec=low_limit)
    assert listed.returncode == 0 and json.loads(listed.stdout)["repos"][0]["in_use"] is False, listed.stderr
    result = _hfget("cache", "clean", MODEL, "--yes", "--cache-dir", cache, "--only", "huggingface",
                    preexec=low_limit)
    assert result.returncode == 0 and "Freed" in result.stdout, result.stdout + result.stderr
    assert not (cache / MODEL_DIR).exists()


def _without_file_permission_override() -> list[str]:
    """Tests run as root, whom file permissions do not stop. setpriv drops the two capabilities that let root
    ignore them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): the process then meets permissions as any user would."""
    if os.geteuid() != 0:
        return []
    if not Path("/usr/bin/setpriv").exists():
        pytest.skip("needs setpriv (util-linux) to drop root's permission override")
    caps = "-dac_override,-dac_read_search"
    return ["/usr/bin/setpriv", "--bounding-set", caps, "--inh-caps", caps]


def test_a_lock_that_cannot_be_opened_is_reported_as_such_not_as_in_use(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL)
    lock_dir = cache / ".locks" / MODEL_DIR
    readable, private = sorted(lock_dir.glob("*.lock"))[:2]
    nobody = 65534
    # Another user's lock file, readable (as huggingface_hub 0.x leaves them, 0o644): checked, found free.
    os.chown(readable, nobody, nobody)
    readable.chmod(0o644)
    prefix = _without_file_permission_override()
    ok = subprocess.run([*prefix, HFGET, "cache", "list", "--json", "--cache-dir", str(cache), "--only",
                         "huggingface"], capture_output=True, text=True, timeout=60)
    assert json.loads(ok.stdout)["repos"][0]["in_use"] is False, ok.stdout + ok.stderr
    # Another user's private lock file: nobody can tell whether a download holds it, and the clean says exactly that.
    os.chown(private, nobody, nobody)
    private.chmod(0o600)
    result = subprocess.run([*prefix, HFGET, "cache", "clean", MODEL, "--yes", "--cache-dir", str(cache), "--only",
                             "huggingface"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "skipped:" in result.stdout and "permission denied" in result.stdout and str(private) in result.stdout
    assert "a download holds" not in result.stdout
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_lock_files_are_group_writable_whatever_the_umask(sim, cache):
    """As huggingface_hub 2.x makes them (filelock with mode 0o664): a team's shared cache works across accounts."""
    sim.add_fault("throttle", "model.safetensors", rate=500_000)
    download = subprocess.Popen([HFGET, "download", MODEL, "--endpoint", sim.url, "--cache-dir", str(cache)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(0o077))
    lock_dir = cache / ".locks" / MODEL_DIR
    _wait_for(lambda: list(lock_dir.glob("download.*.hfget")) if lock_dir.exists() else False)
    seen = {p.name: stat.S_IMODE(p.stat().st_mode) for p in lock_dir.iterdir()}
    assert download.wait(timeout=60) == 0
    seen.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in lock_dir.iterdir()})
    assert any(n.endswith(".lock") for n in seen) and "repo.hfget-lock" in seen
    assert any(n.startswith("download.") for n in seen)  # the marker, while it existed
    assert set(seen.values()) == {0o664}, seen
