"""The Python API: `hfget.snapshot_download` / `hfget.hf_hub_download` with huggingface_hub's argument meanings, the
source chain behind them, errors with hints, a cheap `import hfget`, and no process state left behind a call."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import hfget
from hfget import errors
from support import (
    GATED_TOKEN,
    MODEL,
    MODEL_DIR,
    VALID_TOKEN,
    closed_port,
    expected_files,
    official_offline_load,
    tree_state,
)


def _py(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_snapshot_download_from_a_fresh_interpreter_returns_the_snapshot_path(sim, cache):
    done = _py(f"import hfget; print(hfget.snapshot_download({MODEL!r}, endpoint={sim.url!r}))",
               {"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip()
    commit = sim.repo(MODEL).refs["main"]
    assert path == str(cache / MODEL_DIR / "snapshots" / commit)
    # The official client, offline, finds exactly that snapshot with every file right.
    loaded = official_offline_load(cache, MODEL)
    assert loaded["path"] == path and loaded["files"] == expected_files(sim, MODEL)
    assert "Downloading 6 files" in done.stderr  # progress on stderr (plain lines: not a terminal), not stdout


def test_hf_hub_download_returns_one_files_path_and_moves_only_that_file(sim, cache):
    path = hfget.hf_hub_download(MODEL, "vocab.txt", subfolder="tokenizer", endpoint=sim.url, cache_dir=cache,
                                 progress=False)
    commit = sim.repo(MODEL).refs["main"]
    assert path == str(cache / MODEL_DIR / "snapshots" / commit / "tokenizer" / "vocab.txt")
    expected = sim.repo(MODEL).commits[commit]["tokenizer/vocab.txt"]
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == expected.content.sha256
    assert sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*") == expected.size
    assert sorted(p.name for p in (cache / MODEL_DIR / "blobs").iterdir()) == [expected.etag]


def test_patterns_revision_and_local_dir_mean_what_they_mean_in_huggingface_hub(sim, tmp_path):
    folder = hfget.snapshot_download(MODEL, revision="v1.0", local_dir=tmp_path / "m", endpoint=sim.url,
                                     allow_patterns=["*.json", "tokenizer/*"], ignore_patterns="*vocab*",
                                     progress=False)
    assert folder == str(tmp_path / "m")
    got = sorted(p.relative_to(folder).as_posix() for p in (tmp_path / "m").rglob("*")
                 if p.is_file() and ".cache" not in p.parts)
    assert got == ["config.json", "tokenizer/tokenizer.json"]
    v1 = sim.repo(MODEL).commits[sim.repo(MODEL).refs["v1.0"]]
    assert open(tmp_path / "m" / "config.json", "rb").read() == v1["config.json"].content.all_bytes()


def test_a_bad_repo_id_raises_a_usage_error_with_a_hint_and_writes_nothing(sim, cache):
    with pytest.raises(errors.UsageError) as caught:
        hfget.snapshot_download("not a repo!", endpoint=sim.url, cache_dir=cache)
    assert isinstance(caught.value, errors.HfgetError)
    assert "not a valid repo id" in caught.value.message and "owner/name" in caught.value.hint
    assert caught.value.exit_code == 2
    with pytest.raises(errors.RepoNotFoundError) as missing:
        hfget.snapshot_download("hfget-demo/no-such-model", endpoint=sim.url, cache_dir=cache, progress=False)
    assert missing.value.hint
    with pytest.raises(errors.EntryNotFoundError, match="vocab.txt"):
        hfget.hf_hub_download(MODEL, "vocab.text", subfolder="tokenizer", endpoint=sim.url, cache_dir=cache,
                              progress=False)
    assert not sim.requests_for("/cdn/*") and not sim.requests_for("/api/resolve-cache/*")
    assert tree_state(cache) == {}


def test_import_hfget_alone_loads_nothing_else():
    """`import hfget` must stay cheap for applications: none of the API's dependencies load until it is used."""
    done = _py("import sys, json; import hfget; print(json.dumps(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert {m for m in loaded if m.startswith("hfget")} == {"hfget"}
    heavy = {"requests", "urllib3", "huggingface_hub", "rich", "typer", "click", "dotenv", "filelock", "typing",
             "modelscope", "ssl", "socket", "concurrent", "http"}
    assert not loaded & heavy, loaded & heavy
    # ... and the attribute access loads the API on demand
    done = _py("import sys, hfget; hfget.snapshot_download; hfget.errors.HfgetError; "
               "print('hfget.api' in sys.modules, 'hfget.errors' in sys.modules)")
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_settings_resolve_as_for_the_cli_argument_then_environment_then_dotenv(sim, cache, monkeypatch, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    (tmp_path / "work" / ".env").write_text(f"HF_ENDPOINT={dead}\nHFGET_SOURCES=mirror\nHF_HUB_CACHE={cache}\n")
    with pytest.raises(errors.NetworkError):  # the .env mirror is dead and the only source allowed
        hfget.hf_hub_download(MODEL, "config.json", progress=False)
    assert hfget.hf_hub_download(MODEL, "config.json", endpoint=sim.url, progress=False).startswith(str(cache))
    monkeypatch.setenv("HF_ENDPOINT", sim.url)  # the environment beats .env
    assert hfget.hf_hub_download(MODEL, "README.md", progress=False).startswith(str(cache))
    with pytest.raises(errors.NetworkError):  # and the argument beats the environment
        hfget.hf_hub_download(MODEL, "README.md", endpoint=dead, progress=False)


def test_progress_goes_to_stderr_only_when_enabled(sim, cache, capfd):
    hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, progress=False, allow_patterns="*.json")
    assert capfd.readouterr() == ("", "")
    hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, allow_patterns="*.md")
    out, err = capfd.readouterr()
    assert out == "" and "done README.md" in err
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # huggingface_hub's switch turns it off too
    try:
        hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, allow_patterns="tokenizer/*")
    finally:
        del os.environ["HF_HUB_DISABLE_PROGRESS_BARS"]
    assert capfd.readouterr() == ("", "")


