"""Windows' path rules: names it cannot store (refused with the file named and `--exclude` as the way around, before
anything is written), paths longer than MAX_PATH (the extended `\\\\?\\` form, counting the temporary suffixes), and
`~` / `%USERPROFILE%` in path settings. Windows' own branches run here by passing `windows=True`; the download
itself forces the name rules with HFGET_WINDOWS_NAMES=1, and meets them for real on a FAT file system."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from hfget.config import expand_path
from hfget.fs import winpaths
from hfget.repo import RemoteFile, RepoRef, Snapshot
from hfget.store.hub_cache import HubCache
from hfget.store.targets import CacheTarget
from hfget.testing.simrepo import SimRepo, text_file
from support import MODEL, official_offline_load, tree_state
from test_name_collisions import fat_folder  # noqa: F401  (a fixture: a FAT file system through FUSE)


def _repo_with(sim, *paths: str) -> SimRepo:
    repo = SimRepo(f"hfget-test/win-{uuid.uuid4().hex[:8]}")
    repo.commit([text_file("config.json", "{}\n")] + [text_file(p, f"I am {p}\n") for p in paths])
    sim.add_repo(repo)
    return repo


# --- the rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("aux.json", "AUX is a reserved device name"),
        ("AUX", "AUX is a reserved device name"),
        ("con.tar.gz", "CON is a reserved device name"),
        ("Nul .txt", "NUL is a reserved device name"),
        ("COM1.bin", "COM1 is a reserved device name"),
        ("lpt9", "LPT9 is a reserved device name"),
        ("COM\u00b9", "COM\u00b9 is a reserved device name"),
        ("CONIN$", "CONIN$ is a reserved device name"),
        ("a:b.txt", "does not allow ':'"),
        ('say"hi".txt', "does not allow '\"'"),
        ("what?.md", "does not allow '?'"),
        ("a<b>|*", "does not allow '*', '<', '>', '|'"),
        ("back\\slash", "does not allow '\\\\'"),
        ("tab\there", "does not allow \\x09"),
        ("notes.", "trailing dot or space"),
        ("notes ", "trailing dot or space"),
    ],
)
def test_names_windows_cannot_store(name, problem):
    assert problem in winpaths.name_problem(name)


@pytest.mark.parametrize("name", ["auxiliary.json", "com10", "console.txt", "lpt", "a.b.c", ".gitattributes", "é.txt",
                                  "COM0", ".", ".."])
def test_names_windows_stores(name):
    assert winpaths.name_problem(name) is None


def test_a_path_is_judged_by_every_folder_on_the_way():
    assert "'aux'" in winpaths.path_problem("data/aux/x.json")
    assert winpaths.path_problem("data/auxiliary/x.json") is None


def test_the_rules_apply_on_windows_when_forced_and_where_the_file_system_refuses_them(tmp_path):
    tmp_path = tmp_path / "cache"
    tmp_path.mkdir()
    assert winpaths.rules_apply(tmp_path, forced=False, windows=True) == "this cache is on Windows"
    assert "HFGET_WINDOWS_NAMES" in winpaths.rules_apply(tmp_path, forced=True, windows=False)
    assert winpaths.rules_apply(tmp_path, forced=False, windows=False) is None  # ext4 takes any name
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing


# --- the download --------------------------------------------------------------------------------------------------


def test_a_repo_with_names_windows_cannot_store_is_refused_on_a_windows_rules_cache(sim, cache, cli):
    """The must-show: `aux.json` and `a:b.txt` on a cache that follows Windows' rules (HFGET_WINDOWS_NAMES=1: a
    cache Windows machines read too): a clear error naming both files and `--exclude`; nothing written. Leaving
    them out works; without the rule, Linux stores them."""
    repo = _repo_with(sim, "aux.json", "a:b.txt")
    windows = {"HFGET_WINDOWS_NAMES": "1"}
    result = cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache, "--json", env=windows)
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "unstorable_name"
    assert ("2 files Windows cannot store under their names: 'a:b.txt' (Windows does not allow ':' in names) and "
            "'aux.json' (AUX is a reserved device name on Windows, whatever the extension)") in error["message"]
    assert "HFGET_WINDOWS_NAMES is set" in error["message"] and "Nothing was written" in error["message"]
    assert "--exclude 'a:b.txt' --exclude 'aux.json'" in error["hint"]
    assert not cache.exists()
    plain = cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache, env=windows)
    assert plain.exit_code == 1 and "aux.json" in plain.stderr and "--exclude" in plain.stderr  # (and on a screen)

    ok = cli("download", repo.repo_id, "--exclude", "aux.json", "--exclude", "a:b.txt", "--endpoint", sim.url,
             "--cache-dir", cache, env=windows)
    assert ok.exit_code == 0, ok.output
    assert official_offline_load(cache, repo.repo_id, files=["config.json"])["files"]
    linux = cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache)
    assert linux.exit_code == 0, linux.output
    assert set(official_offline_load(cache, repo.repo_id)["files"]) == {"config.json", "aux.json", "a:b.txt"}


def test_a_bundle_holding_them_is_refused_by_a_windows_rules_cache(sim, cache, tmp_path, cli):
    """`bundle import` writes the same snapshot paths: the same rule, before anything is written."""
    repo = _repo_with(sim, "aux.json")
    assert cli("download", repo.repo_id, "--endpoint", sim.url, "--cache-dir", cache, "--quiet").exit_code == 0
    bundle = tmp_path / "odd.tar"
    assert cli("bundle", "export", repo.repo_id, "-o", bundle, "--cache-dir", cache).exit_code == 0
    other = tmp_path / "windows-cache"
    other.mkdir()
    result = cli("bundle", "import", bundle, "--cache-dir", other, env={"HFGET_WINDOWS_NAMES": "1"})
    assert result.exit_code == 1, result.output
    assert "'aux.json'" in result.stderr and "Nothing was written" in result.stderr and "--exclude" in result.stderr
    assert list(other.iterdir()) == []


def test_a_fat_file_system_refuses_them_by_itself(sim, cli, fat_folder):  # noqa: F811
    """On a real FAT file system (FUSE here, a USB stick or SD card elsewhere) the probe sees the rules apply: the
    same error without any setting, for the cache and for --local-dir."""
    repo = _repo_with(sim, "a:b.txt")
    before = tree_state(fat_folder)
    for where in (("--cache-dir", fat_folder / "hub"), ("--local-dir", fat_folder / "model")):
        result = cli("download", repo.repo_id, "--endpoint", sim.url, *where)
        assert result.exit_code == 1, result.output
        assert "'a:b.txt'" in result.stderr and "refuses such names" in result.stderr
        assert "--exclude 'a:b.txt'" in result.stderr
        assert tree_state(fat_folder) == before


# --- long paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extended"),
    [
        ("C:\\Users\\me\\.cache\\huggingface\\hub", "\\\\?\\C:\\Users\\me\\.cache\\huggingface\\hub"),
        ("C:/Users/me/hub", "\\\\?\\C:\\Users\\me\\hub"),
        ("\\\\server\\share\\hub", "\\\\?\\UNC\\server\\share\\hub"),
        ("\\\\?\\C:\\already", "\\\\?\\C:\\already"),
    ],
)
def test_the_extended_form(path, extended):
    assert winpaths.extended(path, windows=True) == extended
    assert winpaths.plain(extended) == path.replace("/", "\\") if "?" not in path else True
    assert winpaths.extended(path, windows=False) == path  # off Windows: unchanged


def _snapshot(paths: list[str]) -> Snapshot:
    files = [RemoteFile(p, 10, "a" * 40) for p in paths]
    return Snapshot(RepoRef("org/name"), "main", "c" * 40, tuple(files))


def test_long_paths_are_judged_with_the_suffixes_hfget_adds(tmp_path):
    """huggingface_hub's #4950: a path just under MAX_PATH passed its check, then its temporary suffix pushed it
    over. Here the longest file's path is 255 characters: under the limit alone, over it with `.hfget-tmp`."""
    target = CacheTarget(HubCache(tmp_path), RepoRef("org/name"))
    snapshot_dir = len(str(tmp_path / "models--org--name" / "snapshots" / ("c" * 40))) + 1
    name = "x" * (255 - snapshot_dir)
    files, folders = target.path_lengths(_snapshot([name]))
    assert snapshot_dir + len(name) == 255 < winpaths.MAX_PATH <= max(files)
    assert winpaths.too_long(files, folders)
    short_files, short_folders = target.path_lengths(_snapshot(["config.json"]))
    assert not winpaths.too_long(short_files, short_folders)


