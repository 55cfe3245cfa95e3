"""Can this folder hold the cache's symlinks? Windows without Developer Mode (or admin rights), FAT and exFAT drives,
some network shares cannot; huggingface_hub then keeps plain files in `snapshots/` (store/hub_cache.py does too).

Probed the way the cache uses them: a relative link `d/link -> ../target` made and read through, in a temporary
folder of the probe's own, removed after. A share that lets a link be made but not followed (sshfs with
`contain_symlinks`, the default since CVE-2026-47187) counts as "no symlinks". huggingface_hub 0.x recorded a
folder as symlink-capable *before* its probe finished, so a second worker could use symlinks the probe was about to
reject (its issue #4915); this probe answers only its caller, after it finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def symlinks_work(folder: Path) -> bool:
    """Whether relative symlinks can be made and followed in `folder` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".hfget-symlink-probe-", dir=folder))
    try:
        (probe / "target").write_bytes(b"hfget")
        (probe / "d").mkdir()
        os.symlink(os.path.join("..", "target"), probe / "d" / "link")
        return (probe / "d" / "link").read_bytes() == b"hfget"
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
