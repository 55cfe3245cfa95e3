"""`hfget cache list` on caches filled by real downloads: hfget's, huggingface_hub's and modelscope's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from support import (
    DATASET,
    MODEL,
    MODEL_DIR,
    advance,
    age,
    download_in_progress,
    hfget_download,
    legacy_modelscope_repo,
    modelscope_download,
    moving_repo,
    official_download,
    tree_state,
)


def _list(cli, *args):
    result = cli("cache", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def filled(sim, cache, cli):
    """A cache hfget filled: two revisions of the model (sharing blobs) and the dataset."""
    hfget_download(cli, sim, cache, MODEL)
    hfget_download(cli, sim, cache, MODEL, "-r", "v1.0")
    hfget_download(cli, sim, cache, DATASET, "--repo-type", "dataset")
    return cache


def test_sizes_match_huggingface_hub_scan_exactly(sim, cache, cli, filled):
    moving = moving_repo(sim)
    official_download(sim, cache, moving.repo_id)  # the official client writes one repo of this cache
    advance(moving)
    official_download(sim, cache, moving.repo_id)  # ... twice: a detached revision sharing blobs with main

    listed = _list(cli, "--cache-dir", cache, "--only", "huggingface")
    info = scan_cache_dir(cache)
    assert not info.warnings
    expected = {(r.repo_type, r.repo_id): (r.size_on_disk, r.nb_files, len(r.revisions)) for r in info.repos}
    got = {(r["kind"], r["id"]): (r["size"], r["files"], len(r["revisions"])) for r in listed["repos"]}
    assert got == expected and len(got) == 3
    assert listed["total_size"] == info.size_on_disk
    # Shared blobs count once: the model's two revisions are bigger together than the repo.
    model = next(r for r in listed["repos"] if r["id"] == MODEL)
    assert sum(rev["size"] for rev in model["revisions"]) > model["size"]
    revision_sizes = {rev.commit_hash: rev.size_on_disk for r in info.repos for rev in r.revisions}
    assert {rev["revision"]: rev["size"] for r in listed["repos"] for rev in r["revisions"]} == revision_sizes


def test_revisions_refs_and_which_source_served_them(sim, cache, cli, filled):
    moving = moving_repo(sim)
    hfget_download(cli, sim, cache, moving.repo_id)
    old = moving.refs["main"]
    advance(moving)
    official_download(sim, cache, moving.repo_id)  # the new main came through the official client, not hfget

    listed = {r["id"]: r for r in _list(cli, "--cache-dir", cache)["repos"]}
    model = listed[MODEL]
    assert sorted(model["refs"]) == ["main", "v1.0"]
    assert model["served_by"] == ["mirror"]
    assert {rev["endpoint"] for rev in model["revisions"]} == {sim.url}
    revisions = {rev["revision"]: rev for rev in listed[moving.repo_id]["revisions"]}
    assert revisions[old]["refs"] == [] and revisions[old]["source"] == "mirror"
    assert revisions[moving.refs["main"]]["refs"] == ["main"] and revisions[moving.refs["main"]]["source"] is None

    table = cli("cache", "list", "--cache-dir", cache, "--revisions")
    assert table.exit_code == 0, table.output
    assert "main +1 detached" in table.stdout and "(detached)" in table.stdout
    assert old[:12] in table.stdout and "mirror" in table.stdout


def test_modelscope_cache_written_by_the_official_modelscope_client(sim, cache, cli, tmp_path):
    ms = tmp_path / "ms-cache"
    modelscope_download(sim, ms, MODEL)
    legacy_modelscope_repo(ms, "old-org", "Tiny.Model-1.5", {"config.json": b"{}", "w/a.bin": b"x" * 1000})
    legacy_modelscope_repo(ms, "set-org", "m", {"model.bin": b"y" * 10}, where="models")
    legacy_modelscope_repo(ms, "flat-org", "flat", {"model.bin": b"z" * 10}, where="flat")
    (ms / "not-a-repo" / "just-a-folder").mkdir(parents=True)  # no bookkeeping files: not taken for a repo

    listed = _list(cli, "--modelscope-cache", ms, "--only", "modelscope")
    repos = {r["id"]: r for r in listed["repos"]}
    assert set(repos) == {MODEL, "old-org/Tiny.Model-1.5", "set-org/m", "flat-org/flat"}
    current = repos[MODEL]
    assert (current["cache"], current["layout"], current["refs"]) == ("modelscope", "snapshots", ["master"])
    snapshot = ms / "models" / "hfget-demo--tiny-model" / "snapshots" / "master"
    on_disk = [p for p in snapshot.rglob("*") if p.is_file()]
    assert current["files"] == len(on_disk) == 6
    assert current["size"] == sum(p.stat().st_size for p in on_disk)
    old = repos["old-org/Tiny.Model-1.5"]
    assert (old["layout"], old["refs"], old["files"]) == ("legacy", ["v1.0.2"], 2)
    assert listed["total_size"] == sum(r["size"] for r in listed["repos"])

    # Both caches in one table, told apart by the cache column.
    hfget_download(cli, sim, cache, MODEL)
    table = cli("cache", "list", "--cache-dir", cache, "--modelscope-cache", ms)
    assert table.exit_code == 0, table.output
    rows = [line.split() for line in table.stdout.splitlines() if MODEL in line]
    assert sorted(row[0] for row in rows) == ["hf", "ms"]
    assert "(old layout)" in table.stdout


def test_modelscope_lock_names_are_modelscope_hubs_own():
    from modelscope_hub._download import DownloadManager

    from hfget.cache.ms_scan import lock_path

    manager = DownloadManager.__new__(DownloadManager)  # only its path arithmetic is used
    root = Path("/some/cache")
    for kind, ms_kind in (("model", "model"), ("dataset", "dataset")):
        theirs = DownloadManager._lock_path(manager, "org/name", ms_kind, cache_dir=root, file_path="a/b.bin")
        assert lock_path(root, kind, "org/name", "a/b.bin") == theirs
        assert lock_path(root, kind, "org/name") == DownloadManager._lock_path(manager, "org/name", ms_kind,
                                                                               cache_dir=root)


def test_sort_filters_and_globs(sim, cache, cli, filled):
    moving = moving_repo(sim)
    hfget_download(cli, sim, cache, moving.repo_id)
    age((cache / f"models--{moving.repo_id.replace('/', '--')}").rglob("*"), days=45)

    ids = lambda *args: [r["id"] for r in _list(cli, "--cache-dir", cache, *args)["repos"]]  # noqa: E731
    assert ids("--sort", "size") == [MODEL, DATASET, moving.repo_id]
    assert ids("--sort", "size:asc") == [moving.repo_id, DATASET, MODEL]
    assert ids("--sort", "name") == sorted([MODEL, DATASET, moving.repo_id], key=str.lower)
    assert ids("--sort", "accessed")[-1] == moving.repo_id  # newest first: the aged repo last
    assert ids("--filter", "accessed>30d") == [moving.repo_id]
    assert set(ids("--filter", "accessed<30d")) == {MODEL, DATASET}
    assert ids("--filter", "size>10MB") == [MODEL]
    assert ids("--filter", "size>1MB", "--filter", "kind=dataset") == [DATASET]
    assert ids("--filter", "revisions>1") == [MODEL]
    assert ids("--filter", "refs=v1.0") == [MODEL]
    assert set(ids("hfget-demo/*")) == {MODEL, DATASET}
    assert ids("dataset/*") == [DATASET]
    assert ids("--filter", "id=hfget-test/*") == [moving.repo_id]


def test_partials_and_a_download_in_progress_are_shown(sim, cache, cli, filled):
    moving = moving_repo(sim)
    with download_in_progress(sim, cache, moving.repo_id) as partial:
        state = partial.with_name(partial.name + ".state.json")  # a resume state file beside the partial
        state.write_text("{}")
        listed = {r["id"]: r for r in _list(cli, "--cache-dir", cache)["repos"]}
        busy = listed[moving.repo_id]
        assert busy["in_use"] is True
        (entry,) = busy["incomplete"]["files"]
        assert entry["in_use"] and sorted(entry["paths"]) == sorted([str(partial), str(state)])
        assert listed[MODEL]["in_use"] is False
        table = cli("cache", "list", "--cache-dir", cache)
        assert "(in use)" in table.stdout and "hfget cache clean --incomplete" in table.stdout
    listed = {r["id"]: r for r in _list(cli, "--cache-dir", cache)["repos"]}
    assert listed[moving.repo_id]["in_use"] is False and listed[moving.repo_id]["incomplete"]["count"] == 1


def test_on_an_80_column_terminal_every_row_fits_and_ids_stay_whole(sim, cache, cli, filled):
    """An id is what you copy into `hfget cache clean`: on 80 columns it is not folded, no column is cut off, and
    "accessed"/"modified" become one "used" column (the later of the two); a partial adds its column too."""
    moving = moving_repo(sim)
    with download_in_progress(sim, cache, moving.repo_id):
        table = cli("cache", "list", "--revisions", "--cache-dir", cache, env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("cache"))
    assert header.split() == ["cache", "id", "size", "files", "refs", "used", "incomplete"], table.stdout
    start = lines.index(header)
    rows = lines[start:next(i for i in range(start, len(lines)) if lines[i][:1].isdigit())]  # up to "3 repos, ..."
    assert all(len(line) <= 80 for line in rows), rows
    for repo_id in (MODEL, moving.repo_id):  # 21 and 26 characters: whole (and "(in use)" on a line of its own)
        assert any(repo_id in line for line in rows), (repo_id, rows)
    assert any("dataset/hfget-demo/tiny-d" in line for line in rows), rows  # 31: folds after 26
    wide = cli("cache", "list", "--cache-dir", cache, env={"COLUMNS": "140"}).stdout
    assert "accessed" in wide and "modified" in wide


def test_a_damaged_repo_is_listed_not_hidden(sim, cache, cli, filled):
    snapshot = next((cache / MODEL_DIR / "snapshots").iterdir())
    blob = (snapshot / "config.json").resolve()
    blob.unlink()  # a blob gone: huggingface_hub's scanner rejects the whole repo
    listed = {r["id"]: r for r in _list(cli, "--cache-dir", cache)["repos"]}
    assert listed[MODEL]["problem"] and "missing" in listed[MODEL]["problem"]
    assert listed[MODEL]["size"] > 0 and listed[DATASET]["problem"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "sizee>1GB"], "Malformed filter 'sizee>1GB': unknown key 'sizee' (did you mean 'size'?)"),
        (["--filter", "size>lots"], "'lots' is not a size"),
        (["--filter", "accessed>soon"], "'soon' is not an age"),
        (["--filter", "kind>model"], "'kind' takes = or !="),
        (["--filter", "big"], "expected KEY OP VALUE"),
        (["--sort", "weight"], "Cannot sort by 'weight'"),
        (["nobody/nothing"], "No cached repo matches 'nobody/nothing'"),
    ],
)
def test_bad_input_is_a_clear_usage_error(sim, cache, cli, filled, args, message):
    result = cli("cache", "list", "--cache-dir", cache, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.output


def test_cache_roots_that_are_missing_home_root_or_not_a_cache_are_refused(cli, tmp_path, isolated):
    home = isolated / "home"
    cases = {
        str(tmp_path / "nope"): "does not exist",
        "/": "is /",
        str(home): "your home directory",
        str(home.parent): "your home directory or above it",
    }
    stuff = tmp_path / "documents"
    (stuff / "taxes").mkdir(parents=True)
    (stuff / "letter.txt").write_text("dear")
    cases[str(stuff)] = "does not look like a Hugging Face cache"
    for path, message in cases.items():
        result = cli("cache", "list", "--cache-dir", path)
        assert result.exit_code == 2, (path, result.output)
        assert message in result.stderr, (path, result.stderr)
    result = cli("cache", "list", "--modelscope-cache", str(stuff), "--only", "modelscope")
    assert result.exit_code == 2 and "does not look like a ModelScope cache" in result.stderr
    # A default location that does not exist yet is just empty, not an error.
    empty = cli("cache", "list")
    assert empty.exit_code == 0 and "Nothing cached." in empty.stdout and "not there" in empty.stdout


def test_list_reads_without_changing_anything(sim, cache, cli, filled, tmp_path):
    ms = tmp_path / "ms-cache"
    modelscope_download(sim, ms, MODEL)
    before = tree_state(cache), tree_state(ms)
    assert cli("cache", "list", "--cache-dir", cache, "--modelscope-cache", ms, "--revisions").exit_code == 0
    assert (tree_state(cache), tree_state(ms)) == before
    shutil.rmtree(ms)
