#!/usr/bin/env python3
"""`hfget cache verify` against `hf cache verify` (huggingface_hub's) on the same cached repo. Not part of the tests.

    .venv/bin/python benchmarks/verify.py                  # 3 runs each, medians
    .venv/bin/python benchmarks/verify.py --runs 5 --shards 8 --shard-mb 256

The repo (served by the hub simulator, downloaded once into a scratch cache by hfget) has `--shards` LFS weight
files of `--shard-mb` MiB plus 200 small regular files. Both tools then re-hash the same cache, warm in the page
cache (each is run once untimed first): `hf cache verify` asks the hub for the tree (the simulator answers) and
hashes one file after another; `hfget cache verify` compares with the tree recorded in the cache and hashes
several files at once. Each timed run must report every file good; a last pair of runs with one byte flipped in
one shard must report exactly that file, so neither tool is timed doing less than the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
REPO = "bench/verify-shards"


def build(shards: int, shard_mb: int):
    from hfget.testing.simrepo import SimRepo, blob_file, text_file

    repo = SimRepo(REPO)
    files = [blob_file(f"model-{i:05d}-of-{shards:05d}.safetensors", shard_mb << 20, seed=100 + i) for i in range(shards)]
    files += [text_file(f"small/part-{i:03d}.json", json.dumps({"i": i, "pad": "x" * (i * 37 % 4000)})) for i in range(200)]
    repo.commit(files)
    return repo


def timed(argv: list[str], env: dict[str, str]) -> tuple[tuple[float, float, float], subprocess.CompletedProcess]:
    """((wall seconds, CPU seconds, peak RSS MB), result). CPU time (user + system) is the work done, whatever
    else the machine runs; wall time is what a user waits, and shows what hashing on several cores buys."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    done = subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), out, err)
    return (seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mb", type=int, default=256)
    parser.add_argument("--json", help="also save the results here")
    args = parser.parse_args()

    from hfget.testing.hubsim import HubSimulator

    sim = HubSimulator([build(args.shards, args.shard_mb)]).start()
    scratch = Path(tempfile.mkdtemp(prefix="hfget-verify-bench-"))
    cache = scratch / "hub"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": sim.url, "HF_HUB_DISABLE_TELEMETRY": "1",
           "HFGET_KNOWN_MIRRORS": "", "HFGET_OFFICIAL_ENDPOINT": sim.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([str(VENV_BIN / "hfget"), "download", REPO, "-q"], env=env, check=True)
    tools = {
        "hfget": [str(VENV_BIN / "hfget"), "cache", "verify", REPO, "--offline", "-q"],
        "hf": [str(VENV_BIN / "hf"), "cache", "verify", REPO, "--cache-dir", str(cache)],
    }
    total = args.shards * (args.shard_mb << 20)
    results: dict[str, list[tuple[float, float, float]]] = {tool: [] for tool in tools}
    for tool, argv in tools.items():
        timed(argv, env)  # warm: page cache, byte code
    for _ in range(args.runs):
        for tool, argv in tools.items():
            numbers, done = timed(argv, env)
            assert done.returncode == 0, f"{tool} did not verify the clean cache: {done.stdout}{done.stderr}"
            results[tool].append(numbers)
    # Both must catch one flipped byte (and be timed doing the same work as above).
    blob = next((cache / f"models--{REPO.replace('/', '--')}" / "blobs").glob("?" * 64))
    with open(blob, "r+b") as fh:
        fh.seek(12345)
        byte = fh.read(1)
        fh.seek(12345)
        fh.write(bytes([byte[0] ^ 1]))
    for tool, argv in tools.items():
        _, done = timed(argv, env)
        assert done.returncode == 1, f"{tool} missed the flipped byte"
    sim.stop()

    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f}; {args.shards} x {args.shard_mb} MiB LFS + 200 small files, {args.runs} runs, "
          "medians")
    med = {tool: statistics.median(r[0] for r in runs) for tool, runs in results.items()}
    cpu = {tool: statistics.median(r[1] for r in runs) for tool, runs in results.items()}
    for tool, runs in results.items():
        print(f"  {tool:6} {med[tool]:6.2f} s wall ({total / med[tool] / 1e6:6.1f} MB/s), {cpu[tool]:5.2f} s CPU  "
              f"runs: {', '.join(f'{r[0]:.2f}' for r in runs)}  peak RSS {max(r[2] for r in runs):.0f} MB")
    print(f"  hf / hfget: {med['hf'] / med['hfget']:.2f}x wall, {cpu['hf'] / cpu['hfget']:.2f}x CPU")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "median": med}, indent=2))


if __name__ == "__main__":
    main()
