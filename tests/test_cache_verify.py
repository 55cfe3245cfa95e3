"""`hfget cache verify [--repair]`: every cached file re-hashed against what it must be, in the Hugging Face cache
(hfget's and the official client's) and the ModelScope cache (the official `modelscope` client's); the bad ones
named, with exit 1; `--repair` re-fetches exactly those, proven by the simulator's request log, and nothing else
in the cache changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hfget.testing.hubsim import modelscope_commit
from support import (
    DATASET,
    MODEL,
    MODEL_DIR,
    closed_port,
    expected_files,
    hfget_download,
    modelscope_download,
    official_download,
    official_offline_load,
    tree_state,
)


def _flip_one_byte(path: Path, offset: int = 1000) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def _snapshot(cache: Path, sim, revision: str = "main") -> Path:
    return cache / MODEL_DIR / "snapshots" / sim.repo(MODEL).refs[revision]


def _file_bytes_served(sim) -> dict[str, int]:
    """Body bytes the simulator served per repo file (resolve, its redirect targets and the CDN)."""
    served: dict[str, int] = {}
    for record in sim.requests_for():
        if record.method == "GET" and record.body_bytes and not record.path.startswith(("/api/models/", "/api/v1/models/hfget-demo/tiny-model/repo/files")):
            served[record.path] = served.get(record.path, 0) + record.body_bytes
    return served


def test_a_clean_cache_verifies_with_exit_0(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL)
    official_download(sim, cache, DATASET, repo_type="dataset")  # written by huggingface_hub
    result = cli("cache", "verify", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "Every file checked matches its hash" in result.stdout
    data = json.loads(cli("cache", "verify", "--cache-dir", cache, "--json").stdout)
    assert data["ok"] is True and data["bad"] == []
    checked = {(s["repo_id"], f["path"]): f["algorithm"] for s in data["snapshots"] for f in s["files"]}
    assert checked[(MODEL, "model.safetensors")] == "sha256" and checked[(MODEL, "config.json")] == "git-sha1"
    assert (DATASET, "data/train/part-00000.parquet") in checked
    assert all(f["status"] == "ok" for s in data["snapshots"] for f in s["files"])
    assert {s["reference"] for s in data["snapshots"]} == {"recorded tree"}  # both clients record trees/


def test_a_changed_byte_and_a_missing_blob_are_named_and_repair_moves_only_their_bytes(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL, "-r", "v1.0")
    hfget_download(cli, sim, cache, MODEL)  # two revisions sharing all but the weights
    snap = _snapshot(cache, sim)
    weights, config = snap / "model.safetensors", snap / "config.json"
    _flip_one_byte(weights.resolve())
    config.resolve().unlink()  # shared by both revisions: both miss it
    before = tree_state(cache)

    result = cli("cache", "verify", MODEL, "--cache-dir", cache)
    assert result.exit_code == 1
    assert "corrupt model.safetensors" in result.stdout and "missing config.json" in result.stdout
    assert f"hfget cache verify {MODEL} --repair" in result.stdout
    data = json.loads(cli("cache", "verify", "--cache-dir", cache, "--json").stdout)
    bad = sorted((b["revision"][:10], b["path"], b["status"]) for b in data["bad"])
    v1, main = sim.repo(MODEL).refs["v1.0"][:10], sim.repo(MODEL).refs["main"][:10]
    assert bad == sorted([(main, "model.safetensors", "corrupt"), (main, "config.json", "missing"),
                          (v1, "config.json", "missing")])
    assert tree_state(cache) == before  # verifying changes nothing

    sim.clear_log()
    result = cli("cache", "verify", "--repair", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "Repaired" in result.stdout
    files = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]
    served = _file_bytes_served(sim)
    # Exactly the bytes of the two bad files moved (the missing blob once, though two revisions lacked it).
    assert sum(served.values()) == files["model.safetensors"].size + files["config.json"].size, served
    after = tree_state(cache)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    blob_names = {f"{MODEL_DIR}/blobs/{files['model.safetensors'].etag}", f"{MODEL_DIR}/blobs/{files['config.json'].etag}"}
    assert {c for c in changed if "/blobs/" in c} == blob_names  # no other blob touched
    assert not {c for c in changed if "/refs/" in c or "/snapshots/" in c}
    for revision in ("main", "v1.0"):
        assert official_offline_load(cache, MODEL, revision)["files"] == expected_files(sim, MODEL, revision)
    assert cli("cache", "verify", "--cache-dir", cache).exit_code == 0


def test_without_a_recorded_listing_the_blob_names_or_the_hub_vouch(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL)
    shutil.rmtree(cache / MODEL_DIR / "trees")
    snap = _snapshot(cache, sim)
    _flip_one_byte((snap / "tokenizer" / "tokenizer.json").resolve())
    result = cli("cache", "verify", "--offline", "--cache-dir", cache, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["snapshots"][0]["reference"] == "blob names"
    assert [b["path"] for b in data["bad"]] == ["tokenizer/tokenizer.json"]
    # A snapshot of copies (no symlinks, as on Windows without them) names no blob: the hub's listing vouches.
    for entry in [p for p in snap.rglob("*") if p.is_symlink()]:
        target = entry.resolve()
        entry.unlink()
        shutil.copyfile(target, entry)
    offline = json.loads(cli("cache", "verify", "--offline", "--cache-dir", cache, "--json").stdout)
    assert {f["status"] for f in offline["snapshots"][0]["files"]} == {"unverified"} and offline["ok"]
    online = cli("cache", "verify", "--endpoint", sim.url, "--cache-dir", cache, "--json")
    data = json.loads(online.stdout)
    assert data["snapshots"][0]["reference"] == f"hub listing ({sim.url})"
    assert [b["path"] for b in data["bad"]] == ["tokenizer/tokenizer.json"]


def test_the_modelscope_cache_is_checked_against_modelscope_and_repaired_from_it(sim, tmp_path, cli, monkeypatch):
    ms_cache = tmp_path / "ms-cache"
    modelscope_download(sim, ms_cache, MODEL)
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    folder = next((ms_cache / "models").glob("*/snapshots/*"))
    _flip_one_byte(folder / "onnx" / "model.onnx")
    args = ("--only", "modelscope", "--modelscope-cache", ms_cache)
    result = cli("cache", "verify", *args, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert data["snapshots"][0]["reference"] == f"ModelScope listing ({sim.url})"
    assert [(b["path"], b["status"]) for b in data["bad"]] == [("onnx/model.onnx", "corrupt")]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != "model.onnx"}
    sim.clear_log()
    result = cli("cache", "verify", *args, "--repair")
    assert result.exit_code == 0, result.output
    onnx = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["onnx/model.onnx"]
    assert sum(_file_bytes_served(sim).values()) == onnx.size
    assert (folder / "onnx" / "model.onnx").read_bytes() == onnx.content.all_bytes()
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert not [p for p in folder.parent.parent.iterdir() if p.name.startswith(".hfget-repair")]
    assert cli("cache", "verify", *args).exit_code == 0


def test_a_snapshot_modelscope_served_is_repaired_from_modelscope(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    assert cli("download", MODEL, "--source", "modelscope", "--cache-dir", cache, "-q").exit_code == 0
    commit = modelscope_commit(sim.repo(MODEL).refs["main"])
    weights = cache / MODEL_DIR / "snapshots" / commit / "model.safetensors"
    _flip_one_byte(weights.resolve())
    sim.clear_log()
    result = cli("cache", "verify", "--repair", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "from modelscope" in result.stdout
    assert {r.path for r in sim.requests_for() if r.path.startswith("/api/models/")} == set()  # the hub: not asked
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_repair_with_no_source_reachable_changes_nothing(sim, cache, cli, monkeypatch):
    hfget_download(cli, sim, cache, MODEL)
    _flip_one_byte((_snapshot(cache, sim) / "model.safetensors").resolve())
    before = tree_state(cache)
    result = cli("cache", "verify", "--repair", "--endpoint", f"http://127.0.0.1:{closed_port()}",
                 "--cache-dir", cache)
    assert result.exit_code == 1
    assert "still bad (model.safetensors)" in result.stdout and "Error:" in result.stdout
    assert tree_state(cache) == before


def test_a_name_that_matches_nothing_is_a_usage_error(sim, cache, cli):
    hfget_download(cli, sim, cache, MODEL)
    result = cli("cache", "verify", "hfget-demo/tiny-modle", "--cache-dir", cache)
    assert result.exit_code == 2 and "Did you mean hfget-demo/tiny-model" in result.output
    result = cli("cache", "verify", MODEL, "--revision", "v9", "--cache-dir", cache)
    assert result.exit_code == 2 and "v9" in result.output


def test_hashing_runs_in_parallel_and_reports_progress(sim, cache, cli):
    from hfget import config
    from hfget.cache import scan_all
    from hfget.cache.roots import resolve_roots
    from hfget.cache.verify import Hashed, HashStarted, verify

    hfget_download(cli, sim, cache, MODEL)
    events = []
    repos = scan_all(resolve_roots(config.resolve({"HF_HUB_CACHE": str(cache)}), "huggingface")).repos
    report = verify(repos, workers=3, on_event=events.append)
    assert report.ok and report.workers == 3
    started = [e for e in events if isinstance(e, HashStarted)]
    assert started == [HashStarted(6, report.bytes_hashed)]
    assert sum(e.delta for e in events if isinstance(e, Hashed)) == report.bytes_hashed
    assert report.bytes_hashed == sum(f.size for f in sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]].values())


@pytest.mark.parametrize("broken", ["link-to-another-blob"])
def test_an_entry_linking_the_wrong_blob_is_relinked_and_that_blob_kept(sim, cache, cli, broken):
    hfget_download(cli, sim, cache, MODEL)
    snap = _snapshot(cache, sim)
    readme = snap / "README.md"
    other = os.readlink(snap / "config.json")
    readme.unlink()
    readme.symlink_to(other)  # README.md now shows config.json's bytes
    result = cli("cache", "verify", "--repair", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert (snap / "config.json").read_bytes() == sim.repo(MODEL).commits[snap.name]["config.json"].content.all_bytes()
    assert readme.read_bytes() == sim.repo(MODEL).commits[snap.name]["README.md"].content.all_bytes()
