"""Repo arguments as people paste them: page URLs of huggingface.co, hf-mirror.com and modelscope.cn, `hf://`,
`/tree/REV`, `/blob/REV/FILE`, `/resolve/REV/FILE`, datasets, trailing slashes. Each downloads the right thing from
the simulator (the URL's host mapped to it as a user would: `--endpoint`, `--modelscope-endpoint`), with a one-line
note saying what was understood; the forms that cannot work fail with a fix that does."""

from __future__ import annotations

import json

import pytest

from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import ODD_NAMES_REPO, SimRepo, blob_file, odd_names_repo, text_file
from support import DATASET, MODEL, expected_files, official_offline_load

HF = "https://huggingface.co"


def _download(cli, sim, cache, url, *args):
    result = cli("download", url, "--endpoint", sim.url, "--cache-dir", cache, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("url", "repo_type", "repo_id", "revision", "files"),
    [
        (f"{HF}/{MODEL}", "model", MODEL, "main", None),
        (f"{HF}/{MODEL}/", "model", MODEL, "main", None),
        (f"huggingface.co/{MODEL}", "model", MODEL, "main", None),
        (f"{MODEL}/", "model", MODEL, "main", None),
        (f"{HF}/{MODEL}/tree/v1.0", "model", MODEL, "v1.0", None),
        (f"{HF}/{MODEL}/blob/main/config.json", "model", MODEL, "main", ["config.json"]),
        (f"{HF}/{MODEL}/resolve/v1.0/tokenizer/vocab.txt?download=true", "model", MODEL, "v1.0", ["tokenizer/vocab.txt"]),
        (f"{HF}/{MODEL}/discussions/3", "model", MODEL, "main", None),
        (f"https://hf-mirror.com/{MODEL}/blob/main/README.md", "model", MODEL, "main", ["README.md"]),
        (f"{HF}/datasets/{DATASET}", "dataset", DATASET, "main", None),
        (f"{HF}/datasets/{DATASET}/tree/main/data/train", "dataset", DATASET, "main",
         ["data/train/part-00000.parquet", "data/train/part-00001.parquet"]),
        (f"hf://datasets/{DATASET}@main/data/test/part-00000.parquet", "dataset", DATASET, "main",
         ["data/test/part-00000.parquet"]),
        (f"datasets/{DATASET}", "dataset", DATASET, "main", None),
    ],
)
def test_every_pasted_form_downloads_the_right_thing(sim, cache, cli, url, repo_type, repo_id, revision, files):
    summary = _download(cli, sim, cache, url)
    assert (summary["repo_type"], summary["repo_id"], summary["revision"]) == (repo_type, repo_id, revision)
    sim_repo = sim.repo(repo_id, repo_type)
    assert summary["commit"] == sim_repo.refs[revision]
    wanted = files or sorted(expected_files(sim, repo_id, revision, repo_type))
    assert sorted(f["path"] for f in summary["files"]) == sorted(wanted)
    assert [n for n in summary["notes"] if n.startswith(f"Understood {url} as ")], summary["notes"]
    loaded = official_offline_load(cache, repo_id, revision, repo_type, files=files)["files"]
    expected = expected_files(sim, repo_id, revision, repo_type)
    assert loaded == {p: expected[p] for p in wanted}


def test_a_bare_id_gets_no_note(sim, cache, cli):
    assert _download(cli, sim, cache, MODEL)["notes"] == []


def test_a_url_with_odd_paths_names_the_file(sim, cache, cli):
    if ("model", ODD_NAMES_REPO) not in sim.repos:
        sim.add_repo(odd_names_repo())
    url = f"{HF}/{ODD_NAMES_REPO}/blob/main/%E4%B8%AD%E6%96%87%E7%9B%AE%E5%BD%95/%E6%A8%A1%E5%9E%8B%20%E9%85%8D%E7%BD%AE.json"
    summary = _download(cli, sim, cache, url)
    assert [f["path"] for f in summary["files"]] == ["中文目录/模型 配置.json"]
    assert "file 中文目录/模型 配置.json" in summary["notes"][0]


