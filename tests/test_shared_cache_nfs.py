"""One Hugging Face cache shared by several machines (HF_HUB_CACHE on NFS), written by several hfget processes at once.

The rule under test: correctness never depends on `flock` (a no-op on Lustre, GPFS and NFS mounts without a lock
manager): each writer uses its own temporary names and moves only verified files into place by atomic rename, so
concurrent writers end with one correct copy, whatever the locks did.

Where the cache lives, in order of faithfulness:
* `nfs`: a real NFS export mounted over loopback. Skipped where the kernel cannot serve or mount NFS (the skip says
  why: on the development VMs the kernel is built without network file systems and without loadable modules).
* `fuse`: the documented stand-in, a FUSE mount (tests/quirkyfs.py) whose flock and POSIX locks succeed for
  everyone and exclude no one — NFS without a lock manager, as another machine's hfget would see it.
* `noop-flock`: where FUSE is not available, a local folder with `fcntl.flock` replaced by a no-op inside each hfget
  process, which is what a file system without working locks amounts to.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import DATASET, MODEL, expected_files, official_offline_load

from interop_envs import interop_venv

QUIRKYFS = Path(__file__).with_name("quirkyfs.py")
NOOP_FLOCK = "import fcntl; fcntl.flock = lambda fd, op: None; fcntl.lockf = lambda fd, cmd, *a: None\n"


@dataclass
class SharedCache:
    path: Path
    hfget: list[str]  # how to start hfget on a machine that uses this cache


def _nfs_missing() -> str | None:
    """Why a loopback NFS mount cannot be made here, or None when it could."""
    try:
        filesystems = Path("/proc/filesystems").read_text().split()
    except OSError:
        return "no /proc/filesystems: not Linux"
    if "nfs" not in filesystems or "nfsd" not in filesystems:
        return ("this kernel has no NFS client or server ('nfs'/'nfsd' not in /proc/filesystems: built without "
                "CONFIG_NETWORK_FILESYSTEMS and without loadable modules); the fuse stand-in covers the same rules")
    return ("the kernel has NFS, but a loopback export needs root and nfs-kernel-server; this suite does not set "
            "one up (the machines it was written on cannot): the fuse stand-in covers the same rules")


def _fuse_missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return "FUSE stand-in is Linux-only"
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        return "no /dev/fuse or fusermount3 (apt-get install fuse3)"
    if not ctypes.util.find_library("fuse3"):
        return "no libfuse3 (apt-get install fuse3)"
    return None


@contextmanager
def _noop_lock_mount(backing: Path, mount: Path):
    """quirkyfs over `backing` at `mount`, flock and POSIX locks no-ops; unmounted (its daemon ended) after."""
    python = interop_venv("quirkyfs", ["mfusepy==3.1.1"]) / "python"
    backing.mkdir()
    mount.mkdir()
    log = mount.with_name(mount.name + ".log")
    with open(log, "w") as out:
        daemon = subprocess.Popen([str(python), str(QUIRKYFS), str(backing), str(mount), "--flock", "noop",
                                   "--posix-lock", "noop"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while f" {mount} fuse.quirkyfs " not in Path("/proc/mounts").read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the FUSE stand-in could not mount here: {log.read_text()[-300:]}")
            time.sleep(0.05)
        yield mount
    finally:
        # Lazily if something still holds it: a mount whose daemon is gone would block removing the test's folder.
        if subprocess.run(["fusermount3", "-u", str(mount)], capture_output=True, timeout=30).returncode:
            subprocess.run(["fusermount3", "-u", "-z", str(mount)], capture_output=True, timeout=30)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)


@pytest.fixture(params=["nfs", "fuse", "noop-flock"])
def shared_cache(request, tmp_path):
    hfget = [sys.executable, "-m", "hfget"]
    if request.param == "nfs":
        pytest.skip(_nfs_missing())
    if request.param == "fuse":
        why = _fuse_missing()
        if why:
            pytest.skip(why)
        with _noop_lock_mount(tmp_path / "export", tmp_path / "nfs") as mount:
            _assert_locks_exclude_nothing(mount)
            yield SharedCache(mount / "hub", hfget)
        return
    if os.name != "posix":
        pytest.skip("replaces fcntl.flock, which Windows does not have (its locks: see test_nonposix.py)")
    wrapper = [sys.executable, "-c", NOOP_FLOCK + "import sys\nfrom hfget.cli import main\nsys.argv[0] = 'hfget'\n"
               "main()"]
    yield SharedCache(tmp_path / "shared" / "hub", wrapper)


def _assert_locks_exclude_nothing(mount: Path) -> None:
    """The stand-in models what it claims: two exclusive locks on one file are both granted."""
    import fcntl  # POSIX only, like the stand-in itself

    probe = mount / "lock-probe"
    first, second = os.open(probe, os.O_RDWR | os.O_CREAT), os.open(probe, os.O_RDWR)
    try:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)  # on a local disk: BlockingIOError
    finally:
        os.close(first)
        os.close(second)
        probe.unlink()


def test_concurrent_writers_on_a_shared_cache_end_with_one_correct_copy(sim, shared_cache, tmp_path):
    """Two machines (own HOME each) fetch the same model into the shared cache at once, a third another repo."""
    sim.add_fault("throttle", "*model.safetensors", rate=2_000_000)  # slow enough that the two really overlap
    cache = shared_cache.path
    jobs = {"alice": (MODEL,), "bob": (MODEL,), "carol": (DATASET, "--repo-type", "dataset")}
    running = {}
    for user, args in jobs.items():
        home = tmp_path / user
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "HF_HUB_CACHE": str(cache)}
        running[user] = subprocess.Popen([*shared_cache.hfget, "download", *args, "--endpoint", sim.url, "--json"],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished = {user: (proc, *proc.communicate(timeout=120)) for user, proc in running.items()}  # all, then judge
    results = {}
    for user, (proc, out, err) in finished.items():
        assert proc.returncode == 0, f"{user}: {err}"
        results[user] = json.loads(out)
    # Both model writers really fetched the weights at the same time: no lock made one wait for the other.
    for user in ("alice", "bob"):
        weights = next(f for f in results[user]["files"] if f["path"] == "model.safetensors")
        assert weights["status"] == "downloaded", (user, weights)

    # One copy of each blob, nothing else left behind (no partial, no temporary file, no state file).
    for repo, kind in ((MODEL, "model"), (DATASET, "dataset")):
        folder = cache / f"{kind}s--{repo.replace('/', '--')}" / "blobs"
        want = {f.etag for f in sim.repo(repo, kind).commits[sim.repo(repo, kind).refs["main"]].values()}
        assert sorted(p.name for p in folder.iterdir()) == sorted(want)
        assert official_offline_load(cache, repo, repo_type=kind)["files"] == expected_files(sim, repo, repo_type=kind)
        verify = subprocess.run(
            [str(Path(sys.executable).with_name("hf")), "cache", "verify", repo, "--repo-type", kind, "--cache-dir",
             str(cache), "--fail-on-missing-files", "--fail-on-extra-files"],
            env={**os.environ, "HF_ENDPOINT": sim.url}, capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "All checksums match" in verify.stdout
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    assert not info.warnings and not info.incomplete_files
