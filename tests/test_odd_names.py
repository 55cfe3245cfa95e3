"""Repo paths that are legal on the hub and awkward everywhere else (Rich markup, spaces, literal %xx, URL
delimiters, Chinese) download right, with the live progress display on a real terminal (a pty)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from hfget.testing.simrepo import ODD_NAMES_REPO, odd_names_repo
from support import expected_files, official_offline_load

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture
def odd_sim(sim):
    if ("model", ODD_NAMES_REPO) not in sim.repos:
        sim.add_repo(odd_names_repo())
    return sim


def _run_on_a_terminal(args: list[str], timeout: float = 60) -> tuple[int, str]:
    """`python -m hfget ARGS` with stdin, stdout and stderr on a pseudo-terminal, as a person runs it."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "hfget", *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_markup_spaced_escaped_and_chinese_paths_download_right_on_a_terminal(odd_sim, cache):
    sim = odd_sim
    # Keep the weights in flight long enough for the progress rows to be drawn, and make the markup-like names go
    # through a retry: both are where a name meets Rich (a row's description, a printed "↻ name: why" line).
    sim.add_fault("throttle", match="data/[[]train]x.parquet", rate=600_000)
    sim.add_fault("reset", match="[[]/]odd.txt", where="resolve", times=1, after=3)
    sim.add_fault("reset", match="[[]bold red]not markup[[]/bold red].md", where="resolve", times=1, after=3)
    code, screen = _run_on_a_terminal(["download", ODD_NAMES_REPO, "--endpoint", sim.url, "--cache-dir", str(cache)])
    assert code == 0, screen
    assert "MarkupError" not in screen and "Internal error" not in screen and "Traceback" not in screen
    # The names appear as they are, not read as markup: the retry lines and a progress row.
    assert "↻ [/]odd.txt:" in screen, screen
    assert "↻ [bold red]not markup[/bold red].md:" in screen, screen
    assert "data/[train]x.parquet" in screen, screen
    assert "11 files" in screen and f"✓ {ODD_NAMES_REPO} @ main" in screen
    # Every file, byte for byte, where the official client looks for it.
    assert official_offline_load(cache, ODD_NAMES_REPO)["files"] == expected_files(sim, ODD_NAMES_REPO)


@pytest.mark.parametrize("path", ["data/[train]x.parquet", "[/]odd.txt", "with space/file name.txt",
                                  "percent%20literal%2F.txt", "hash # and ? q=1 & a+b.txt", "中文目录/模型 配置.json",
                                  "权重/模型 权重.safetensors", "emoji 🤗.txt"])
def test_each_odd_path_can_be_asked_for_by_name(odd_sim, cache, cli, path):
    result = cli("download", ODD_NAMES_REPO, path, "--endpoint", odd_sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [f["path"] for f in summary["files"]] == [path]
    loaded = official_offline_load(cache, ODD_NAMES_REPO, files=[path])["files"]
    assert loaded == {path: expected_files(odd_sim, ODD_NAMES_REPO)[path]}


def test_plain_progress_and_dry_run_show_the_names_as_they_are(odd_sim, cache, cli):
    dry = cli("download", ODD_NAMES_REPO, "--endpoint", odd_sim.url, "--cache-dir", cache, "--dry-run")
    assert dry.exit_code == 0, dry.output
    for path in ("[/]odd.txt", "[bold red]not markup[/bold red].md", "data/[train]x.parquet", "中文目录/模型 配置.json"):
        assert path in dry.stdout
    one = cli("download", ODD_NAMES_REPO, "[/]odd.txt", "--endpoint", odd_sim.url, "--cache-dir", cache)
    assert one.exit_code == 0, one.output
    assert "Downloading 1 file (" in one.stderr and "done [/]odd.txt" in one.stderr
    assert "1 file, " in one.stdout and "1 files" not in one.output