def test_local_files_only_and_hf_hub_offline_answer_from_the_cache_without_a_request(sim, cache, monkeypatch):
    with pytest.raises(errors.NotCachedError) as caught:
        hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, local_files_only=True)
    assert "local_files_only" in caught.value.message and caught.value.hint
    online = hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, progress=False,
                                     ignore_patterns="*.onnx")
    sim.clear_log()
    assert hfget.snapshot_download(MODEL, cache_dir=cache, local_files_only=True, ignore_patterns="*.onnx") == online
    with pytest.raises(errors.NotCachedError, match="lacks 1 file"):  # the tree listing knows the onnx file
        hfget.snapshot_download(MODEL, cache_dir=cache, local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what huggingface_hub does with it, hfget's API does too
    path = hfget.hf_hub_download(MODEL, "config.json", endpoint=sim.url, cache_dir=cache)
    assert path == os.path.join(online, "config.json")
    with pytest.raises(errors.NotCachedError, match="HF_HUB_OFFLINE"):
        hfget.hf_hub_download(MODEL, "onnx/model.onnx", endpoint=sim.url, cache_dir=cache)
    assert sim.requests_for() == []


def test_token_false_sends_none_and_errors_never_show_a_token(sim, cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)  # the token may go to the (official) hub
    path = hfget.hf_hub_download("hfget-demo/gated-model", "config.json", cache_dir=cache, progress=False)
    assert open(path).read() == '{"gated": true}\n'
    sim.clear_log()
    with pytest.raises(errors.AuthError) as caught:
        hfget.hf_hub_download("hfget-demo/gated-model", "model.safetensors", cache_dir=cache, token=False,
                              progress=False)
    assert all(r.authorization is None for r in sim.requests_for())
    with pytest.raises(errors.AuthError) as caught:
        hfget.hf_hub_download("hfget-demo/gated-model", "model.safetensors", cache_dir=cache, token=VALID_TOKEN,
                              progress=False)
    text = f"{caught.value.message} {caught.value.hint} {caught.value}"
    assert VALID_TOKEN not in text and GATED_TOKEN not in text


# --- nothing left behind ------------------------------------------------------------------------------------------


def test_no_thread_outlives_a_call(sim, cache):
    before = set(threading.enumerate())
    hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, progress=False)
    with pytest.raises(errors.HfgetError):
        hfget.snapshot_download("hfget-demo/no-such-model", endpoint=sim.url, cache_dir=cache, progress=False)
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()


def test_the_umask_is_read_at_each_call(sim, tmp_path):
    old = os.umask(0o022)
    try:
        first = hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=tmp_path / "a", progress=False,
                                        allow_patterns="*.json")
        os.umask(0o002)  # a group-shared cache: the next call's files must be group-writable
        second = hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=tmp_path / "b", progress=False,
                                         allow_patterns="*.json")
    finally:
        os.umask(old)
    for folder, mode in ((first, 0o644), (second, 0o664)):
        blob = os.path.realpath(os.path.join(folder, "config.json"))
        assert os.stat(blob).st_mode & 0o777 == mode
        tree = os.path.join(folder, "..", "..", "trees", os.path.basename(folder) + ".json")
        assert os.stat(tree).st_mode & 0o777 == mode


def test_a_folder_turned_into_a_symlink_between_calls_is_seen_as_one(sim, tmp_path):
    """Resolved folders are not remembered from one call to the next: a --local-dir subfolder that became a
    symlink out of the folder is refused, and nothing is written where it points."""
    local, outside = tmp_path / "m", tmp_path / "outside"
    outside.mkdir()
    hfget.hf_hub_download(MODEL, "tokenizer/vocab.txt", local_dir=local, endpoint=sim.url, progress=False)
    (local / "tokenizer" / "vocab.txt").unlink()
    (local / "tokenizer").rmdir()
    (local / "tokenizer").symlink_to(outside)
    with pytest.raises(errors.ProtocolError, match="outside"):
        hfget.hf_hub_download(MODEL, "tokenizer/tokenizer.json", local_dir=local, endpoint=sim.url, progress=False)
    assert list(outside.iterdir()) == []


def test_the_api_leaves_the_allocator_alone_and_the_cli_tunes_its_own(sim, cache, cli, monkeypatch):
    import hfget.engine.transfer as transfer

    calls: list[str] = []
    monkeypatch.setattr(transfer, "limit_malloc_arenas", lambda: calls.append("tuned"))
    hfget.snapshot_download(MODEL, endpoint=sim.url, cache_dir=cache, progress=False, allow_patterns="*.json")
    assert calls == []
    assert cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "-q").exit_code == 0
    assert calls == ["tuned"]
