"""Commands that move no bytes start without the transfer stack: `cache list`, and every error found before the
first request (a bad repo id, a bad flag). Checked in a fresh interpreter, by what is in sys.modules at exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The transfer stack: the engine that moves bytes, the HTTP client and its libraries, the source chain.
TRANSFER_STACK = {
    "hfget.engine.transfer", "hfget.engine.connection", "hfget.engine.scheduler", "hfget.engine.governor",
    "hfget.engine.file_task", "hfget.net.http", "hfget.net.http_direct", "hfget.chain.route", "hfget.sources",
    "urllib3", "requests",
}

_RUN = """
import atexit, json, sys
atexit.register(lambda: print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["hfget", *{args!r}]
from hfget.cli import main
main()
"""


def _loaded(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    done = subprocess.run([sys.executable, "-c", _RUN.format(args=list(args))], capture_output=True, text=True,
                          timeout=60, env=env)
    line = next(line for line in done.stderr.splitlines() if line.startswith("MODULES="))
    return set(json.loads(line[len("MODULES="):])), done


def test_cache_list_loads_no_transfer_stack(sim, cache, cli):
    assert cli("download", "hfget-demo/tiny-dataset", "--repo-type", "dataset", "--endpoint", sim.url,
               "--source", "mirror", "--cache-dir", cache, "--quiet").exit_code == 0
    loaded, done = _loaded("cache", "list", "--cache-dir", str(cache))
    assert done.returncode == 0 and "tiny-dataset" in done.stdout, done.stderr
    assert not loaded & TRANSFER_STACK, loaded & TRANSFER_STACK
    assert "hfget.download" not in loaded


@pytest.mark.parametrize("args", [
    ("download", "not a repo!!"),
    ("download", "hfget-demo/tiny-model", "--max-per-host", "0"),
    ("download", "hfget-demo/tiny-model", "--revision", "../etc"),
])
def test_errors_found_before_any_request_load_no_transfer_stack(args):
    loaded, done = _loaded(*args)
    assert done.returncode == 2, done.stderr
    assert not loaded & TRANSFER_STACK, loaded & TRANSFER_STACK
