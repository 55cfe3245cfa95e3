"""The programs the tests run against the simulator: hfget (in a real process or in-process), the official
huggingface_hub and modelscope clients, and what the simulator says a repo holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from hfget.testing.hubsim import HubSimulator

from .names import POSIX


def hfget_process(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """`hfget ARGS...` as a real process, in the environment the `isolated` fixture left (no user settings; the
    default sources are closed loopback ports, so nothing leaves this machine), with text stdout and stderr pipes.

    Ctrl-C reaches it as from a terminal: a test run started in the background (nohup, `cmd &` in a script) inherits
    SIGINT *ignored*, and Python then never turns it into KeyboardInterrupt."""
    full_env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "hfget", *map(str, args)], env=full_env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **popen,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if POSIX else None,
    )


def hfget_download(cli, sim, cache: Path, repo: str, *args: str) -> None:
    result = cli("download", repo, "--endpoint", sim.url, "--cache-dir", cache, "--quiet", *args)
    assert result.exit_code == 0, result.output


@contextmanager
def cdn_on_another_host(sim: HubSimulator):
    """Point the simulator's LFS redirects at `localhost` instead of its own 127.0.0.1 while an official
    huggingface_hub client downloads: another host name, as the real hub's CDN is.

    huggingface_hub before 2.2 took a redirect to another port of the same host for the hub itself (it compared host
    names; 2.2 compares origins), followed it, and found no X-Repo-Commit on the CDN's answer. Against the real hub its
    CDN is another host and every 2.x works, so the tests that use it to build caches name the CDN as the hub does."""
    saved = sim.cdn_base
    sim.cdn_base = f"http://localhost:{sim.cdn_port}"
    try:
        yield sim
    finally:
        sim.cdn_base = saved


def official_download(sim, cache: Path, repo: str, **kwargs) -> str:
    from huggingface_hub import snapshot_download

    with cdn_on_another_host(sim):
        return snapshot_download(repo, endpoint=sim.url, cache_dir=cache, **kwargs)


def official_offline_load(
    cache: Path, repo_id: str, revision: str = "main", repo_type: str = "model", files: list[str] | None = None
) -> dict:
    """Load a snapshot (or only `files`) with the official client, offline, in a fresh process.

    Returns {"path": snapshot folder, "files": {path: sha256}}.
    """
    code = f"""
import hashlib, json, os
from huggingface_hub import snapshot_download
p = snapshot_download({repo_id!r}, revision={revision!r}, repo_type={repo_type!r}, local_files_only=True,
                      allow_patterns={files!r})
out = {{}}
for root, _, files in os.walk(p):
    for f in files:
        full = os.path.join(root, f)
        out[os.path.relpath(full, p)] = hashlib.sha256(open(full, 'rb').read()).hexdigest()
print(json.dumps({{"path": p, "files": out}}))
"""
    env = {k: v for k, v in os.environ.items()}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def modelscope_download(sim, ms_cache: Path, repo: str) -> None:
    """The official `modelscope download` CLI, filling MODELSCOPE_CACHE from the simulator's ModelScope protocol."""
    env = {**os.environ, "MODELSCOPE_ENDPOINT": sim.url, "MODELSCOPE_CACHE": str(ms_cache)}
    cli = Path(sys.executable).with_name("modelscope")
    proc = subprocess.run([str(cli), "download", repo], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def expected_files(sim: HubSimulator, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict:
    repo = sim.repo(repo_id, repo_type)
    files = repo.commits[repo.resolve(revision)]
    return {path: f.content.sha256 for path, f in files.items()}
