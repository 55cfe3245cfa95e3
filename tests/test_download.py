"""`hfget download` end to end against the simulator, checked by the official client reading the cache offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from support import DATASET, MODEL, MODEL_DIR, expected_files, leftovers, official_offline_load


def test_download_lands_in_the_hf_cache_and_loads_offline_with_the_official_client(sim, cache, cli):
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "✓ hfget-demo/tiny-model @ main" in result.stdout

    loaded = official_offline_load(cache, MODEL)
    assert loaded["files"] == expected_files(sim, MODEL)

    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    assert not info.warnings
    (repo,) = [r for r in info.repos if r.repo_id == MODEL]
    files = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]].values()
    assert repo.size_on_disk == sum(f.size for f in files)
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"})
    assert revision.commit_hash == sim.repo(MODEL).refs["main"]
    # Layout details huggingface_hub relies on: relative symlinks into blobs named by etag, no leftovers.
    snapshot = cache / MODEL_DIR / "snapshots" / revision.commit_hash
    link = snapshot / "model.safetensors"
    assert link.is_symlink() and os.readlink(link).startswith("../../blobs/")
    assert not leftovers(cache)
    assert (cache / MODEL_DIR / "trees" / f"{revision.commit_hash}.json").is_file()
    # hfget's record of which source served the commit (for `cache list`).
    from hfget.repo import RepoRef
    from hfget.store.hub_cache import HubCache

    origin = HubCache(cache).read_origins(RepoRef(MODEL))[revision.commit_hash]
    assert (origin["source"], origin["endpoint"], origin["revision"]) == ("mirror", sim.url, "main")


def test_second_download_moves_zero_bytes_and_a_new_revision_reuses_blobs(sim, cache, cli):
    assert cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache).exit_code == 0
    v1_bytes = sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*")
    assert v1_bytes == sum(f.size for f in sim.repo(MODEL).commits[sim.repo(MODEL).refs["v1.0"]].values())

    sim.clear_log()
    again = cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert again.exit_code == 0
    summary = json.loads(again.stdout)
    assert summary["bytes_downloaded"] == 0
    assert {f["status"] for f in summary["files"]} == {"cached"}
    assert sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*") == 0

    # main differs from v1.0 only by its weights file: only those bytes move.
    sim.clear_log()
    new = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
    summary = json.loads(new.stdout)
    changed = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
    assert summary["bytes_downloaded"] == changed.size
    assert sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*") == changed.size
    assert [f["path"] for f in summary["files"] if f["status"] == "downloaded"] == ["model.safetensors"]
    # Both revisions load offline, each with its own weights.
    assert official_offline_load(cache, MODEL, "v1.0")["files"] == expected_files(sim, MODEL, "v1.0")
    assert official_offline_load(cache, MODEL, "main")["files"] == expected_files(sim, MODEL, "main")


def test_dataset_with_include_exclude_and_explicit_files(sim, cache, cli):
    result = cli(
        "download", DATASET, "--repo-type", "dataset", "--include", "data/train/*",
        "--include", "README.md", "--exclude", "*00001*", "--endpoint", sim.url, "--cache-dir", cache, "--json",
    )
    assert result.exit_code == 0, result.output
    got = sorted(f["path"] for f in json.loads(result.stdout)["files"])
    assert got == ["README.md", "data/train/part-00000.parquet"]

    result = cli("download", MODEL, "config.json", "onnx/model.onnx",
                 "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert sorted(f["path"] for f in json.loads(result.stdout)["files"]) == ["config.json", "onnx/model.onnx"]
    snapshot = cache / MODEL_DIR / "snapshots" / sim.repo(MODEL).refs["main"]
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) == [
        "config.json", "onnx/model.onnx",
    ]


def test_dry_run_lists_files_and_writes_nothing(sim, cache, cli, tmp_path):
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "model.safetensors" in result.stdout and "dry run, nothing written" in result.stdout
    assert "would be downloaded" in result.stdout
    assert not cache.exists()
    assert sim.body_bytes_served("/cdn/*") == 0

    as_json = json.loads(cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--dry-run", "--json").stdout)
    assert as_json["dry_run"] is True
    assert {f["status"] for f in as_json["files"]} == {"planned"}
    assert not cache.exists()


def test_local_dir_is_a_plain_folder_and_reruns_move_nothing(sim, cli, tmp_path):
    target = tmp_path / "plain"
    assert cli("download", MODEL, "--endpoint", sim.url, "--local-dir", target).exit_code == 0
    for path, sha in expected_files(sim, MODEL).items():
        assert hashlib.sha256((target / path).read_bytes()).hexdigest() == sha
    sim.clear_log()
    summary = json.loads(cli("download", MODEL, "--endpoint", sim.url, "--local-dir", target, "--json").stdout)
    assert summary["bytes_downloaded"] == 0
    # A file put there by another tool (no hfget record) is kept when its hash is right, replaced when not.
    (target / ".cache" / "huggingface" / "download" / "config.json.metadata").unlink()
    weights = target / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)
    summary = json.loads(cli("download", MODEL, "--endpoint", sim.url, "--local-dir", target, "--json").stdout)
    assert [f["path"] for f in summary["files"] if f["status"] == "downloaded"] == ["model.safetensors"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == expected_files(sim, MODEL)["model.safetensors"]


def test_default_model_and_endpoint_come_from_dotenv(sim, cache, cli, isolated):
    (isolated / "work" / ".env").write_text(f"DEFAULT_MODEL={MODEL}\nHF_ENDPOINT={sim.url}\nHF_HUB_CACHE={cache}\n")
    result = cli("download", "--include", "config.json", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["repo_id"] == MODEL and summary["endpoint"] == sim.url
    assert "HF_ENDPOINT from .env" in summary["attempts"][0]["why"]
    assert (cache / MODEL_DIR).is_dir()


def test_plain_progress_when_not_a_terminal(sim, cache, cli):
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert "Downloading 6 files" in result.stderr
    assert "done model.safetensors" in result.stderr
    assert "\x1b[" not in result.stderr  # no cursor movement or colour in logs
    quiet = cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_rich_progress_renders_overall_and_file_rows():
    import io

    from rich.console import Console

    from hfget.engine.transfer import FileFinished, FileProgress, FileStarted, TransferFinished, TransferStarted
    from hfget.ui.progress import RichProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with RichProgress(console) as progress:
        progress(TransferStarted(files=2, total_bytes=2_000_000, source="mirror http://m", resumed_bytes=1_000_000))
        progress(FileStarted("big.bin", 2_000_000))
        progress(FileStarted("small.txt", 1_000_000, resumed_from=1_000_000))
        progress(FileProgress("big.bin", 1_000_000))
        progress.progress.refresh()
        mid = out.getvalue()
        progress(FileProgress("big.bin", 1_000_000))
        progress(FileFinished("big.bin", 2_000_000, 2_000_000))
        progress(TransferFinished(2_000_000, 1.0))
    assert "2 files" in mid and "mirror http://m" in mid and "big.bin" in mid
    assert "2.0/3.0 MB" in mid  # 1 MB resumed + 1 MB received
    assert "resuming small.txt" not in mid  # a complete file is not "resumed"
    assert "3.0/3.0 MB" in out.getvalue()


def test_module_entry_point_and_fast_help():
    proc = subprocess.run([sys.executable, "-m", "hfget", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "download" in proc.stdout
    # --help must not import the heavy machinery.
    code = "import sys; from hfget.cli import app; import hfget.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'huggingface_hub', 'modelscope')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_a_plain_download_loads_neither_requests_nor_pydantic(sim, cache):
    """Start-up is part of every small download: requests (~0.1 s) is only for proxies and token checks, and typer
    releases that import pydantic (~0.15 s) are excluded in pyproject.toml. Seen in a real process's import log."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hfget", "download", MODEL, "--endpoint", sim.url,
         "--cache-dir", str(cache), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "hfget.engine.transfer" in imported  # the log is real: the engine did run
    assert not {m for m in imported if m.split(".")[0] in ("requests", "pydantic", "modelscope")}
