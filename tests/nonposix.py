"""Processes that look like Windows to hfget (tests/nonposix_site/sitecustomize.py says exactly how): no fcntl,
no positional I/O, symlinks refused with Windows' error, text-mode `os.open`, undeletable read-only files, and
either msvcrt's byte-range locks (`windows`) or no file locks at all (`nolocks`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SITE = Path(__file__).with_name("nonposix_site")
MODES = ("windows", "nolocks")


def nonposix_env(mode: str = "windows", **extra: str) -> dict[str, str]:
    """The current environment (as the `isolated` fixture left it), for a Python process in `mode`."""
    assert mode in MODES
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), *filter(None, [env.get("PYTHONPATH")])])
    env["HFGET_NONPOSIX"] = mode
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update(extra)
    return env


def run_python(code: str, mode: str = "windows", timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=nonposix_env(mode, **extra), capture_output=True,
                          text=True, timeout=timeout)


def run_hfget(*args, mode: str = "windows", timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hfget", *map(str, args)], env=nonposix_env(mode, **extra),
                          capture_output=True, text=True, timeout=timeout)


def offline_load(cache: Path, repo_id: str, revision: str, mode: str = "windows", files: list[str] | None = None
                 ) -> dict[str, str]:
    """huggingface_hub loads a snapshot offline in such a process (it probes the cache for symlinks itself and finds
    none); returns {path: sha256}."""
    code = f"""
import hashlib, json, os
from huggingface_hub import file_download, snapshot_download
p = snapshot_download({repo_id!r}, revision={revision!r}, local_files_only=True, allow_patterns={files!r})
assert not file_download.are_symlinks_supported({str(cache)!r})
out = {{}}
for root, _, files in os.walk(p):
    for f in files:
        full = os.path.join(root, f)
        assert not os.path.islink(full), full
        out[os.path.relpath(full, p)] = hashlib.sha256(open(full, 'rb').read()).hexdigest()
print(json.dumps(out))
"""
    proc = run_python(code, mode, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_SYMLINKS_WARNING="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return __import__("json").loads(proc.stdout.strip().splitlines()[-1])
