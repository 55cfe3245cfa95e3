"""`hfget bundle export | import | ls`: cached revisions carried to a machine with no route, verified on arrival.

The referee is the official client: after an import into an empty cache, on a "machine" whose every endpoint is a
`.invalid` host, `huggingface_hub.snapshot_download(..., local_files_only=True)` must load each revision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hfget.bundle import import_bundle
from hfget.config import resolve
from hfget.engine.events import FileFinished
from support import DATASET, MODEL, MODEL_DIR, expected_files, official_offline_load, tree_state


def _download(cli, sim, cache: Path, *args: str) -> None:
    result = cli("download", *args, "--endpoint", sim.url, "--cache-dir", cache, "--quiet")
    assert result.exit_code == 0, result.output


def _members(bundle: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(bundle) as tar:
        return {m.name: m for m in tar.getmembers()}


def _no_route(monkeypatch) -> None:
    """Every endpoint hfget or huggingface_hub could try is a host that does not resolve."""
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "https://modelscope.invalid")
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", "https://mirror.invalid")


def _hfget(*args, home: Path) -> subprocess.CompletedProcess:
    """hfget in its own process, as on another machine (its own HOME)."""
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "hfget", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def two_revisions(sim, cli, tmp_path) -> Path:
    """A bundle of tiny-model at v1.0 and main (five of six files shared), exported from a populated cache."""
    source = tmp_path / "source-cache"
    _download(cli, sim, source, MODEL, "-r", "v1.0")
    _download(cli, sim, source, MODEL, "-r", "main")
    bundle = tmp_path / "models.tar"
    result = cli("bundle", "export", f"{MODEL}@v1.0", f"{MODEL}@main", "-o", bundle, "--cache-dir", source)
    assert result.exit_code == 0, result.output
    return bundle


def test_two_revisions_sharing_blobs_import_into_an_empty_cache_and_load_offline(sim, two_revisions, tmp_path,
                                                                                 monkeypatch):
    repo = sim.repo(MODEL)
    v1, main = repo.commits[repo.refs["v1.0"]], repo.commits[repo.refs["main"]]
    distinct = {f.etag: f.size for f in [*v1.values(), *main.values()]}
    members = _members(two_revisions)
    # Blobs once: the five shared files are stored once; the manifest first.
    assert list(members)[0] == "hfget-bundle.json"
    assert {n for n in members if n.startswith("blobs/")} == {f"blobs/{k}" for k in distinct}
    assert sum(m.size for n, m in members.items() if n.startswith("blobs/")) == sum(distinct.values())
    with tarfile.open(two_revisions) as tar:
        manifest = json.load(tar.extractfile("hfget-bundle.json"))
    assert manifest["hfget_version"] and [r["refs"] for r in manifest["revisions"]] == [["v1.0"], ["main"]]
    weights = next(f for f in manifest["revisions"][1]["files"] if f["path"] == "model.safetensors")
    assert weights["sha256"] == main["model.safetensors"].content.sha256 and weights["size"] > 0
    config = next(f for f in manifest["revisions"][1]["files"] if f["path"] == "config.json")
    assert config["git_sha1"] == main["config.json"].blob_id
    assert manifest["revisions"][0]["source"]["source"] == "mirror"
    assert manifest["revisions"][0]["source"]["endpoint"] == sim.url

    # The air-gapped side: another HOME, an empty cache, no route anywhere.
    _no_route(monkeypatch)
    target = tmp_path / "cluster-cache"
    done = _hfget("bundle", "import", two_revisions, "--cache-dir", target, "--json", home=tmp_path / "cluster")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["blobs_written"] == len(distinct) and summary["bytes_written"] == sum(distinct.values())
    assert [r["status"] for r in summary["revisions"]] == ["imported", "imported"]
    for revision in ("v1.0", "main"):
        assert official_offline_load(target, MODEL, revision)["files"] == expected_files(sim, MODEL, revision)
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(target)
    assert not info.warnings and not info.incomplete_files
    (cached,) = info.repos
    assert {r.commit_hash for r in cached.revisions} == {repo.refs["v1.0"], repo.refs["main"]}
    assert cached.size_on_disk == sum(distinct.values())
    assert not list(target.rglob("*.part")) and not list(target.rglob("import"))  # staging gone

    # Idempotent: a second import writes nothing and changes nothing.
    before = tree_state(target)
    again = _hfget("bundle", "import", two_revisions, "--cache-dir", target, "--json", home=tmp_path / "cluster")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["blobs_written"] == 0
    assert tree_state(target) == before


def test_a_bundle_with_one_byte_flipped_is_refused_and_the_cache_is_unchanged(sim, cli, two_revisions, tmp_path):
    target = tmp_path / "cluster-cache"
    _download(cli, sim, target, DATASET, "--repo-type", "dataset")  # the cache is not empty: it must stay as it is
    before = tree_state(target)
    # The flip is in the last blob: the blobs before it verify and are staged, and must be taken back.
    last = [m for m in _members(two_revisions).values()][-1]
    tampered = tmp_path / "tampered.tar"
    data = bytearray(two_revisions.read_bytes())
    data[last.offset_data + last.size // 2] ^= 0x01
    tampered.write_bytes(data)

    result = cli("bundle", "import", tampered, "--cache-dir", target)
    assert result.exit_code == 1
    assert "was altered or damaged after it was made" in result.stderr
    assert "model.safetensors" in result.stderr and "compare its sha256sum" in result.stderr
    assert tree_state(target) == before


@pytest.mark.parametrize("where", ["manifest", "header", "first blob", "padding", "end"])
def test_a_flipped_byte_anywhere_that_matters_is_refused(two_revisions, tmp_path, cli, where):
    members = list(_members(two_revisions).values())
    manifest, first_blob = members[0], members[1]
    offset = {
        "manifest": manifest.offset_data + 10,
        "header": first_blob.offset + 100,  # inside the member's name field: the header checksum breaks
        "first blob": first_blob.offset_data,
        "padding": first_blob.offset_data + first_blob.size + 3,
        "end": two_revisions.stat().st_size - 600,  # the zero blocks that end the archive
    }[where]
    data = bytearray(two_revisions.read_bytes())
    data[offset] ^= 0x20
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(data)
    target = tmp_path / "cache"
    result = cli("bundle", "import", tampered, "--cache-dir", target)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.stderr and "nothing was" in result.stderr.lower()
    assert not target.exists()


@pytest.mark.parametrize("cut", ["inside the manifest", "inside a header", "inside a blob", "before the end"])
def test_a_truncated_bundle_is_refused_and_ls_says_so(two_revisions, tmp_path, cli, cut):
    members = list(_members(two_revisions).values())
    size = {
        "inside the manifest": members[0].offset_data + 100,
        "inside a header": members[3].offset + 200,
        "inside a blob": members[3].offset_data + members[3].size // 2,
        "before the end": members[-1].offset_data + members[-1].size - 1,
    }[cut]
    short = tmp_path / "short.tar"
    short.write_bytes(two_revisions.read_bytes()[:size])
    target = tmp_path / "cache"
    result = cli("bundle", "import", short, "--cache-dir", target)
    assert result.exit_code == 1
    assert "truncated" in result.stderr or "damaged" in result.stderr, result.stderr
    assert not target.exists()
    if cut != "inside the manifest":  # the manifest is readable: ls shows the contents and what is wrong
        listed = cli("bundle", "ls", short, "--cache-dir", target)
        assert listed.exit_code == 1 and MODEL in listed.stdout
        assert "✗" in listed.stdout and ("truncated" in listed.stdout or "damaged" in listed.stdout)


def test_an_interrupted_import_resumes_after_the_verified_blobs(sim, two_revisions, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    settings = resolve({})
    finished = []

    def interrupt_after_three(event) -> None:
        if isinstance(event, FileFinished):
            finished.append(event.size)
            if len(finished) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_bundle(two_revisions, settings, on_event=interrupt_after_three)
    cache = tmp_path / "cache"
    assert not list(cache.rglob("*.part"))  # the blob in flight is gone; the three verified ones stay staged
    assert not list(cache.glob("*/snapshots/*/*")) and not list(cache.glob("*/refs/*"))  # nothing visible yet

    result = import_bundle(two_revisions, settings)
    assert result.blobs_resumed == 3
    assert result.blobs_written == 4 and result.bytes_written == sum(
        m.size for m in list(_members(two_revisions).values())[4:])
    for revision in ("v1.0", "main"):
        assert official_offline_load(cache, MODEL, revision)["files"] == expected_files(sim, MODEL, revision)
    assert not list(cache.rglob("import"))


def test_ls_shows_the_contents_and_what_the_local_cache_holds(sim, cli, two_revisions, tmp_path):
    target = tmp_path / "cache"
    _download(cli, sim, target, MODEL, "-r", "v1.0")
    result = cli("bundle", "ls", two_revisions, "--cache-dir", target)
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith(MODEL)}
    assert rows["v1.0"].rstrip().endswith("yes") and rows["main"].rstrip().endswith("no")
    assert "Every file is in place" in result.stdout
    as_json = json.loads(cli("bundle", "ls", two_revisions, "--cache-dir", target, "--json").stdout)
    assert as_json["ok"] and as_json["blobs"] == 7
    assert [r["cached_files"] for r in as_json["revisions"]] == [6, 0]
    # Importing then reads only the one file whose content the cache lacks (main shares five with v1.0).
    imported = json.loads(cli("bundle", "import", two_revisions, "--cache-dir", target, "--json").stdout)
    assert imported["blobs_written"] == 1 and imported["blobs_present"] == 5
    assert [r["status"] for r in imported["revisions"]] == ["already in cache", "imported"]
    listed = json.loads(cli("bundle", "ls", two_revisions, "--cache-dir", target, "--json").stdout)
    assert [r["cached_files"] for r in listed["revisions"]] == [6, 6]


def test_export_of_an_incomplete_revision_names_what_is_missing_and_download_fetches_it(sim, cli, tmp_path):
    source = tmp_path / "source-cache"
    _download(cli, sim, source, MODEL, "config.json", "README.md")
    bundle = tmp_path / "b.tar"
    result = cli("bundle", "export", MODEL, "-o", bundle, "--cache-dir", source)
    assert result.exit_code == 1
    assert "is not complete in the cache" in result.stderr and "4 of 6 files are missing" in result.stderr
    assert "model.safetensors" in result.stderr and "--download" in result.stderr
    missing = cli("bundle", "export", f"{MODEL}@v1.0", "-o", bundle, "--cache-dir", source)
    assert missing.exit_code == 1 and f"{MODEL}@v1.0 is not in the cache" in missing.stderr
    assert not bundle.exists() and not list(tmp_path.glob(".b.tar*"))

    # --include narrows the bundle to what is there: the listing still covers the whole commit.
    narrow = cli("bundle", "export", MODEL, "--include", "config.json", "--include", "*.md", "-o", bundle,
                 "--cache-dir", source, "--json")
    assert narrow.exit_code == 0, narrow.output
    assert json.loads(narrow.stdout)["revisions"][0]["files"] == 2

    fetched = cli("bundle", "export", MODEL, "-o", bundle, "--force", "--download", "--endpoint", sim.url,
                  "--cache-dir", source, "--json")
    assert fetched.exit_code == 0, fetched.output
    summary = json.loads(fetched.stdout)
    assert summary["revisions"][0]["downloaded"] and summary["revisions"][0]["files"] == 6


def test_a_partial_bundle_loads_what_it_holds_and_says_the_rest_is_missing(sim, cli, tmp_path):
    source = tmp_path / "source-cache"
    _download(cli, sim, source, MODEL)
    bundle = tmp_path / "b.tar"
    assert cli("bundle", "export", MODEL, "--exclude", "onnx/*", "-o", bundle, "--cache-dir", source).exit_code == 0
    target = tmp_path / "cache"
    assert cli("bundle", "import", bundle, "--cache-dir", target).exit_code == 0
    wanted = expected_files(sim, MODEL)
    del wanted["onnx/model.onnx"]
    loaded = official_offline_load(target, MODEL, files=sorted(wanted))
    assert loaded["files"] == wanted


def test_export_refuses_a_damaged_cache_copy_and_leaves_no_file(sim, cli, tmp_path):
    source = tmp_path / "source-cache"
    _download(cli, sim, source, MODEL)
    blob = (source / MODEL_DIR / "snapshots" / sim.repo(MODEL).refs["main"] /
            "onnx" / "model.onnx").resolve()
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size: only the hash can tell
    blob.write_bytes(data)
    bundle = tmp_path / "b.tar"
    result = cli("bundle", "export", MODEL, "-o", bundle, "--cache-dir", source)
    assert result.exit_code == 1
    assert "does not hash to" in result.stderr and str(blob) in result.stderr
    assert not bundle.exists() and not list(tmp_path.glob(".b.tar*"))


def test_export_refuses_to_overwrite_and_bad_specs_are_usage_errors(sim, cli, two_revisions, tmp_path):
    before = two_revisions.read_bytes()
    again = cli("bundle", "export", MODEL, "-o", two_revisions, "--cache-dir", tmp_path / "source-cache")
    assert again.exit_code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert two_revisions.read_bytes() == before
    bad = cli("bundle", "export", "not/a/repo@main", "-o", tmp_path / "x.tar")
    assert bad.exit_code == 2 and "not a valid repo id" in bad.stderr
    missing = cli("bundle", "import", tmp_path / "nowhere.tar", "--cache-dir", tmp_path / "c")
    assert missing.exit_code == 2 and "There is no bundle at" in missing.stderr


def test_a_cache_without_tree_listings_exports_what_its_snapshot_holds(sim, cli, tmp_path):
    """huggingface_hub 0.x writes no trees/{commit}.json: the bundle then holds the snapshot's files, and says so."""
    source = tmp_path / "source-cache"
    _download(cli, sim, source, DATASET, "--repo-type", "dataset")
    for listing in source.glob("*/trees/*.json"):
        listing.unlink()
    bundle = tmp_path / "b.tar"
    made = cli("bundle", "export", DATASET, "--repo-type", "dataset", "-o", bundle, "--cache-dir", source)
    assert made.exit_code == 0, made.output
    assert "no full file listing" in made.stdout
    target = tmp_path / "cache"
    assert cli("bundle", "import", bundle, "--cache-dir", target).exit_code == 0
    loaded = official_offline_load(target, DATASET, repo_type="dataset")
    assert loaded["files"] == expected_files(sim, DATASET, repo_type="dataset")
    assert not list(target.glob("*/trees/*"))  # no listing claimed that the exporter did not have


def test_a_commit_named_twice_is_bundled_once_and_a_bare_commit_loads_by_its_sha(sim, cli, tmp_path):
    source = tmp_path / "source-cache"
    _download(cli, sim, source, MODEL)
    commit = sim.repo(MODEL).refs["main"]
    bundle = tmp_path / "b.tar"
    made = cli("bundle", "export", f"{MODEL}@main", f"{MODEL}@{commit}", "-o", bundle, "--cache-dir", source, "--json")
    assert made.exit_code == 0, made.output
    (revision,) = json.loads(made.stdout)["revisions"]
    assert revision["refs"] == ["main"] and revision["commit"] == commit
    target = tmp_path / "cache"
    bare = tmp_path / "bare.tar"
    assert cli("bundle", "export", f"{MODEL}@{commit}", "-o", bare, "--cache-dir", source).exit_code == 0
    assert cli("bundle", "import", bare, "--cache-dir", target).exit_code == 0
    assert not list(target.glob("*/refs/*"))  # a commit is no branch: no ref is invented
    assert official_offline_load(target, MODEL, commit)["files"] == expected_files(sim, MODEL)
