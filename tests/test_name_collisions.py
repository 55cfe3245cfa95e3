"""Paths the hub keeps apart but a file system merges (README.md / readme.md where case is ignored; é composed or
decomposed where names are normalised): refused with both names, before anything is written, where the cache's
file system really merges them, and downloaded as usual where it does not."""

from __future__ import annotations

import json
import shutil
import subprocess
import unicodedata
import uuid
from pathlib import Path

import pytest

from hfget.fs.names import CASE, UNICODE, FolderNames, name_collisions
from hfget.testing.simrepo import SimRepo, text_file
from support import official_offline_load, tree_state


def _clashing_repo(sim, *paths: str) -> SimRepo:
    repo = SimRepo(f"hfget-test/clash-{uuid.uuid4().hex[:8]}")
    repo.commit([text_file("config.json", "{}\n")] + [text_file(p, f"I am {p}\n") for p in paths])
    sim.add_repo(repo)
    return repo


# --- the rule ---------------------------------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")


@pytest.mark.parametrize(
    ("selected", "every", "pairs"),
    [
        (["README.md", "readme.md"], None, {("README.md", "readme.md", frozenset({CASE})),
                                            ("readme.md", "README.md", frozenset({CASE}))}),
        ([NFC], [NFC, NFD], {(NFC, NFD, frozenset({UNICODE}))}),
        (["CAFÉ.txt"], ["CAFÉ.txt", NFD], {("CAFÉ.txt", NFD, frozenset({CASE, UNICODE}))}),
        (["Data"], ["Data", "data/train.csv"], {("Data", "data/", frozenset({CASE}))}),  # a file where a folder is
        (["config.json"], ["config.json", "README.md", "readme.md"], set()),  # only the selected files count
        (["Foo/a.txt", "foo/b.txt"], None, set()),  # folders merge, their files stay apart: harmless
        (["a.txt", "b.txt", "sub/a.txt"], None, set()),
    ],
)
def test_which_paths_collide(selected, every, pairs):
    found = {(c.first, c.second, c.needs) for c in name_collisions(selected, every or selected)}
    assert found == pairs


def test_the_probe_tells_a_case_sensitive_folder(tmp_path):
    # This machine's ext4 keeps case: a folder with entries, and an empty one (probed with a file left nowhere).
    (tmp_path / "models--Org--Name").mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (tmp_path, empty, tmp_path / "not" / "made" / "yet"):
        names = FolderNames(folder)
        assert not names.folds(CASE) and not names.folds(UNICODE)
    assert list(empty.iterdir()) == []


def test_a_case_sensitive_cache_downloads_both_files(sim, cache, cli):
    repo = _clashing_repo(sim, "README.md", "readme.md")
    result = cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    files = repo.commits[repo.refs["main"]]
    loaded = official_offline_load(cache, repo.repo_id)["files"]
    assert (loaded["README.md"], loaded["readme.md"]) == (files["README.md"].content.sha256,
                                                          files["readme.md"].content.sha256)


# --- a real case-insensitive file system: FAT, mounted through FUSE ---------------------------------------------


@pytest.fixture
def fat_folder(tmp_path):
    """A 16 MB FAT file system (mkfs.vfat) mounted with fusefat: case-insensitive, as a USB stick or a Windows
    share is. Skips where FUSE or the tools are missing."""
    tools = [shutil.which(t) for t in ("mkfs.vfat", "fusefat", "fusermount")]
    if not all(tools) or not Path("/dev/fuse").exists():
        pytest.skip("needs mkfs.vfat, fusefat and FUSE (apt-get install dosfstools fusefat fuse3)")
    image, mount = tmp_path / "fat.img", tmp_path / "fat"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    subprocess.run([tools[0], "-n", "HFGET", str(image)], check=True, capture_output=True)
    mounted = subprocess.run([tools[1], "-o", "rw+", str(image), str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a FUSE file system here: {mounted.stderr.decode()[-300:]}")
    try:
        yield mount
    finally:
        subprocess.run([tools[2], "-u", str(mount)], capture_output=True)


def test_readme_and_README_are_refused_on_a_case_insensitive_cache_and_nothing_is_written(sim, cli, fat_folder):
    repo = _clashing_repo(sim, "README.md", "readme.md")
    assert FolderNames(fat_folder).folds(CASE)  # the probe sees it for what it is
    before = tree_state(fat_folder)
    for cache in (fat_folder / "hub", fat_folder):  # a cache folder still to be made, and one that exists
        result = cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache, "--json")
        assert result.exit_code == 1, result.output
        error = json.loads(result.stdout)["error"]
        assert error["kind"] == "name_collision"
        assert "'README.md' and 'readme.md'" in error["message"] and "differ only in letter case" in error["message"]
        assert "nothing was written" in error["message"] and "--exclude 'readme.md'" in error["hint"]
        assert tree_state(fat_folder) == before
    # Leaving one of them out is fine...
    ok = cli("download", repo.repo_id, "--exclude", "readme.md", "--endpoint", sim.url, "--cache-dir",
             fat_folder / "hub", "--max-workers", "1")
    assert ok.exit_code == 0, ok.output
    # ... but asking for the other one later, with the first already in the snapshot, is the same clash.
    before = tree_state(fat_folder)
    late = cli("download", repo.repo_id, "readme.md", "--endpoint", sim.url, "--cache-dir", fat_folder / "hub")
    assert late.exit_code == 1 and "'readme.md' and 'README.md'" in late.stderr
    assert tree_state(fat_folder) == before


def test_the_rule_holds_for_a_local_dir_too(sim, cli, fat_folder):
    repo = _clashing_repo(sim, "Weights.bin", "weights.bin")
    before = tree_state(fat_folder)
    result = cli("download", repo.repo_id, "--endpoint", sim.url, "--local-dir", fat_folder / "model")
    assert result.exit_code == 1 and "'Weights.bin' and 'weights.bin'" in result.stderr
    assert tree_state(fat_folder) == before
