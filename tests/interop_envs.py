"""Separate virtual environments for the real third-party programs the tests run hfget beside.

huggingface_hub 0.x (what transformers 4.x users have), olah, transformers without torch...: each needs versions that
cannot share hfget's own venv, so each gets a venv of its own, built on first use and reused after (keyed by its
requirements), under `.venv/interop/` — `make clean` removes them, a clean clone (CI) builds them once.
Concurrent builders (two pytest runs) wait for each other on a file lock.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("HFGET_INTEROP_VENVS") or ROOT / ".venv" / "interop")


def interop_venv(name: str, requirements: list[str], *, timeout: float = 900) -> Path:
    """The `bin/` folder (`Scripts\\` on Windows) of a venv holding exactly `requirements`, built if missing or
    different."""
    folder = HOME / name
    scripts = folder / ("Scripts" if os.name == "nt" else "bin")
    want = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()
    stamp = folder / ".requirements.sha256"
    HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(str(HOME / f"{name}.lock")):
        if stamp.exists() and stamp.read_text() == want:
            return scripts
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True, timeout=120)
        # The outer environment's settings must not leak into the build (a PYTHONPATH pointing at hfget's own venv).
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
        subprocess.run(
            [str(scripts / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *requirements],
            check=True, timeout=timeout, env=env,
        )
        stamp.write_text(want)
    return scripts
