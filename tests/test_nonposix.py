"""hfget where POSIX is missing, on this Linux machine: processes without fcntl, positional I/O or symlinks, with
text-mode `os.open`, undeletable read-only files, and msvcrt's locks or none (tests/nonposix.py). Everything runs
for real in such processes: hfget downloads, is killed, resumes, fetches a second revision, lists and cleans the
cache, and huggingface_hub (which finds no symlinks there either) loads what it wrote offline."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from hfget.engine.resume_state import state_path
from hfget.engine.segments import PieceSizes
from hfget.fs import fileio, locks, oslocks
from hfget.fs.symlinks import symlinks_work
from nonposix import nonposix_env, offline_load, run_hfget, run_python
from support import (
    DATASET,
    DATASET_DIR,
    MODEL,
    MODEL_DIR,
    SIGKILL,
    expected_files,
    hfget_partials,
    interrupt_halfway,
    leftovers,
    needs_linux,
    official_offline_load,
)

ONE_CHUNK = PieceSizes().min_piece  # (as in test_resume: what a resumed run may fetch beyond what is missing)


@needs_linux
def test_the_processes_lack_what_windows_lacks():
    """The stand-in itself: without this, the tests below could pass on POSIX branches."""
    code = """
import os, tempfile
try:
    import fcntl
except ModuleNotFoundError:
    print("no fcntl")
print(sorted(n for n in ("pwrite", "pread", "preadv", "readv") if hasattr(os, n)))
d = tempfile.mkdtemp()
try:
    os.symlink("x", os.path.join(d, "link"))
except OSError as e:
    print("symlink", e.errno, e.winerror)
fd = os.open(os.path.join(d, "t"), os.O_WRONLY | os.O_CREAT)
os.write(fd, b"a\\nb")
os.close(fd)
print(open(os.path.join(d, "t"), "rb").read())
os.chmod(os.path.join(d, "t"), 0o444)
try:
    os.unlink(os.path.join(d, "t"))
except PermissionError:
    print("read-only stays")
try:
    import msvcrt
    print("msvcrt", msvcrt.LK_NBLCK)
except ModuleNotFoundError:
    print("no msvcrt")