def test_a_mirror_url_is_the_endpoint_unless_one_is_given(sim, cache, cli, tmp_path):
    # Pasted from the mirror itself (here the simulator): it is where the files come from.
    url = f"{sim.url}/{MODEL}/tree/v1.0"
    result = cli("download", url, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["source"], summary["endpoint"], summary["revision"]) == ("mirror", sim.url, "v1.0")
    assert f"from the mirror {sim.url} (used as --endpoint unless you give one)" in summary["notes"][0]
    # --endpoint still wins (the pasted URL's host names nowhere reachable here).
    summary = _download(cli, sim, tmp_path / "c2", f"http://mirror.invalid/{MODEL}/blob/main/config.json")
    assert summary["endpoint"] == sim.url and [f["path"] for f in summary["files"]] == ["config.json"]


def test_a_modelscope_url_fetches_from_modelscope_under_the_hugging_face_id(cache, cli):
    llama = SimRepo("meta-llama/Tiny-Llama", modelscope_id="LLM-Research/Tiny-Llama")
    llama.commit([text_file("config.json", "{}\n"), blob_file("model.safetensors", 50_000, seed=5)])
    with HubSimulator([llama]) as ms:
        for url in ("https://modelscope.cn/models/LLM-Research/Tiny-Llama",
                    "https://www.modelscope.cn/models/LLM-Research/Tiny-Llama/files",
                    "https://modelscope.cn/models/LLM-Research/Tiny-Llama/file/view/master/config.json"):
            result = cli("download", url, "--modelscope-endpoint", ms.url, "--cache-dir", cache, "--json")
            assert result.exit_code == 0, result.output
            summary = json.loads(result.stdout)
            assert (summary["source"], summary["repo_id"], summary["revision"]) == ("modelscope", "meta-llama/Tiny-Llama", "main")
            assert "from ModelScope first" in summary["notes"][0]
        assert ms.requests_for("/api/v1/models/LLM-Research/Tiny-Llama/repo/files")
    assert [f["path"] for f in summary["files"]] == ["config.json"]
    assert set(official_offline_load(cache, "meta-llama/Tiny-Llama")["files"]) == {"config.json", "model.safetensors"}


@pytest.mark.parametrize(
    ("args", "needle", "fixed"),
    [
        # Two revisions: the fix is to keep one of them.
        ([f"{HF}/{MODEL}/tree/v1.0", "--revision", "main"], "names the revision 'v1.0', and --revision says 'main'",
         [f"{HF}/{MODEL}/tree/v1.0"]),
        # A dataset URL with --repo-type model.
        ([f"{HF}/datasets/{DATASET}", "--repo-type", "model"], "--repo-type dataset", [f"{HF}/datasets/{DATASET}"]),
        # The site, not a repo.
        ([f"{HF}/"], "does not name a repo", [MODEL]),
        # More than owner/name, typed by hand: the fix names the id.
        ([f"{MODEL}/config.json"], "not a valid repo id", [MODEL, "config.json"]),
    ],
)
def test_forms_that_cannot_work_fail_with_a_fix_that_works(sim, cache, cli, args, needle, fixed):
    sim.clear_log()
    bad = cli("download", *args, "--endpoint", sim.url, "--cache-dir", cache)
    assert bad.exit_code == 2 and needle in bad.stderr and "Fix:" in bad.stderr, bad.output
    assert sim.requests_for() == []
    good = cli("download", *fixed, "--endpoint", sim.url, "--cache-dir", cache, "-q")
    assert good.exit_code == 0, good.output


def test_token_check_and_diagnose_take_urls_too(sim, cli, monkeypatch):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)
    checked = cli("token-check", f"{HF}/{MODEL}/tree/main", "--json")
    report = json.loads(checked.stdout)
    assert report["repo"]["repo"] == MODEL and report["repo"]["status"] == "public"
    assert report["notes"][0] == f"Understood {HF}/{MODEL}/tree/main as {MODEL}, revision main."
    diagnosed = cli("diagnose", f"{HF}/datasets/{DATASET}", "--timeout", "1", "--json")
    report = json.loads(diagnosed.stdout)
    assert report["probe_repo"] == f"datasets/{DATASET}" and report["verdict"]["route"] == f"hub {sim.url}"
    assert report["routes"][0]["serves_repo"], report["routes"][0]
