"""The simulator is only worth testing against if the official client accepts it: prove it here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub import errors as hf_errors

from support import DATASET, GATED_TOKEN, MODEL, VALID_TOKEN, expected_files

pytestmark = [pytest.mark.official_client, pytest.mark.usefixtures("sim_cdn_elsewhere")]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }


def test_official_snapshot_download_is_byte_identical(sim, tmp_path):
    path = snapshot_download(MODEL, endpoint=sim.url, cache_dir=tmp_path / "c")
    assert _hashes(Path(path)) == expected_files(sim, MODEL)
    # LFS bytes came from the CDN origin (another port), without the hub's Authorization header.
    cdn = [r for r in sim.requests_for("/cdn/*", "GET")]
    assert cdn and all(r.port == sim.cdn_port for r in cdn)


def test_official_client_reads_datasets_tags_and_paginated_trees(sim, tmp_path):
    sim.tree_page_size = 2  # forces several pages, followed through the Link header
    path = snapshot_download(
        DATASET, repo_type="dataset", endpoint=sim.url, cache_dir=tmp_path / "c"
    )
    assert _hashes(Path(path)) == expected_files(sim, DATASET, repo_type="dataset")
    assert len(sim.requests_for("/api/datasets/hfget-demo/tiny-dataset/tree/*")) >= 3

    old = snapshot_download(MODEL, revision="v1.0", endpoint=sim.url, cache_dir=tmp_path / "c")
    assert _hashes(Path(old)) == expected_files(sim, MODEL, "v1.0")
    tree = list(HfApi(endpoint=sim.url).list_repo_tree(MODEL, recursive=True))
    lfs = {f.path: f.lfs.sha256 for f in tree if getattr(f, "lfs", None)}
    assert lfs["model.safetensors"] == expected_files(sim, MODEL)["model.safetensors"]


def test_official_hf_hub_download_single_file(sim, tmp_path):
    path = hf_hub_download(MODEL, "tokenizer/vocab.txt", endpoint=sim.url, cache_dir=tmp_path)
    assert Path(path).read_text().startswith("tok0\ntok1\n")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"repo_id": "hfget-demo/no-such-model", "filename": "config.json"}, hf_errors.RepositoryNotFoundError),
        ({"repo_id": MODEL, "filename": "config.json", "revision": "nope"}, hf_errors.RevisionNotFoundError),
        ({"repo_id": MODEL, "filename": "missing.bin"}, hf_errors.EntryNotFoundError),
        ({"repo_id": "hfget-demo/gated-model", "filename": "config.json"}, hf_errors.GatedRepoError),
        ({"repo_id": "hfget-demo/gated-model", "filename": "config.json", "token": VALID_TOKEN}, hf_errors.GatedRepoError),
    ],
)
def test_official_client_sees_the_hub_error_codes(sim, tmp_path, kwargs, error):
    with pytest.raises(error):
        hf_hub_download(endpoint=sim.url, cache_dir=tmp_path, **kwargs)


def test_official_client_opens_gated_repo_with_an_accepted_token(sim, tmp_path):
    path = hf_hub_download(
        "hfget-demo/gated-model", "model.safetensors", endpoint=sim.url, cache_dir=tmp_path, token=GATED_TOKEN
    )
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == expected_files(sim, "hfget-demo/gated-model")[
        "model.safetensors"
    ]
    # The token went to the hub origin, never to the CDN origin.
    assert any(r.authorization for r in sim.requests_for("/hfget-demo/gated-model/resolve/*"))
    assert not any(r.authorization for r in sim.requests_for("/cdn/*"))


def test_official_client_reads_paths_info(sim):
    # POST /api/models/R/paths-info/REV: huggingface_hub's get_paths_info, and what olah asks upstream per resolve.
    api = HfApi(endpoint=sim.url)
    infos = api.get_paths_info(MODEL, ["config.json", "model.safetensors", "tokenizer", "nope"])
    by_path = {i.path: i for i in infos}
    assert sorted(by_path) == ["config.json", "model.safetensors", "tokenizer"]  # unknown paths are left out
    assert by_path["model.safetensors"].lfs.sha256 == expected_files(sim, MODEL)["model.safetensors"]
    assert by_path["config.json"].lfs is None and by_path["config.json"].size > 0
    assert type(by_path["tokenizer"]).__name__ == "RepoFolder"
    with pytest.raises(hf_errors.RevisionNotFoundError):
        api.get_paths_info(MODEL, ["config.json"], revision="nope")
    assert sim.requests_for("/api/models/hfget-demo/tiny-model/paths-info/*", "POST")


def test_whoami(sim):
    assert HfApi(endpoint=sim.url).whoami(token=VALID_TOKEN)["name"] == "alice"
    with pytest.raises(hf_errors.HfHubHTTPError):
        HfApi(endpoint=sim.url).whoami(token="hf_wrong")


def test_official_modelscope_client_downloads_from_the_simulator(sim, tmp_path):
    """`modelscope download` (the official CLI) against the simulator's ModelScope protocol, byte-identical."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MODELSCOPE_ENDPOINT": sim.url, "MODELSCOPE_CACHE": str(tmp_path / "ms-cache")}
    cli = Path(sys.executable).with_name("modelscope")
    proc = subprocess.run(
        [str(cli), "download", MODEL, "--local-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _hashes(tmp_path / "out") == expected_files(sim, MODEL)
    listing = sim.requests_for("/api/v1/models/hfget-demo/tiny-model/repo/files")
    assert listing and "Revision=master" in listing[0].query
    # Large files were redirected to the CDN origin, small ones served directly.
    assert sim.requests_for("/cdn/*", "GET") and sim.requests_for("/api/v1/models/hfget-demo/tiny-model/repo", "GET")


def test_modelscope_protocol_answers_unknown_repos_like_modelscope(sim):
    import requests

    r = requests.get(f"{sim.url}/api/v1/models/nobody/nothing/repo/files?Revision=master&Recursive=True", timeout=5)
    assert r.status_code == 404 and r.json()["Success"] is False


def test_official_modelscope_client_whoami(sim):
    """ModelScope's `users/me`, which token-check uses, as the official modelscope_hub client reads it."""
    from modelscope_hub import HubApi
    from modelscope_hub.errors import AuthenticationError

    assert HubApi(endpoint=sim.url, token=VALID_TOKEN).whoami().username == "alice"
    with pytest.raises(AuthenticationError):
        HubApi(endpoint=sim.url, token="ms-wrong-token").whoami()
