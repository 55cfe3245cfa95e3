"""Bad input and failing servers: a clear error with the fix, the right exit code, no traceback, cache untouched."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import MODEL, MODEL_DIR, closed_port, expected_files, leftovers, official_offline_load, tree_state


@pytest.fixture
def warm_cache(sim, cache, cli):
    """A cache that already holds a download, so we can check it is left exactly as it was."""
    assert cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache, "-q").exit_code == 0
    return cache


def _assert_clean_failure(result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert "Error:" in result.stderr and "Fix:" in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("repo_id", "needle"),
    [
        ("foo//bar", "not a valid repo id"),
        ("a/b/c", "not a valid repo id"),
        ("bad--name/x", "not a valid repo id"),
        (".hidden/name", "not a valid repo id"),
        ("https://huggingface.co/", "does not name a repo"),
        ("ftp://huggingface.co/Qwen/Qwen3-4B", "not an http(s) URL"),
        ("Qwen/Qwen3-4B/extra", "not a valid repo id"),
    ],
)
def test_malformed_repo_id(sim, warm_cache, cli, repo_id, needle):
    before = tree_state(warm_cache)
    sim.clear_log()
    result = cli("download", repo_id, "--endpoint", sim.url, "--cache-dir", warm_cache)
    _assert_clean_failure(result, 2, needle)
    assert sim.requests_for() == []  # rejected before any network traffic
    assert tree_state(warm_cache) == before


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["hfget-demo/no-such-model"], ["does not exist", "or it is private", "HF_TOKEN"]),
        ([MODEL, "-r", "no-such-branch"], ["has no revision 'no-such-branch'", "--revision"]),
        ([MODEL, "config.jsn"], ["has no file 'config.jsn'", "Did you mean config.json", "--dry-run"]),
        ([MODEL, "--include", "*.gguf"], ["No file of hfget-demo/tiny-model matches"]),
        (["hfget-demo/gated-model"], ["is gated", "accept", "HF_TOKEN"]),
    ],
)
def test_unknown_repo_revision_file_and_gated(sim, warm_cache, cli, args, needles):
    before = tree_state(warm_cache)
    result = cli("download", *args, "--endpoint", sim.url, "--cache-dir", warm_cache)
    exit_code = 2 if "--include" in args else 1
    _assert_clean_failure(result, exit_code, *needles)
    assert tree_state(warm_cache) == before


@pytest.mark.parametrize(
    ("endpoint", "needles"),
    [
        ("http://hub.invalid", ["does not resolve", "--endpoint https://hf-mirror.com", "--proxy"]),
        ("http://127.0.0.1:{closed}", ["refused", "nothing is listening"]),
        ("ftp://example", ["not an http(s) URL"]),
    ],
)
def test_unreachable_or_bad_endpoint(warm_cache, cli, endpoint, needles):
    before = tree_state(warm_cache)
    result = cli("download", MODEL, "--endpoint", endpoint.format(closed=closed_port()), "--cache-dir", warm_cache)
    _assert_clean_failure(result, 2 if endpoint.startswith("ftp") else 1, *needles)
    assert tree_state(warm_cache) == before


def test_cache_dir_under_a_file_is_refused_before_any_traffic(sim, cli, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", blocker / "cache")
    _assert_clean_failure(result, 1, "is a file, not a directory", "--cache-dir")
    assert sim.requests_for() == []
    assert blocker.read_text() == "x"


def _read_only_dir(tmp_path):
    """A directory writes really fail in: a read-only tmpfs when we are root (root ignores modes), else chmod."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.name != "posix":
        pytest.skip("Windows ignores a folder's read-only mode")
    if os.geteuid() != 0:
        (ro / "cache").mkdir()
        ro.chmod(0o555)
        (ro / "cache").chmod(0o555)
        return ro / "cache", lambda: (ro.chmod(0o755), (ro / "cache").chmod(0o755))
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(ro)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip("cannot make a read-only directory here: root, and no mount permission")
    (ro / "cache").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    return ro / "cache", lambda: subprocess.run(["umount", str(ro)], check=True)


def test_read_only_cache_dir(sim, cli, tmp_path):
    cache, cleanup = _read_only_dir(tmp_path)
    try:
        result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
        _assert_clean_failure(result, 1, "not writable", "--cache-dir")
        assert list(cache.iterdir()) == []
    finally:
        cleanup()


def test_corrupt_bytes_never_enter_the_cache(sim, warm_cache, cli):
    sim.add_fault("corrupt", "model.safetensors", offset=12345)  # every time
    main_weights = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]["model.safetensors"]
    before_ref = (warm_cache / MODEL_DIR / "refs" / "main").exists()
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", warm_cache)
    _assert_clean_failure(result, 1, "does not match its expected sha256", "model.safetensors")
    repo_dir = warm_cache / MODEL_DIR
    assert not (repo_dir / "blobs" / main_weights.etag).exists()
    assert not leftovers(repo_dir)
    assert not (repo_dir / "snapshots" / sim.repo(MODEL).refs["main"] / "model.safetensors").exists()
    assert (repo_dir / "refs" / "main").exists() == before_ref  # refs only move when the snapshot is complete
    # The earlier revision still loads offline, untouched.
    assert official_offline_load(warm_cache, MODEL, "v1.0")["files"] == expected_files(sim, MODEL, "v1.0")


def test_a_corrupt_transfer_is_fetched_again_and_verified(sim, cache, cli):
    sim.add_fault("corrupt", "model.safetensors", offset=0, times=1)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "hash mismatch" in result.stderr
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)


def test_bad_option_values_are_usage_errors(sim, cli, cache):
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--max-workers", "0")
    _assert_clean_failure(result, 2, "max workers")
    result = cli("download", MODEL, "--repo-type", "bucket")
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--env-file", "/nonexistent/.env")
    _assert_clean_failure(result, 2, "does not exist")
    result = cli("download", MODEL, "-r", "../../etc", "--endpoint", sim.url, "--cache-dir", cache)
    _assert_clean_failure(result, 2, "not a valid revision")
    result = cli("download", "--endpoint", sim.url, "--cache-dir", cache)
    _assert_clean_failure(result, 2, "DEFAULT_MODEL")
    assert not cache.exists()


def test_json_errors_and_debug_traceback(cli):
    result = cli("download", "foo//bar", "--json")
    assert result.exit_code == 2
    import json

    assert json.loads(result.stdout) == {
        "ok": False,
        "error": {
            "kind": "usage",
            "message": "'foo//bar' is not a valid repo id.",
            "hint": "Use the form owner/name (letters, digits, '-', '_', '.'; no '--' or '..'), e.g. Qwen/Qwen3-4B.",
            "exit_code": 2,
        },
    }
    debug = cli("download", "foo//bar", env={"HFGET_DEBUG": "1"})
    assert "Traceback" in debug.stderr and debug.exit_code == 2
