#!/usr/bin/env python3
"""hfget against `hf download`, aria2c (hfd.sh's flags) and curl, on the same local nginx. Not part of the tests.

    .venv/bin/python benchmarks/run.py                 # everything, 3 runs each, medians
    .venv/bin/python benchmarks/run.py --runs 1 --scenario throttled

Scenarios (DESIGN §9): `unthrottled` and `throttled` (the ~1 GiB "shards" repo: 2 × 512 MiB + small files; the
throttled hub limits every connection to --rate bytes/s), `small` (400 small files), `huge` (one 2 GiB file, for
peak memory), `many` (3000 files of 2-40 KB, each behind the hub's 307 to /api/resolve-cache, and one 16 MiB LFS
file) and `distant` (1000 such files from a hub 100 ms away: `delaylink.py` adds --delay to each direction; netem is
not available in these kernels). Every file every tool writes is checked against its sha256; wall time, peak RSS
(the child's `ru_maxrss`, from wait4) and the TCP connections it opened to the hub (distinct connection serials in
nginx's log) are printed, with medians and the ratios the issues ask for. `--json FILE` saves it all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fixtures import BenchRepo, Nginx, build_repo, ensure_tools  # noqa: E402

DELAY_PORT = 18700  # delaylink.py in front of the unthrottled hub, for the `distant` scenario

VENV_BIN = Path(sys.executable).parent
SCENARIOS = {  # name -> (repo, throttled, tools)
    "unthrottled": ("shards", False, ("curl", "hfget", "hf", "aria2c")),
    "throttled": ("shards", True, ("hfget", "hf", "aria2c")),
    "small": ("small", False, ("curl", "hfget", "hf", "aria2c")),
    "huge": ("huge", False, ("curl", "hfget")),
    "many": ("many", False, ("curl", "hfget", "hf", "aria2c")),
    # No curl: one file after another over a 100 ms round trip takes minutes (2 round trips per file).
    "distant": ("distant", False, ("hfget", "hf", "aria2c")),
}


@dataclass
class Run:
    tool: str
    seconds: float
    peak_rss_mb: float
    verified: bool
    hash_seconds: float = 0.0  # time to sha256 every file afterwards (what hfget does while downloading)
    connections: int = 0  # TCP connections it opened to the (unthrottled) hub


@dataclass
class Result:
    scenario: str
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, tool: str) -> float:
        return statistics.median(r.seconds for r in self.runs[tool])

    def peak(self, tool: str) -> float:
        return max(r.peak_rss_mb for r in self.runs[tool])


# --- the tools ----------------------------------------------------------------------------------------------------


def tool_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name in ("HF_TOKEN", "PYTHONDONTWRITEBYTECODE"):  # byte-code caching on, as for any installed tool
        env.pop(name, None)
    return env


def warm_up() -> None:
    """Compile every module the Python tools import, so no timed run pays for it (pip does this at install)."""
    code = "import hfget.cli, hfget.download, hfget.engine.transfer, huggingface_hub.cli.hf, huggingface_hub"
    subprocess.run([sys.executable, "-c", code], env=tool_env(), check=False, capture_output=True)


def command(tool: str, repo: BenchRepo, url: str, out: Path) -> tuple[list[str], dict[str, str]]:
    env = {**tool_env(), "HF_HUB_CACHE": str(out), "HF_ENDPOINT": url}
    if tool == "hfget":
        # Only the local server: no other source may be probed (no traffic leaves this machine).
        # (--source mirror; and should anything else be asked, it would be a closed port on this machine.)
        nowhere = "http://127.0.0.1:9"
        env.update(HFGET_SOURCES="mirror", HFGET_KNOWN_MIRRORS="", HFGET_OFFICIAL_ENDPOINT=nowhere,
                   MODELSCOPE_ENDPOINT=nowhere)
        return [str(VENV_BIN / "hfget"), "download", repo.repo_id, "--endpoint", url, "--cache-dir", str(out)], env
    if tool == "hf":
        return [str(VENV_BIN / "hf"), "download", repo.repo_id, "--cache-dir", str(out)], env
    urls = [f"{url}/{repo.repo_id}/resolve/main/{f.path}" for f in repo.files]
    if tool == "aria2c":  # exactly hfd.sh's invocation, with -x 16 -s 16 -j 5
        listing = out.parent / f"{out.name}.aria2c-input.txt"
        listing.write_text("".join(f"{u}\n  dir={out}/{os.path.dirname(f.path)}\n  out={os.path.basename(f.path)}\n"
                                   for u, f in zip(urls, repo.files)))
        return ["aria2c", "--console-log-level=error", "--file-allocation=none", "-x", "16", "-j", "5", "-s", "16",
                "-k", "1M", "-c", "-i", str(listing)], env
    if tool == "curl":  # one process, one connection after another, no hashing: the floor to compare with
        args = ["curl", "-sSfL", "--create-dirs"]
        for u, f in zip(urls, repo.files):
            args += ["-o", str(out / f.path), u]
        return args, env
    raise ValueError(tool)


def output_files(tool: str, repo: BenchRepo, out: Path) -> dict[str, Path]:
    if tool in ("hfget", "hf"):
        base = out / f"models--{repo.repo_id.replace('/', '--')}" / "snapshots" / repo.commit
    else:
        base = out
    return {f.path: base / f.path for f in repo.files}


def verify(tool: str, repo: BenchRepo, out: Path) -> tuple[bool, float]:
    """Whether every file is there with the right sha256, and how long hashing them all took."""
    paths = output_files(tool, repo, out)
    started = time.perf_counter()
    for f in repo.files:
        digest = hashlib.sha256()
        try:
            with open(paths[f.path], "rb") as fh:
                while block := fh.read(4 << 20):
                    digest.update(block)
        except OSError as exc:
            print(f"    {tool}: {f.path}: {exc}")
            return False, 0.0
        if digest.hexdigest() != f.sha256:
            print(f"    {tool}: {f.path}: sha256 mismatch")
            return False, 0.0
    return True, time.perf_counter() - started


def measure(tool: str, repo: BenchRepo, url: str, scratch: Path, log: Path, nginx: Nginx) -> Run:
    out = scratch / tool
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args, env = command(tool, repo, url, out)
    subprocess.run(["sync"], check=False)
    log_offset = nginx.log_size()
    with open(log, "ab") as log_fh:
        log_fh.write(f"\n$ {' '.join(args)}\n".encode())
        log_fh.flush()
        started = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=log_fh, stderr=log_fh, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    ok, hashing = verify(tool, repo, out) if process.returncode == 0 else (False, 0.0)
    if process.returncode != 0:
        print(f"    {tool} exited {process.returncode} (see {log})")
    shutil.rmtree(out, ignore_errors=True)
    return Run(tool, seconds, usage.ru_maxrss / 1024, ok, hashing, nginx.connections_since(log_offset))


# --- reporting ----------------------------------------------------------------------------------------------------


# The targets the issues set: (what, scenario, tool, the tool it is compared with, limit); time against time, so
# lower is better. Issue #14's many / distant, and its "no regression" limits on the 1 GiB scenarios.
RATIO_TARGETS = [
    ("throttled: hfget / hf download", "throttled", "hfget", "hf", 0.25),
    ("throttled: hfget / aria2c", "throttled", "hfget", "aria2c", 0.9),
    ("small files: hfget / hf download", "small", "hfget", "hf", 0.5),
    ("many (3000 small + 16 MiB): hfget / sequential curl", "many", "hfget", "curl", 1.0),
    ("many: hfget / aria2c", "many", "hfget", "aria2c", 0.6),
    ("distant (1000 small, 100 ms RTT): hfget / hf download", "distant", "hfget", "hf", 0.3),
    ("throttled: hfget / aria2c (issue #14: no regression)", "throttled", "hfget", "aria2c", 0.7),
    ("unthrottled: hfget / curl (issue #14: no regression)", "unthrottled", "hfget", "curl", 1.1),
]


def ratio_lines(results: dict[str, Result]) -> list[str]:
    lines = []

    def line(text: str, value: float, limit: float, lower_is_better: bool = True) -> None:
        met = value <= limit if lower_is_better else value >= limit
        lines.append(f"{text}: {value:.3f} (must be {'≤' if lower_is_better else '≥'} {limit}) {'MET' if met else 'NOT MET'}")

    def has(name: str, *tools: str) -> bool:
        return name in results and all(t in results[name].runs for t in tools)

    for text, scenario, tool, other, limit in RATIO_TARGETS:
        if has(scenario, tool, other):
            line(text, results[scenario].median(tool) / results[scenario].median(other), limit)
    if has("unthrottled", "hfget", "curl"):
        r = results["unthrottled"]
        line("unthrottled: hfget throughput / curl throughput", r.median("curl") / r.median("hfget"), 0.8, False)
        curl_hashed = statistics.median(run.seconds + run.hash_seconds for run in r.runs["curl"])
        line("unthrottled: hfget throughput / (curl, then sha256 of its files)", curl_hashed / r.median("hfget"), 0.8,
             False)
    if has("huge", "hfget"):
        line("huge (2 GiB file): hfget peak RSS MB", results["huge"].peak("hfget"), 200)
    if has("many", "hfget"):
        line("many: TCP connections hfget opened to the hub (most of any run)",
             max(run.connections for run in results["many"].runs["hfget"]), 64)
    return lines


def table(results: dict[str, Result], repos: dict[str, BenchRepo]) -> str:
    rows = ["| scenario | tool | runs (s) | median (s) | MB/s | peak RSS (MB) | hub connections | files verified |",
            "|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        total = repos[SCENARIOS[name][0]].total
        for tool, runs in result.runs.items():
            median = result.median(tool)
            rows.append(
                f"| {name} | {tool} | {', '.join(f'{r.seconds:.2f}' for r in runs)} | {median:.2f} | "
                f"{total / median / 1e6:.0f} | {result.peak(tool):.0f} | "
                f"{', '.join(str(r.connections) for r in runs)} | "
                f"{'all ok' if all(r.verified for r in runs) else 'FAILED'} |"
            )
    return "\n".join(rows)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    aria = subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    import huggingface_hub

    return (f"{os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB, "
            f"Python {platform.python_version()}, {nginx}, {aria}, huggingface_hub {huggingface_hub.__version__}")


def start_delay_link(nginx: Nginx, delay: float) -> subprocess.Popen:
    """delaylink.py on DELAY_PORT, in front of the unthrottled hub (the CDN stays near: only the hub is far)."""
    target = nginx.url(False).removeprefix("http://")
    link = subprocess.Popen([sys.executable, str(HERE / "delaylink.py"), "--listen", str(DELAY_PORT), "--to", target,
                             "--delay", str(delay)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import socket

            socket.create_connection(("127.0.0.1", DELAY_PORT), timeout=1).close()
            return link
        except OSError:
            time.sleep(0.1)
    link.kill()
    raise RuntimeError("delaylink.py did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default: all")
    parser.add_argument("--tool", action="append", help="only these tools (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=8_000_000, help="per-connection limit when throttled, bytes/s")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hfget-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added to each direction (`distant`)")
    args = parser.parse_args(argv)

    ensure_tools()
    scenarios = args.scenario or list(SCENARIOS)
    repos = {name: build_repo(args.workdir, name) for name in {SCENARIOS[s][0] for s in scenarios}}
    nginx = Nginx(args.workdir, list(repos.values()), args.rate).start()
    link = start_delay_link(nginx, args.delay) if "distant" in scenarios else None
    log = args.workdir / "tools.log"
    warm_up()
    print(f"machine: {machine()}\nload before: {os.getloadavg()}\nlogs: {log}", flush=True)
    results: dict[str, Result] = {}
    try:
        for name in scenarios:
            repo_name, throttled, tools = SCENARIOS[name]
            repo = repos[repo_name]
            tools = [t for t in tools if not args.tool or t in args.tool]
            result = results[name] = Result(name)
            print(f"\n{name}: {repo.repo_id}, {len(repo.files)} files, {repo.total / 1e6:.0f} MB", flush=True)
            for i in range(args.runs):
                for tool in tools:  # interleaved, so a noisy moment hits every tool alike
                    url = f"http://127.0.0.1:{DELAY_PORT}" if name == "distant" else nginx.url(throttled)
                    run = measure(tool, repo, url, args.workdir / "out", log, nginx)
                    result.runs.setdefault(tool, []).append(run)
                    print(f"  run {i + 1} {tool:7} {run.seconds:7.2f} s  peak {run.peak_rss_mb:6.0f} MB  "
                          f"{run.connections:5} hub connections  "
                          f"{'sha256 ok' if run.verified else 'VERIFY FAILED'}  load {os.getloadavg()[0]:.2f}",
                          flush=True)
    finally:
        if link is not None:
            link.terminate()
            link.wait()
        nginx.stop()
    print(f"\nload after: {os.getloadavg()}\n")
    print(table(results, repos))
    print()
    print("\n".join(ratio_lines(results)))
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": machine(), "rate": args.rate,
             "results": {n: {t: [r.__dict__ for r in runs] for t, runs in res.runs.items()} for n, res in results.items()}},
            indent=1))
    return 0 if all(r.verified for res in results.values() for runs in res.runs.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
