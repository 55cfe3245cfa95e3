"""Hostile or broken metadata from a mirror: rejected with a clear error before anything is written anywhere."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import MODEL, MODEL_DIR, expected_files, official_offline_load, tree_state

TREE = "/api/models/hfget-demo/tiny-model/tree/*"
REVISION = "/api/models/hfget-demo/tiny-model/revision/*"


def _file(path="x.bin", size=10, oid="a" * 40, **extra):
    return {"type": "file", "path": path, "size": size, "oid": oid, **extra}


@pytest.mark.parametrize(
    ("listing", "needle"),
    [
        ([_file("../../escape.txt")], "contains '.', '..' or empty segments"),
        ([_file("ok/../../escape.txt")], "contains '.', '..' or empty segments"),
        ([_file("/etc/passwd")], "is absolute"),
        ([_file("C:/Windows/evil.dll")], "is absolute"),
        ([_file("a\\..\\b")], "backslashes"),
        ([_file("evil\x00.bin")], "control characters"),
        ([_file("a" * 300)], "is too long"),
        ([_file("d/" * 600 + "x")], "is too long"),
        ([_file(".cache/huggingface/download/x.metadata")], "reserved .cache folder"),
        ([_file(""), _file("x")], "is empty"),
        ([_file("config.json"), _file("config.json")], "listed the file 'config.json' of hfget-demo/tiny-model twice"),
        ([_file(size=10**15)], "impossible size"),
        ([_file(size=-1)], "impossible size"),
        ([_file(size="12")], "impossible size"),
        ([_file(size=True)], "impossible size"),
        ([_file(oid="not-hex")], "not 40 hex characters"),
        ([_file(lfs={"oid": "zz", "size": 10, "pointerSize": 130})], "not 64 hex characters"),
        ([_file(lfs={"oid": "b" * 64, "size": 11, "pointerSize": 130})], "two different sizes"),
        ([{"type": "symlink", "path": "x"}], "cannot read"),
        (["just a string"], "cannot read"),
        ({"files": []}, "did not answer the file listing"),
    ],
)
def test_hostile_tree_listings_are_rejected_and_nothing_is_written(sim, cache, cli, tmp_path, listing, needle):
    sim.override(TREE, listing)
    before = tree_state(tmp_path)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert needle in " ".join(result.stderr.split()), result.stderr
    assert "Fix:" in result.stderr
    assert tree_state(tmp_path) == before  # not the cache, not anything around it


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"id": MODEL, "sha": "not-a-commit"}, "not a 40-character hex sha"),
        ({"id": MODEL, "sha": "A" * 40}, "not a 40-character hex sha"),
        ({"id": MODEL}, "not a 40-character hex sha"),
        ("<html>Welcome to the airport wifi</html>", "did not answer the revision info"),
        ("{truncated", "did not answer the revision info"),
        ([1, 2, 3], "did not answer the revision info"),
    ],
)
def test_broken_revision_answers(sim, cache, cli, body, needle):
    sim.override(REVISION, body)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert needle in " ".join(result.stderr.split()), result.stderr
    assert not cache.exists()


@pytest.mark.parametrize("cursor", ["same", "{n}"])
def test_a_tree_that_never_ends_is_cut_off(sim, cache, cli, cursor):
    # Either the same next page again and again, or ever-new cursors that bring nothing.
    for n in range(10):
        url = f"{sim.url}/api/models/hfget-demo/tiny-model/tree/x?cursor={cursor.format(n=n)}"
        sim.override(TREE, [], headers={"Link": f'<{url}>; rel="next"'}, times=1)
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1 and "never ends (pagination loops)" in " ".join(result.stderr.split())
    assert len(sim.requests_for(TREE)) <= 6
    assert not cache.exists()


def test_pagination_to_another_host_is_refused(sim, cache, cli):
    sim.override(TREE, [_file("config.json")], headers={"Link": '<http://evil.invalid/steal?x=1>; rel="next"'})
    result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1 and "another host (evil.invalid)" in " ".join(result.stderr.split())


def test_a_redirect_loop_is_a_clear_error(sim, cache, cli):
    loop = "/hfget-demo/tiny-model/resolve/*"
    sim.override(loop, b"", status=302, headers={"Location": "/hfget-demo/tiny-model/resolve/x/loop"})
    result = cli("download", MODEL, "config.json", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 1 and "redirect loop" in result.stderr
    # Folders may exist (the download got as far as preparing the cache), but no byte, link or ref of it.
    repo = cache / MODEL_DIR
    written = [p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() or p.is_symlink()]
    assert [w for w in written if not w.startswith((".hfget/", "trees/"))] == [], written  # no partial either


def test_hostile_modelscope_listing_is_rejected(sim, cache, cli, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    sim.override("/api/v1/models/*/repo/files", {"Code": 200, "Data": {"Files": [
        {"Path": "../../../.bashrc", "Type": "blob", "Size": 5, "Sha256": "c" * 64, "IsLFS": False}]}})
    result = cli("download", MODEL, "--source", "modelscope", "--cache-dir", cache)
    assert result.exit_code == 1 and "refuses to write it" in " ".join(result.stderr.split())
    assert not cache.exists()


@pytest.fixture
def truncating_modelscope(sim, monkeypatch):
    """ModelScope truncating every listing at 6 entries (modelscope.cn does at 3000): the model's recursive listing
    (6 files, 2 folders) is cut, so hfget must walk its folders one by one."""
    import hfget.modelscope

    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)
    monkeypatch.setattr(hfget.modelscope, "LISTING_CAP", 6)
    sim.modelscope_listing_cap = 6
    yield sim
    sim.modelscope_listing_cap = 3000


def test_a_truncated_modelscope_listing_is_walked_folder_by_folder(truncating_modelscope, cache, cli):
    sim = truncating_modelscope
    result = cli("download", MODEL, "--source", "modelscope", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    listings = sim.requests_for("/api/v1/models/*/repo/files", "GET")
    assert sorted(r.query for r in listings if "Root=" in r.query) == [
        "Revision=master&Recursive=True&Root=onnx", "Revision=master&Recursive=True&Root=tokenizer"]
    loaded = official_offline_load(cache, MODEL)["files"]
    assert set(loaded) == set(expected_files(sim, MODEL))  # every file, none lost to the truncation


def test_a_modelscope_walk_that_never_ends_is_cut_off(truncating_modelscope, cache, cli, monkeypatch):
    import hfget.modelscope

    monkeypatch.setattr(hfget.modelscope, "MAX_LISTINGS", 3)  # the walk above needs 4 listing requests
    result = cli("download", MODEL, "--source", "modelscope", "--cache-dir", cache)
    assert result.exit_code == 1
    assert "needed more than 3 listing requests" in " ".join(result.stderr.split())
    assert len(truncating_modelscope.requests_for("/api/v1/models/*/repo/files", "GET")) == 3
    assert not cache.exists()


# --- property-based: whatever a server sends as a path, nothing lands outside the target --------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_any_server_path_is_either_refused_or_stays_inside(path):
    from pathlib import Path

    from hfget.errors import ProtocolError
    from hfget.fs.fsutil import ensure_inside
    from hfget.repo import safe_relpath

    base = Path("/srv/cache/snapshots/abc")
    try:
        safe = safe_relpath(path, "test")
    except ProtocolError:
        return
    target = base.joinpath(*safe.split("/"))
    ensure_inside(target, base, safe)  # must not raise for an accepted path
    assert str(target).startswith(str(base) + "/")
    assert ".." not in target.relative_to(base).parts and "\x00" not in safe


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_repo_ids_are_accepted_exactly_when_huggingface_hub_accepts_them(text):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from hfget.errors import UsageError
    from hfget.repo import parse_repo_id

    try:
        validate_repo_id(text)
        hub_ok = "/" in text or text.strip() == text  # huggingface_hub takes a bare name; so do we
    except HFValidationError:
        hub_ok = False
    try:
        parse_repo_id(text)
        ours = True
    except UsageError:
        ours = False
    if text != text.strip():  # we strip what a shell paste adds; the hub does not
        return
    assert ours == hub_ok, text


def _hub_glob_selects(path: str, include: list[str], exclude: list[str]) -> bool:
    """huggingface_hub's documented pattern rules, written out independently of its code: fnmatch over the whole
    path (`*` crosses `/`), and a pattern ending in `/` stands for everything below that folder."""
    import fnmatch

    def matches(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(path, p + "*" if p.endswith("/") else p) for p in patterns)

    return (not include or matches(include)) and not (exclude and matches(exclude))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"[a-z]{1,3}(/[a-z]{1,3}){0,2}\.(bin|json|txt)", fullmatch=True), min_size=1, max_size=8, unique=True),
    st.lists(st.sampled_from(["*.bin", "*.json", "a*", "*/*", "b/*", "[ab]*", "*", "a/", "b/c/"]), max_size=2),
    st.lists(st.sampled_from(["*.txt", "c*", "*/*/*", "a/"]), max_size=2),
)
def test_globs_follow_huggingface_hubs_pattern_rules(paths, include, exclude):
    from hfget.repo import RemoteFile, RepoRef, select_files

    files = [RemoteFile(p, 1, "a" * 40) for p in paths]
    ours = [f.path for f in select_files(files, include=include, exclude=exclude, repo=RepoRef("a/b"), commit="c" * 40)]
    assert ours == [p for p in paths if _hub_glob_selects(p, include, exclude)]


GLOB_CASES = [
    (["*.json"], []),
    (["tokenizer/*"], []),
    (["tokenizer/"], []),
    (["*"], ["*.safetensors", "onnx/"]),
    (["*/*"], []),
    ([], ["*.json", "tokenizer/*"]),
    (["[co]*"], ["*.onnx"]),
]


@pytest.mark.official_client
@pytest.mark.parametrize(("include", "exclude"), GLOB_CASES)
@pytest.mark.usefixtures("sim_cdn_elsewhere")  # huggingface_hub below 2.2 needs the CDN on another host name
def test_download_selects_what_the_official_client_selects(sim, cache, cli, include, exclude):
    """The official client is the referee: its snapshot_download(dry_run=True) with the same patterns, against the
    same repo, plans the same files as `hfget download --include/--exclude`."""
    from huggingface_hub import snapshot_download

    flags = [x for p in include for x in ("--include", p)] + [x for p in exclude for x in ("--exclude", p)]
    result = cli("download", MODEL, *flags, "--endpoint", sim.url, "--cache-dir", cache, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    ours = sorted(f["path"] for f in json.loads(result.stdout)["files"])
    planned = snapshot_download(
        MODEL, endpoint=sim.url, cache_dir=str(cache / "official"), dry_run=True,
        allow_patterns=include or None, ignore_patterns=exclude or None,
    )
    theirs = sorted(f.filename for f in planned)
    assert ours == theirs
    assert ours  # every case selects something: an empty == empty comparison would prove nothing