"""
    windows = run_python(code, "windows")
    assert windows.stdout.splitlines() == [
        "no fcntl", "[]", "symlink 22 1314", "b'a\\r\\nb'", "read-only stays", "msvcrt 2"], windows.stderr
    assert run_python(code, "nolocks").stdout.splitlines()[-1] == "no msvcrt"


def _served(sim) -> int:
    return sim.body_bytes_served("/cdn/*")


def _regular_files_only(cache) -> None:
    repo = cache / MODEL_DIR
    assert not [p for p in repo.rglob("*") if p.is_symlink()]
    assert not [p for p in (repo / "blobs").iterdir() if not p.name.endswith((".partial", ".json"))]


@needs_linux
def test_download_resume_second_revision_load_and_clean_without_posix(sim, cache):
    """The must-show: fcntl unimportable, symlinks refused (msvcrt's locks, no pwrite). A download killed halfway
    resumes with only the missing bytes; a second revision moves only what changed (the rest is copied from the
    first, not fetched again); huggingface_hub loads both offline; `cache verify` finds the one damaged copy and
    `--repair` mends it; `cache clean` of one revision leaves the other loadable."""
    repo = sim.repo(MODEL)
    main, old = repo.resolve("main"), repo.resolve("v1.0")
    weights = repo.commits[main]["model.safetensors"]

    process, _ = interrupt_halfway(sim, cache, SIGKILL, env=nonposix_env("windows"))
    (partial,) = hfget_partials(cache / MODEL_DIR / "blobs")
    done = json.loads(state_path(partial).read_text())["done"]  # (msvcrt lock files, no flock anywhere)
    missing = weights.size - sum(end - start for start, end in done)

    sim.clear_log()
    resumed = run_hfget("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert missing <= _served(sim) <= missing + ONE_CHUNK
    _regular_files_only(cache)  # the verified file went straight into snapshots/, as huggingface_hub does there

    whole = run_hfget("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert whole.returncode == 0, whole.stderr
    sim.clear_log()
    second = run_hfget("download", MODEL, "--revision", old, "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert second.returncode == 0, second.stderr
    old_weights = repo.commits[old]["model.safetensors"]
    assert json.loads(second.stdout)["bytes_downloaded"] == old_weights.size == _served(sim)  # the rest: copies
    _regular_files_only(cache)
    assert not leftovers(cache)

    assert offline_load(cache, MODEL, "main") == expected_files(sim, MODEL)
    assert offline_load(cache, MODEL, old) == expected_files(sim, MODEL, old)

    listed = json.loads(run_hfget("cache", "list", "--json", "--cache-dir", cache, "--only", "huggingface").stdout)
    (entry,) = listed["repos"]
    assert len(entry["revisions"]) == 2 and entry["size"] == sum(
        f.size for commit in (main, old) for f in repo.commits[commit].values())  # copies: each on disk once per
    #                                                                              revision, and counted so

    # cache verify hashes every copy (without symlinks there is one per revision) and names only the bad one;
    # --repair puts it right, here from the other revision's good copy (no byte has to move).
    bad = cache / MODEL_DIR / "snapshots" / old / "tokenizer" / "vocab.txt"
    with open(bad, "r+b") as fh:
        fh.seek(10)
        fh.write(b"X")
    verify = run_hfget("cache", "verify", "--json", "--cache-dir", cache, "--only", "huggingface")
    assert verify.returncode == 1, verify.stderr
    assert [(b["revision"], b["path"], b["status"]) for b in json.loads(verify.stdout)["bad"]] == [
        (old, "tokenizer/vocab.txt", "corrupt")]
    repair = run_hfget("cache", "verify", MODEL, "--repair", "--endpoint", sim.url, "--cache-dir", cache)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert offline_load(cache, MODEL, old) == expected_files(sim, MODEL, old)

    clean = run_hfget("cache", "clean", "--keep-latest", "--yes", "--cache-dir", cache, "--only", "huggingface")
    assert clean.returncode == 0 and "Freed" in clean.stdout, clean.stdout + clean.stderr
    assert not (cache / MODEL_DIR / "snapshots" / old).exists()
    assert offline_load(cache, MODEL, "main") == expected_files(sim, MODEL)


@needs_linux
def test_without_any_file_locks_soft_locks_come_and_go(sim, cache):
    """No fcntl, no msvcrt: blob locks are filelock's soft locks (the lock file exists while held, with its
    holder's record), so a download killed mid-file leaves one whose holder is dead, which the next run breaks."""
    interrupt_halfway(sim, cache, SIGKILL, env=nonposix_env("nolocks"))
    weights = sim.repo(MODEL).commits[sim.repo(MODEL).resolve("main")]["model.safetensors"]
    lock = cache / ".locks" / MODEL_DIR / f"{weights.content.sha256}.lock"
    pid, host = lock.read_text().splitlines()
    assert int(pid) > 0 and host  # the killed process's record, in filelock's format
    resumed = run_hfget("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, mode="nolocks")
    assert resumed.returncode == 0, resumed.stderr
    assert not list((cache / ".locks" / MODEL_DIR).glob("*.lock"))  # released by deletion, as soft locks are
    assert offline_load(cache, MODEL, "main", mode="nolocks") == expected_files(sim, MODEL)


@needs_linux
def test_cache_clean_removes_read_only_files(sim, cache, cli):
    """Windows cannot delete a read-only file; `cache clean` makes it writable first: plain files in a snapshot
    (a cache without symlinks), in a read-only folder, and blobs (deleted through huggingface_hub's strategy)."""
    assert run_hfget("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache).returncode == 0
    dataset = DATASET
    assert cli("download", dataset, "--repo-type", "dataset", "--endpoint", sim.url, "--cache-dir", cache,
               "--quiet").exit_code == 0  # (here, with symlinks: its files are blobs)
    snapshot = cache / MODEL_DIR / "snapshots" / sim.repo(MODEL).resolve("main")
    blobs = list((cache / DATASET_DIR / "blobs").iterdir())
    for path in (snapshot / "config.json", snapshot / "tokenizer" / "vocab.txt", *blobs):
        path.chmod(stat.S_IREAD)
    (snapshot / "tokenizer").chmod(0o555)
    clean = run_hfget("cache", "clean", "--all", "--yes", "--cache-dir", cache, "--only", "huggingface")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not (cache / MODEL_DIR).exists() and not (cache / DATASET_DIR).exists()


@needs_linux
def test_a_clean_steps_around_a_download_holding_msvcrt_locks(sim, cache):
    """Under msvcrt there are no shared locks: the repo lock is the download's marker, proven alive by the
    exclusive lock its owner holds on it, and the blob lock is byte 0 of the lock file, as filelock takes it."""
    sim.add_fault("throttle", "model.safetensors", rate=300_000)
    download = subprocess.Popen([sys.executable, "-m", "hfget", "download", MODEL, "--endpoint", sim.url,
                                 "--cache-dir", str(cache), "--connections", "2"], env=nonposix_env("windows"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        blobs = cache / MODEL_DIR / "blobs"
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size for p in hfget_partials(blobs)):
            assert download.poll() is None, download.stderr.read()
            assert time.monotonic() < deadline, "no partial appeared"
            time.sleep(0.05)
        clean = run_hfget("cache", "clean", MODEL, "--yes", "--cache-dir", cache, "--only", "huggingface")
        assert "in use: hfget download, pid" in clean.stdout, clean.stdout + clean.stderr
        lock = cache / ".locks" / MODEL_DIR / f"{_weights_sha(sim)}.lock"
        assert lock.read_bytes() == b""  # a real lock, not a soft one with its holder's record
        probe = run_python(f"import msvcrt, os\nfd = os.open({str(lock)!r}, os.O_RDWR)\n"
                           "try:\n    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)\nexcept PermissionError:\n"
                           "    print('byte 0 is locked')")
        assert probe.stdout.strip() == "byte 0 is locked", probe.stderr  # as filelock's Windows lock takes it
    finally:
        download.kill()
        download.wait(timeout=10)
        sim.clear_faults()
    # Killed: the OS dropped its locks, so its marker counts for nothing and the repo can be cleaned.
    clean = run_hfget("cache", "clean", MODEL, "--yes", "--cache-dir", cache, "--only", "huggingface")
    assert clean.returncode == 0 and "Freed" in clean.stdout, clean.stdout + clean.stderr


def _weights_sha(sim) -> str:
    return sim.repo(MODEL).commits[sim.repo(MODEL).resolve("main")]["model.safetensors"].content.sha256


# --- the parts, in this process ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [("pwrite", "pread", "preadv"), ("preadv",)], ids=["windows", "macos-10"])
def test_positional_io_without_pwrite_keeps_every_threads_bytes(tmp_path, monkeypatch, missing):
    """Without os.pwrite / os.preadv, many threads writing and reading one descriptor at their own offsets (what the
    engine's connections and its hasher do) still put every byte where it belongs."""
    for name in missing:
        monkeypatch.delattr(os, name, raising=False)
    fd = fileio.open_binary(tmp_path / "partial", os.O_RDWR | os.O_CREAT)
    piece, pieces = 4096, 256
    expected = b"".join(bytes([i % 251]) * piece for i in range(pieces))
    read_back: dict[int, bytes] = {}

    def work(first: int) -> None:
        for i in range(first, pieces, 8):
            fileio.pwrite_all(fd, expected[i * piece:(i + 1) * piece], i * piece)
            buffer = memoryview(bytearray(piece))
            n = fileio.pread_into(fd, buffer, i * piece)
            read_back[i] = bytes(buffer[:n])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.close(fd)
    assert (tmp_path / "partial").read_bytes() == expected
    assert all(read_back[i] == expected[i * piece:(i + 1) * piece] for i in range(pieces))


def test_where_the_pid_cannot_be_asked_a_lock_nobody_holds_means_the_owner_is_gone(tmp_path, monkeypatch):
    """Windows without a pid check (or where it fails): the marker's lock decides. Held: alive; free: gone."""
    monkeypatch.setattr(oslocks, "pid_exists", lambda pid: None)
    owner = f"{locks.host_id()}-{os.getpid() + 1}-abcdef"  # this host, another (unaskable) process
    marker = tmp_path / f"download.{owner}.hfget"
    marker.write_text("{}")
    assert not locks.owner_alive(owner, marker)
    fd = os.open(marker, os.O_RDWR)
    try:
        locks.lock_marker(fd)  # what the owner does while it lives
        assert locks.owner_alive(owner, marker)
    finally:
        os.close(fd)


def test_the_symlink_probe(tmp_path, monkeypatch):
    assert symlinks_work(tmp_path / "cache") and list((tmp_path / "cache").iterdir()) == []

    def unreadable_link(src, dst, *args, **kwargs):  # made, but cannot be followed (sshfs's contain_symlinks)
        real_symlink("nowhere", dst)

    real_symlink = os.symlink
    monkeypatch.setattr(os, "symlink", unreadable_link)
    assert not symlinks_work(tmp_path / "cache") and list((tmp_path / "cache").iterdir()) == []


def test_hf_hub_disable_symlinks_keeps_plain_files_where_symlinks_work(sim, cache, cli):
    """HF_HUB_DISABLE_SYMLINKS=1, as huggingface_hub honours it: plain files in snapshots/, nothing in blobs/."""
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, env={"HF_HUB_DISABLE_SYMLINKS": "1"})
    assert result.exit_code == 0, result.output
    _regular_files_only(cache)
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


@needs_linux
@pytest.mark.usefixtures("sim_cdn_elsewhere")  # huggingface_hub below 2.2 needs the CDN on another host name
def test_huggingface_hubs_soft_lock_and_hfgets_exclude_each_other(sim, cache):
    """Without file locks both tools use filelock's soft lock on the same `.locks/.../{etag}.lock`: hfget waits for
    a running huggingface_hub download of the blob (its record names a live process), then takes what it wrote."""
    sim.add_fault("throttle", "model.safetensors", rate=1_000_000)
    code = (f"from huggingface_hub import hf_hub_download\n"
            f"hf_hub_download({MODEL!r}, 'model.safetensors', cache_dir={str(cache)!r}, endpoint={sim.url!r})")
    official = subprocess.Popen([sys.executable, "-c", code], env=nonposix_env("nolocks"), stderr=subprocess.PIPE)
    lock = cache / ".locks" / MODEL_DIR / f"{_weights_sha(sim)}.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_bytes()):
        assert official.poll() is None, official.stderr.read()
        assert time.monotonic() < deadline, "huggingface_hub took no lock"
        time.sleep(0.02)
    assert lock.read_text().splitlines()[0] == str(official.pid)  # filelock's record
    ours = run_hfget("download", MODEL, "model.safetensors", "--endpoint", sim.url, "--cache-dir", cache, "--json",
                     mode="nolocks")
    assert official.wait(timeout=60) == 0, official.stderr.read()
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout)["bytes_downloaded"] == 0  # it waited, then found the file in place
    assert not hfget_partials(cache / MODEL_DIR / "blobs") and not lock.exists()
    loaded = offline_load(cache, MODEL, "main", mode="nolocks", files=["model.safetensors"])
    assert loaded == {"model.safetensors": _weights_sha(sim)}


@needs_linux
def test_diagnose_says_when_the_cache_cannot_hold_symlinks(cache):
    """Why a cache without symlinks grows by a copy per revision, and what turns symlinks on."""
    cache.mkdir()
    report = json.loads(run_hfget("diagnose", "--json", "--timeout", "1", HF_HUB_CACHE=str(cache)).stdout)
    (check,) = [c for c in report["checks"] if c["group"] == "cache" and c["name"] == "symlinks"]
    assert check["status"] == "warn" and "cannot hold symlinks" in check["detail"]
    assert "Developer Mode" in check["hint"] and list(cache.iterdir()) == []  # the probe left nothing
    here = json.loads(run_hfget("diagnose", "--json", "--timeout", "1", HF_HUB_CACHE=str(cache),
                                HFGET_NONPOSIX="").stdout)  # (this Linux, as it is)
    assert [c["status"] for c in here["checks"] if c["name"] == "symlinks"] == ["ok"]
