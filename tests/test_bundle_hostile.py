"""Hostile and damaged bundles: each is refused with a clear error, and nothing is written anywhere.

Most cases start from a real bundle (the tiny dataset), change one thing and rebuild the tar with the manifest's
hash made to match, so that each case reaches the check it is about instead of failing on the hash.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from hfget.bundle import import_bundle
from hfget.bundle.manifest import MANIFEST_NAME, pax_record
from hfget.config import resolve
from hfget.errors import BundleError
from support import DATASET, DATASET_DIR, tree_state


@pytest.fixture
def real(sim, cli, tmp_path) -> tuple[Path, dict, dict[str, bytes]]:
    """(bundle, its manifest, its blobs by member name): the tiny dataset, exported from a real download."""
    source = tmp_path / "source-cache"
    got = cli("download", DATASET, "--repo-type", "dataset", "--endpoint", sim.url, "--cache-dir", source, "-q")
    assert got.exit_code == 0, got.output
    bundle = tmp_path / "real.tar"
    made = cli("bundle", "export", DATASET, "--repo-type", "dataset", "-o", bundle, "--cache-dir", source)
    assert made.exit_code == 0, made.output
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile(MANIFEST_NAME))
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name != MANIFEST_NAME}
    return bundle, manifest, blobs


@pytest.fixture
def target(tmp_path) -> Path:
    """A cache that already holds something (so 'unchanged' means something), and a folder beside it that must
    stay empty."""
    cache = tmp_path / "target-cache"
    (cache / "models--someone--else" / "blobs").mkdir(parents=True)
    (cache / "models--someone--else" / "blobs" / "keep").write_text("precious")
    (tmp_path / "outside").mkdir()
    return cache


def craft(path: Path, manifest: dict | bytes, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        head = tarfile.TarInfo(MANIFEST_NAME)
        head.size = len(raw)
        head.pax_headers = pax_record(raw)
        tar.addfile(head, io.BytesIO(raw))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def refused(path: Path, cache: Path, tmp_path: Path, *fragments: str) -> str:
    """Import `path`; it must fail with a BundleError naming `fragments`, with the cache and its surroundings as
    they were."""
    before, around = tree_state(cache), tree_state(tmp_path / "outside")
    with pytest.raises(BundleError) as caught:
        import_bundle(path, resolve({"HF_HUB_CACHE": str(cache)}))
    message = caught.value.message
    for fragment in fragments:
        assert fragment in message, message
    assert caught.value.hint
    assert tree_state(cache) == before and tree_state(tmp_path / "outside") == around
    return message


def _with(manifest: dict, **changes) -> dict:
    copy = json.loads(json.dumps(manifest))
    for key, value in changes.items():
        copy["revisions"][0]["files"][0][key] = value
    return copy


def _members(blobs: dict[str, bytes]) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [regular(name, data) for name, data in blobs.items()]


# --- paths that would leave the cache ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad_path", ["../../../outside/evil.txt", "/etc/passwd", "data/../../../evil", "a\x00b",
                                      "C:/windows/evil", ".cache/huggingface/x"])
def test_file_paths_that_leave_the_snapshot_are_refused(real, target, tmp_path, bad_path):
    _, manifest, blobs = real
    bundle = craft(tmp_path / "b.tar", _with(manifest, path=bad_path), _members(blobs))
    refused(bundle, target, tmp_path, "refuses to write it")


@pytest.mark.parametrize("field,value,expected", [
    ("repo_id", "../../outside", "not a valid repo id"),
    ("repo_id", "a/b/c", "not a valid repo id"),
    ("repo_type", "weights", "Unknown repo type"),
    ("refs", ["../../../outside/ref"], "not a valid revision"),
    ("commit", "../../../../outside", "not a 40-hex sha"),
])
def test_repo_ids_refs_and_commits_that_leave_the_cache_are_refused(real, target, tmp_path, field, value, expected):
    _, manifest, blobs = real
    manifest = json.loads(json.dumps(manifest))
    manifest["revisions"][0][field] = value
    refused(craft(tmp_path / "b.tar", manifest, _members(blobs)), target, tmp_path, expected)


def test_a_symlinked_folder_in_the_cache_cannot_carry_files_out(real, target, tmp_path):
    bundle, manifest, _ = real
    revision = manifest["revisions"][0]
    snapshot = target / DATASET_DIR / "snapshots" / revision["commit"]
    snapshot.mkdir(parents=True)
    (snapshot / "data").symlink_to(tmp_path / "outside")
    refused(bundle, target, tmp_path, "would be written outside")


# --- members that are not plain files, duplicates, extras -------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo", "folder"])
def test_members_that_are_not_plain_files_are_refused(real, target, tmp_path, kind):
    _, manifest, blobs = real
    members = _members(blobs)
    info = tarfile.TarInfo(members[1][0].name)
    info.type, data = {
        "symlink": (tarfile.SYMTYPE, None), "hardlink": (tarfile.LNKTYPE, None), "device": (tarfile.CHRTYPE, None),
        "fifo": (tarfile.FIFOTYPE, None), "folder": (tarfile.DIRTYPE, None),
    }[kind]
    info.linkname = str(tmp_path / "outside" / "target") if kind in ("symlink", "hardlink") else ""
    members[1] = (info, data)
    words = {"symlink": "symbolic link", "hardlink": "hard link", "device": "device", "fifo": "pipe",
             "folder": "folder"}
    refused(craft(tmp_path / "b.tar", manifest, members), target, tmp_path, words[kind], "not a plain file")


def test_a_duplicated_member_is_refused(real, target, tmp_path):
    _, manifest, blobs = real
    members = _members(blobs)
    members.insert(2, members[1])
    refused(craft(tmp_path / "b.tar", manifest, members), target, tmp_path, "is not the next file its manifest lists")


def test_an_extra_member_is_refused(real, target, tmp_path):
    _, manifest, blobs = real
    members = _members(blobs) + [regular("../../outside/evil", b"boo")]
    refused(craft(tmp_path / "b.tar", manifest, members), target, tmp_path, "does not list")


def test_a_member_under_another_name_is_refused(real, target, tmp_path):
    _, manifest, blobs = real
    members = _members(blobs)
    members[0] = regular("../outside/evil", members[0][1])
    refused(craft(tmp_path / "b.tar", manifest, members), target, tmp_path, "'../outside/evil'")


def test_a_blob_before_the_manifest_is_not_a_bundle(real, target, tmp_path):
    _, _, blobs = real
    path = tmp_path / "b.tar"
    with tarfile.open(path, "w") as tar:
        for info, data in _members(blobs):
            tar.addfile(info, io.BytesIO(data))
    refused(path, target, tmp_path, "not an hfget bundle")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a tar at all" * 100])
def test_files_that_are_not_tars_are_refused(target, tmp_path, content):
    path = tmp_path / "b.tar"
    path.write_bytes(content)
    refused(path, target, tmp_path, "is not a tar file")


# --- sizes that lie ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,expected", [(10**13, "in the tar but"), (10**15, "not a plausible byte count")])
def test_a_huge_declared_size_in_the_manifest_is_refused(real, target, tmp_path, size, expected):
    _, manifest, blobs = real
    manifest = _with(manifest, size=size)
    manifest["blobs"][0]["size"] = size
    refused(craft(tmp_path / "b.tar", manifest, _members(blobs)), target, tmp_path, expected)


def test_a_huge_size_in_a_tar_header_is_truncation_not_a_read(real, target, tmp_path):
    _, manifest, blobs = real
    manifest = _with(manifest, size=2**40)
    manifest["blobs"][0]["size"] = 2**40
    members = _members(blobs)
    info = tarfile.TarInfo(members[0][0].name)
    info.size = 2**40  # a pax size record; the data is not there
    path = tmp_path / "b.tar"
    with open(path, "wb") as fh:
        raw = json.dumps(manifest).encode()
        head = tarfile.TarInfo(MANIFEST_NAME)
        head.size, head.pax_headers = len(raw), pax_record(raw)
        fh.write(head.tobuf(tarfile.PAX_FORMAT) + raw + bytes(-len(raw) % 512))
        fh.write(info.tobuf(tarfile.PAX_FORMAT) + members[0][1])
    refused(path, target, tmp_path, "truncated")


def test_a_huge_pax_header_is_refused_before_tarfile_reads_it(real, target, tmp_path):
    bundle, _, _ = real
    data = bytearray(bundle.read_bytes())
    # The manifest's pax header comes first: make it declare 4 GiB (octal size field), with a fixed checksum.
    data[124:136] = b"%011o\0" % (1 << 32)
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    path = tmp_path / "b.tar"
    path.write_bytes(data)
    refused(path, target, tmp_path, "extension header", "declares")


def test_a_manifest_declared_larger_than_allowed_is_not_read(target, tmp_path):
    path = tmp_path / "b.tar"
    with open(path, "wb") as fh:
        head = tarfile.TarInfo(MANIFEST_NAME)
        head.size = 1 << 30  # the data is not even there
        fh.write(head.tobuf(tarfile.USTAR_FORMAT))
    refused(path, target, tmp_path, "its manifest declares")


def test_a_disk_too_small_for_the_bundle_is_said_before_writing(real, target, tmp_path, monkeypatch):
    bundle, _, _ = real
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6, 1000))
    before = tree_state(target)
    from hfget.errors import DiskFullError

    with pytest.raises(DiskFullError):
        import_bundle(bundle, resolve({"HF_HUB_CACHE": str(target)}))
    assert tree_state(target) == before


# --- manifests that lie -----------------------------------------------------------------------------------------


def test_a_manifest_whose_hash_lies_is_caught_while_staging_and_everything_staged_is_taken_back(real, target,
                                                                                                tmp_path):
    _, manifest, blobs = real
    members = _members(blobs)
    # The last blob's bytes are swapped for others of the same size: the manifest now lies about them.
    name, data = members[-1]
    members[-1] = regular(name.name, bytes(reversed(data)))
    message = refused(craft(tmp_path / "b.tar", manifest, members), target, tmp_path, "hash to")
    assert "Nothing was imported" in message


@pytest.mark.parametrize("change,expected", [
    ("unused blob", "listed but used by no file"),
    ("missing blob", "used but not listed"),
    ("duplicate path", "lists a file path twice"),
    ("file and folder", "both as a file and as a folder"),
    ("both hashes", "exactly one of sha256 and git_sha1"),
    ("bad hex", "not 40 hex characters"),
    ("negative size", "not a plausible byte count"),
    ("newer format", "this hfget reads format 1"),
])
def test_manifests_that_contradict_themselves_are_refused(real, target, tmp_path, change, expected):
    _, manifest, blobs = real
    m = json.loads(json.dumps(manifest))
    files = m["revisions"][0]["files"]
    if change == "unused blob":
        m["blobs"].append({"key": "f" * 40, "size": 1})
    elif change == "missing blob":
        del m["blobs"][0]
    elif change == "duplicate path":
        files.append(dict(files[0]))
    elif change == "file and folder":
        files.append({**files[1], "path": files[1]["path"] + "/inner"})
    elif change == "both hashes":
        files[0]["sha256"] = "a" * 64
        files[0]["git_sha1"] = "b" * 40
    elif change == "bad hex":
        key = next(f for f in files if "git_sha1" in f)
        key["git_sha1"] = "z" * 40
    elif change == "negative size":
        files[0]["size"] = -1
    elif change == "newer format":
        m["format_version"] = 2
    refused(craft(tmp_path / "b.tar", m, _members(blobs)), target, tmp_path, expected)


# --- any single byte flipped ------------------------------------------------------------------------------------


def test_a_single_flipped_byte_is_refused_wherever_it_is(real, target, tmp_path):
    """Every byte of the first headers and the manifest's hash record, samples of the rest: a flip is
    refused, except in the two bytes of each header that end its checksum field (tar ignores whether they are a NUL
    or a space), which change nothing."""
    bundle, _, _ = real
    original = bundle.read_bytes()
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    headers = {0, 512} | {m.offset for m in members}  # the pax header, its records, each member's header
    ignored = {h + i for h in headers for i in (154, 155)}
    rng = random.Random(16)
    positions = set()
    for h in sorted(headers):  # every byte of the first four header blocks, a sample of the later ones
        positions |= set(range(h, h + 512)) if len(positions) < 4 * 512 else set(rng.sample(range(h, h + 512), 64))
    for m in members:
        positions |= set(rng.sample(range(m.offset_data, m.offset_data + max(m.size, 1)), min(m.size, 8)))
        padding = range(m.offset_data + m.size, m.offset_data + m.size + (-m.size % 512))
        positions |= {padding[0], padding[-1], *rng.sample(padding, min(len(padding), 16))} if padding else set()
    positions |= set(range(len(original) - 1024, len(original), 7))
    tampered = tmp_path / "t.tar"
    tampered.write_bytes(original)
    clean, cache = tmp_path / "clean", tmp_path / "flipped"
    import_bundle(bundle, resolve({"HF_HUB_CACHE": str(clean)}))
    settings = resolve({"HF_HUB_CACHE": str(cache)})
    with open(tampered, "r+b") as fh:
        for position in sorted(positions):
            flip = 0x01 if position not in ignored else 0x20
            fh.seek(position)
            fh.write(bytes([original[position] ^ flip]))
            fh.flush()
            try:
                import_bundle(tampered, settings)
            except BundleError:
                assert not cache.exists(), position  # refused, and whatever staging began was taken back
            else:
                assert position in ignored, f"a flip at byte {position} was accepted"
                assert _content(cache) == _content(clean)
                shutil.rmtree(cache)
            fh.seek(position)
            fh.write(original[position : position + 1])
    assert len(positions) > 2000, len(positions)


def _content(cache: Path) -> dict[str, str]:
    """The cache's files and links, without the origin record (it holds the time of the import)."""
    return {k: v for k, v in tree_state(cache).items() if not k.endswith("origins.json")}