def test_folders_have_a_lower_limit():
    """A folder's path must leave room for an 8.3 name: 248 characters, not 260."""
    assert winpaths.too_long([100], [winpaths.MAX_DIR]) and not winpaths.too_long([259], [winpaths.MAX_DIR - 1])


def test_a_deep_cache_downloads_and_loads(sim, tmp_path, cli):
    """A cache folder so deep that its snapshot paths pass 260 characters: on Windows hfget writes it through the
    extended form; here (and on every runner) it must simply work, and show the plain path."""
    cache = tmp_path.joinpath(*["nested-folder-for-a-long-path"] * 7)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    location = json.loads(result.stdout)["location"]
    assert len(location) > winpaths.MAX_PATH - 60 and not location.startswith("\\\\?\\")
    assert official_offline_load(cache, MODEL)["files"]


# --- ~ and %USERPROFILE% -------------------------------------------------------------------------------------------


def test_paths_expand_as_users_write_them():
    home, env = Path("/home/me"), {"HOME": "/home/me", "DATA": "/data"}
    assert expand_path("~", home, windows=False, environ=env) == home
    assert expand_path("~/models", home, windows=False, environ=env) == home / "models"
    assert expand_path("$DATA/hub", home, windows=False, environ=env) == Path("/data/hub")
    assert expand_path("${DATA}/hub", home, windows=False, environ=env) == Path("/data/hub")
    assert expand_path("%DATA%/hub", home, windows=False, environ=env) == Path("%DATA%/hub")  # POSIX: literal
    assert expand_path("$UNSET/hub", home, windows=False, environ=env) == Path("$UNSET/hub")


