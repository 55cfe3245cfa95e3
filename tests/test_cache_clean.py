"""`hfget cache clean` on caches filled by real downloads: what goes, what stays, and that nothing else moves."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from huggingface_hub import scan_cache_dir
from typer.testing import CliRunner

from hfget.cache import CleanRequest, plan_clean
from hfget.cli import app
from hfget.config import resolve
from support import (
    DATASET,
    DATASET_DIR,
    MODEL,
    MODEL_DIR,
    advance,
    age,
    download_in_progress,
    expected_files,
    hfget_download,
    leftovers,
    legacy_modelscope_repo,
    modelscope_download,
    modelscope_download_in_progress,
    moving_repo,
    official_download,
    official_offline_load,
    tree_state,
    undeletable,
)


@pytest.fixture
def filled(sim, cache, cli):
    """hfget's model (main and v1.0, sharing blobs) and dataset, and a repo the official client downloaded twice
    while its main moved on (so one revision is detached)."""
    hfget_download(cli, sim, cache, MODEL)
    hfget_download(cli, sim, cache, MODEL, "-r", "v1.0")
    hfget_download(cli, sim, cache, DATASET, "--repo-type", "dataset")
    other = moving_repo(sim)
    official_download(sim, cache, other.repo_id)
    advance(other)
    official_download(sim, cache, other.repo_id)
    return other.repo_id


def _clean(cache, *args, input=None):
    """`hfget cache clean --cache-dir CACHE ARGS...`, answering the confirmation with `input`."""
    where = ["--cache-dir", str(cache)] if cache else []
    return CliRunner().invoke(app, ["cache", "clean", *where, *map(str, args)], input=input, catch_exceptions=False)


def test_cleaning_one_repo_leaves_the_others_loadable_offline(sim, cache, cli, filled):
    result = _clean(cache, MODEL, "--yes")
    assert result.exit_code == 0, result.output
    assert "whole repo, 2 revisions" in result.stdout and "✓ Freed" in result.stdout
    assert not (cache / MODEL_DIR).exists()
    assert {r.repo_id for r in scan_cache_dir(cache).repos} == {DATASET, filled}
    assert not scan_cache_dir(cache).warnings
    dataset = official_offline_load(cache, DATASET, repo_type="dataset")
    assert dataset["files"] == expected_files(sim, DATASET, repo_type="dataset")
    assert official_offline_load(cache, filled)["files"] == expected_files(sim, filled)


def test_keep_latest_drops_detached_revisions_but_keeps_blobs_main_still_uses(sim, cache, cli):
    repo = moving_repo(sim)
    hfget_download(cli, sim, cache, repo.repo_id)
    old = repo.refs["main"]
    advance(repo)
    hfget_download(cli, sim, cache, repo.repo_id)  # main moves on; the first commit is now detached
    hfget_download(cli, sim, cache, MODEL, "-r", "v1.0")  # tagged revisions are not "old": they stay

    plan = _clean(cache, "--keep-latest", "--dry-run", "--json")
    (step,) = json.loads(plan.stdout)["plan"]["steps"]
    assert (step["id"], step["action"], step["revisions"]) == (repo.repo_id, "revisions", [old])
    weights_old = repo.commits[old]["model.safetensors"].size
    assert step["size"] == weights_old  # only the blob no kept revision links to

    result = _clean(cache, "--keep-latest", "--yes")
    assert result.exit_code == 0, result.output
    folder = cache / f"models--{repo.repo_id.replace('/', '--')}"
    assert not (folder / "snapshots" / old).exists() and not (folder / "trees" / f"{old}.json").exists()
    info = {r.repo_id: r for r in scan_cache_dir(cache).repos}
    assert [r.commit_hash for r in info[repo.repo_id].revisions] == [repo.refs["main"]]
    assert official_offline_load(cache, repo.repo_id)["files"] == expected_files(sim, repo.repo_id)
    assert official_offline_load(cache, MODEL, "v1.0")["files"] == expected_files(sim, MODEL, "v1.0")


def test_a_symlink_planted_in_the_cache_never_leads_the_clean_outside(sim, cache, cli, filled, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("four years of work")
    (precious / "sub").mkdir()
    (precious / "sub" / "data.bin").write_bytes(b"\0" * 1000)
    outside = tree_state(precious)
    repo_dir = cache / MODEL_DIR
    snapshot = next((repo_dir / "snapshots").iterdir())
    os.symlink(precious / "thesis.txt", snapshot / "thesis.txt")  # a file link in a snapshot
    os.symlink(precious, snapshot / "precious-dir")  # a folder link in a snapshot
    os.symlink(precious / "sub" / "data.bin", repo_dir / "blobs" / ("f" * 40))  # a blob that is a link out
    os.symlink(precious, repo_dir / "refs" / "evil")  # a folder link where refs live
    dataset_dir = cache / DATASET_DIR
    os.symlink(precious, dataset_dir / "blobs" / "elsewhere")

    # In a revision --keep-latest drops: huggingface_hub's own strategy would list the link's target as a blob
    # to delete (it takes the first hop of a snapshot link for the blob); hfget must not follow it there.
    repo = moving_repo(sim)
    hfget_download(cli, sim, cache, repo.repo_id)
    old_snapshot = cache / f"models--{repo.repo_id.replace('/', '--')}" / "snapshots" / repo.refs["main"]
    os.symlink(precious / "thesis.txt", old_snapshot / "notes.txt")
    advance(repo)
    hfget_download(cli, sim, cache, repo.repo_id)
    assert any(precious / "thesis.txt" == p for p in scan_cache_dir(cache).delete_revisions(old_snapshot.name).blobs)

    listed = cli("cache", "list", "--cache-dir", cache, "--json")
    assert listed.exit_code == 0, listed.output
    result = _clean(cache, "--keep-latest", "--yes")
    assert result.exit_code == 0, result.output
    assert not old_snapshot.exists() and tree_state(precious) == outside
    result = _clean(cache, "--all", "--yes")
    assert result.exit_code == 0, result.output
    assert tree_state(precious) == outside
    assert not (cache / MODEL_DIR).exists() and not dataset_dir.exists()


def test_a_repo_folder_that_is_a_symlink_out_of_the_cache_is_skipped(sim, cache, cli, tmp_path):
    moved = tmp_path / "big-disk" / MODEL_DIR
    hfget_download(cli, sim, tmp_path / "big-disk", MODEL)
    cache.mkdir()
    os.symlink(moved, cache / MODEL_DIR)  # "I moved my models to another disk"
    before = tree_state(moved)
    result = _clean(cache, MODEL, "--yes")
    assert result.exit_code == 0, result.output
    assert "skipped:" in result.stdout and "symlink" in result.stdout
    assert tree_state(moved) == before and (cache / MODEL_DIR).is_symlink()


@pytest.mark.parametrize(
    "args",
    [[MODEL], ["--all"], ["--keep-latest"], ["--incomplete"], ["--older-than", "0s"], ["--filter", "size>1"]],
)
def test_dry_run_changes_nothing(sim, cache, cli, filled, args):
    (cache / MODEL_DIR / "blobs" / ("a" * 64 + ".incomplete")).write_bytes(b"partial")
    before = tree_state(cache)
    result = _clean(cache, *args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was deleted." in result.stdout
    assert tree_state(cache) == before


@pytest.mark.parametrize("answer", ["n\n", "", "whatever\nno\n"])
def test_a_declined_confirmation_changes_nothing(sim, cache, cli, filled, answer):
    before = tree_state(cache)
    result = _clean(cache, "hfget-demo/*", input=answer)
    assert result.exit_code == 1
    assert "Delete these" in result.stderr and "Nothing was deleted." in result.stderr
    assert "Will delete" in result.stdout and "frees" in result.stdout
    assert tree_state(cache) == before


def test_confirming_deletes(sim, cache, cli, filled):
    result = _clean(cache, "dataset/*", input="y\n")
    assert result.exit_code == 0, result.output
    assert not (cache / DATASET_DIR).exists() and (cache / MODEL_DIR).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hfget-demo/tiny-modle", "--yes"], "No cached repo matches 'hfget-demo/tiny-modle'"),
        ([MODEL, "nobody/*", "--yes"], "No cached repo matches 'nobody/*'"),  # one typo stops the whole clean
        (["--filter", "size>>1GB", "--yes"], "Malformed filter"),
        (["--older-than", "a while", "--yes"], "--older-than 'a while' is not an age"),
        (["--all", MODEL, "--yes"], "--all already means every cached repo"),
        (["--yes"], "Nothing to clean was named."),
        (["--all", "--yes", "--cache-dir", "MISSING"], "does not exist"),
        (["--all", "--yes", "--cache-dir", "HOME"], "your home directory"),
        (["--all", "--yes", "--cache-dir", "/"], "is /"),
        (["--all", "--yes", "--cache-dir", "NOT_A_CACHE"], "does not look like a Hugging Face cache"),
    ],
)
def test_bad_input_is_a_clear_error_and_deletes_nothing(sim, cache, cli, filled, tmp_path, isolated, args, message):
    not_a_cache = tmp_path / "work-files"
    (not_a_cache / "project").mkdir(parents=True)
    home = isolated / "home"
    (home / "notes.txt").write_text("keep me")
    subs = {"MISSING": str(tmp_path / "missing"), "HOME": str(home), "NOT_A_CACHE": str(not_a_cache)}
    args = [subs.get(a, a) for a in args]
    watched = [cache, home, not_a_cache]
    before = [tree_state(p) for p in watched]
    result = _clean(cache, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Fix:" in result.stderr and "Traceback" not in result.output
    assert [tree_state(p) for p in watched] == before


def test_incomplete_removes_partials_and_state_files_but_not_a_running_download(sim, cache, cli, filled):
    stale_state = cache / MODEL_DIR / "blobs" / ("b" * 64 + ".incomplete.state.json")
    stale_state.write_text("{}")  # a state file whose partial is gone
    leftover = cache / DATASET_DIR / "blobs" / ("c" * 40 + ".incomplete")
    leftover.write_bytes(b"x" * 1234)
    moving = moving_repo(sim)
    with download_in_progress(sim, cache, moving.repo_id) as running:
        result = _clean(cache, "--incomplete", "--yes")
        assert result.exit_code == 0, result.output
        assert running.exists()
        assert "skipped:" in result.stdout and "in use: hfget download, pid" in result.stdout
        assert "✓ Freed" in result.stdout and "2 partial downloads" in result.stdout
    assert not stale_state.exists() and not leftover.exists()
    assert official_offline_load(cache, MODEL)["files"] == expected_files(sim, MODEL)
    # Once that download is gone (killed), its partial can be cleaned.
    again = _clean(cache, "--incomplete", "--yes")
    assert again.exit_code == 0, again.output
    assert not leftovers(cache)


def test_a_repo_being_downloaded_is_skipped_with_a_note(sim, cache, cli, filled):
    moving = moving_repo(sim)
    hfget_download(cli, sim, cache, moving.repo_id, "config.json")
    folder = cache / f"models--{moving.repo_id.replace('/', '--')}"
    planned_earlier = plan_clean(resolve({"HF_HUB_CACHE": str(cache)}), CleanRequest(targets=(moving.repo_id,)))
    assert [s.repo.repo_id for s in planned_earlier.steps] == [moving.repo_id]
    with download_in_progress(sim, cache, moving.repo_id):
        before = tree_state(folder / "snapshots"), tree_state(folder / "refs")
        result = _clean(cache, moving.repo_id, DATASET, "--yes")
        assert result.exit_code == 0, result.output
        assert "skipped:" in result.stdout and "in use: hfget download, pid" in result.stdout
        assert (tree_state(folder / "snapshots"), tree_state(folder / "refs")) == before
        # A plan made before the download started notices at execution time.
        late = planned_earlier.execute()
        assert not late.done and late.skipped[0].note.startswith("in use: hfget download, pid")
        assert (tree_state(folder / "snapshots"), tree_state(folder / "refs")) == before
    assert not (cache / DATASET_DIR).exists()  # the rest of the plan went ahead


def test_a_modelscope_download_in_progress_is_left_alone(sim, cli, tmp_path):
    ms = tmp_path / "ms-cache"
    legacy = legacy_modelscope_repo(ms, "old-org", "done", {"config.json": b"{}"})
    with modelscope_download_in_progress(sim, ms) as partial:
        listed = json.loads(cli("cache", "list", "--json", "--modelscope-cache", ms).stdout)
        (busy,) = [r for r in listed["repos"] if r["id"] == MODEL]
        assert busy["in_use"] and busy["incomplete"]["files"][0]["paths"] == [str(partial)]
        finished = sorted(p.name for p in partial.parent.iterdir() if p != partial)
        result = _clean(None, "--all", "--modelscope-cache", ms, "--only", "modelscope", "--yes")
        assert result.exit_code == 0, result.output
        assert "in use: a download holds" in result.stdout and str(ms / ".lock") in result.stdout
        assert partial.exists() and finished == sorted(p.name for p in partial.parent.iterdir() if p != partial)
    assert not legacy.exists()  # the rest of --all went ahead


def test_a_file_that_cannot_be_deleted_is_reported_and_the_rest_goes_ahead(sim, cache, cli, filled, capfd):
    blob = next((cache / MODEL_DIR / "blobs").iterdir())
    capfd.readouterr()
    with undeletable(blob):
        result = _clean(cache, MODEL, DATASET, "--yes")
    assert result.exit_code == 1
    assert "failed:" in result.stdout and MODEL in result.stdout and str(blob) in result.stdout
    assert "✓ Freed" in result.stdout and "Traceback" not in result.output
    assert "Traceback" not in capfd.readouterr().err  # huggingface_hub's own logging is kept quiet
    assert not (cache / DATASET_DIR).exists()
    # The refs and snapshot links went first, so what is left still scans as a (now empty) repo, no warnings.
    info = scan_cache_dir(cache)
    assert not info.warnings and [r.revisions for r in info.repos if r.repo_id == MODEL] == [frozenset()]


def test_older_than_takes_only_repos_unused_for_that_long(sim, cache, cli, filled):
    age((cache / DATASET_DIR).rglob("*"), days=40)
    result = _clean(cache, "--older-than", "30d", "--yes")
    assert result.exit_code == 0, result.output
    assert {r.repo_id for r in scan_cache_dir(cache).repos} == {MODEL, filled}


def test_modelscope_repos_are_cleaned_and_hf_ones_with_the_same_id_kept(sim, cache, cli, tmp_path):
    ms = tmp_path / "ms-cache"
    modelscope_download(sim, ms, MODEL)
    legacy = legacy_modelscope_repo(ms, "old-org", "Tiny.Model-1.5", {"config.json": b"{}"})
    hfget_download(cli, sim, cache, MODEL)
    hf_before = tree_state(cache)

    result = _clean(cache, MODEL, "old-org/*", "--modelscope-cache", ms, "--only", "modelscope", "--yes")
    assert result.exit_code == 0, result.output
    assert not (ms / "models" / "hfget-demo--tiny-model").exists()
    assert not legacy.exists() and not legacy.parent.exists()  # the emptied owner folder goes too
    assert (ms / ".lock").is_dir()  # modelscope's own lock folder is not ours to remove
    assert tree_state(cache) == hf_before


def test_an_interrupted_clean_leaves_a_cache_huggingface_hub_reads(sim, cache, cli, tmp_path, monkeypatch):
    """Stop the clean after each single deletion in turn: refs and snapshot links go before blobs, so every
    intermediate state scans without warnings and every remaining ref loads offline."""
    repo = moving_repo(sim)
    hfget_download(cli, sim, tmp_path / "template", repo.repo_id)
    advance(repo)
    hfget_download(cli, sim, tmp_path / "template", repo.repo_id)
    hfget_download(cli, sim, tmp_path / "template", MODEL, "config.json", "-r", "v1.0")
    hfget_download(cli, sim, tmp_path / "template", MODEL, "config.json")

    real_unlink, real_rmdir = os.unlink, os.rmdir

    class Stop(BaseException):
        pass

    for request in (CleanRequest(targets=(MODEL,)), CleanRequest(keep_latest=True)):
        stop_after = 1
        while True:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(tmp_path / "template", cache, symlinks=True)
            calls = [0]

            def counting(real):
                def op(*args, **kwargs):
                    calls[0] += 1
                    if calls[0] > stop_after:
                        raise Stop()
                    return real(*args, **kwargs)
                return op

            plan = plan_clean(resolve({"HF_HUB_CACHE": str(cache)}), request)
            with monkeypatch.context() as patch:
                patch.setattr(os, "unlink", counting(real_unlink))
                patch.setattr(os, "remove", counting(real_unlink))
                patch.setattr(os, "rmdir", counting(real_rmdir))
                try:
                    plan.execute()
                    finished = True
                except Stop:
                    finished = False
            # huggingface_hub's scanner checks exactly what an interruption could break: every ref names a
            # snapshot that is there, every snapshot link reaches a blob that is there.
            # The one exception: the instant between removing the emptied snapshots/ and the emptied folder.
            info = scan_cache_dir(cache)
            empty = [p for p in cache.iterdir() if p.is_dir() and p.name != ".locks" and not any(p.iterdir())]
            assert len(info.warnings) == len(empty) <= 1, (request, stop_after, info.warnings)
            if finished:
                break
            stop_after += 1
        assert stop_after > 5  # it really was interrupted at many points
    assert official_offline_load(cache, repo.repo_id)["files"] == expected_files(sim, repo.repo_id)