def test_windows_paths_expand_as_windows_users_write_them():
    home = Path("C:\\Users\\me")
    env = {"UserProfile": "C:\\Users\\me", "LOCALAPPDATA": "C:\\Users\\me\\AppData\\Local"}
    expand = lambda raw: str(expand_path(raw, home, windows=True, environ=env))  # noqa: E731
    assert expand("%USERPROFILE%\\.cache\\huggingface") == "C:\\Users\\me\\.cache\\huggingface"
    assert expand("%localappdata%\\hf") == "C:\\Users\\me\\AppData\\Local\\hf"  # any case, as Windows has them
    assert expand("~\\models") == "C:\\Users\\me\\models"
    assert expand("~/models") == "C:\\Users\\me/models"
    assert expand("%NOT_SET%\\x") == "%NOT_SET%\\x"


def test_the_settings_expand_them(tmp_path, monkeypatch, cli, sim):
    """HF_HUB_CACHE=~/... in .env and --cache-dir $VAR/...: both reach the cache the user meant."""
    monkeypatch.setenv("MY_CACHES", str(tmp_path / "caches"))
    (Path.cwd() / ".env").write_text("HF_HUB_CACHE=~/hub-from-dotenv\n")
    result = cli("download", MODEL, "config.json", "--endpoint", sim.url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["location"].startswith(str(tmp_path / "home" / "hub-from-dotenv"))
    result = cli("download", MODEL, "config.json", "--endpoint", sim.url, "--json",
                 "--cache-dir", "$MY_CACHES/hub")
    assert json.loads(result.stdout)["location"].startswith(str(tmp_path / "caches" / "hub"))
