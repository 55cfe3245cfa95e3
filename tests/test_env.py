"""`hfget env [REPO]`: the variables that make the application's own `from_pretrained` work here, proven by running
the official client (huggingface_hub) in a real shell after `eval "$(hfget env ...)"`; and the load line that ends
`hfget download`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import DATASET, MODEL, pproxy

HFGET = str(Path(sys.executable).with_name("hfget"))
# What the application runs: the official client, as transformers calls it, with no argument but the repo id.
APP = ("import os, huggingface_hub as h; p = h.snapshot_download('hfget-demo/tiny-model', allow_patterns='*.json'); "
       "print(open(os.path.join(p, 'config.json')).read())")


def _shell(shell: str, script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def _app_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra}


def test_a_complete_cached_repo_gets_hf_hub_offline(sim, cache, cli):
    assert cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "-q").exit_code == 0
    sim.clear_log()
    result = cli("env", MODEL, "--shell", "dotenv", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert lines == ["HF_HUB_OFFLINE='1'", f"HF_HUB_CACHE='{cache}'"]
    assert "is complete in the cache" in result.stdout
    assert sim.requests_for() == []  # a complete repo needs no network to say so
    data = json.loads(cli("env", MODEL, "--json", "--cache-dir", cache).stdout)
    assert data["cached"] is True and data["set"]["HF_HUB_OFFLINE"] == "1"
    assert data["commit"] == sim.repo(MODEL).refs["main"]


def test_a_repo_not_complete_gets_the_working_endpoint(sim, cache, cli, isolated):
    (isolated / "work" / ".env").write_text(f"HF_ENDPOINT={sim.url}\n")  # the official hub is dead in the tests
    result = cli("env", MODEL, "--shell", "dotenv", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert f"HF_ENDPOINT='{sim.url}'" in result.stdout.splitlines()
    assert "HF_HUB_OFFLINE" not in result.stdout
    # Half-downloaded: still not complete (the tree listing knows what is missing), still the endpoint.
    assert cli("download", MODEL, "config.json", "--cache-dir", cache, "-q").exit_code == 0
    result = cli("env", MODEL, "--shell", "dotenv", "--cache-dir", cache)
    assert "lacks 5 file(s)" in result.stdout and f"HF_ENDPOINT='{sim.url}'" in result.stdout
    assert "HF_HUB_OFFLINE='1'" not in result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_evaluated_in_a_real_shell_the_offline_lines_let_the_official_client_load_the_repo(sim, cache, cli, shell,
                                                                                             tmp_path):
    assert cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "-q").exit_code == 0
    sim.clear_log()
    load = "eval \"$(hfget env {repo} --shell {shell})\"" if shell != "fish" else "hfget env {repo} --shell fish | source"
    script = load.format(repo=MODEL, shell=shell) + f"; python -c \"{APP}\""
    done = _shell(shell, script, _app_env(HF_HUB_CACHE=str(cache)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"model_type": "tiny"' in done.stdout
    assert sim.requests_for() == []  # loaded offline


@pytest.mark.parametrize("shell", ["bash", "fish"])
def test_evaluated_in_a_real_shell_the_route_lines_let_the_official_client_download(sim, cache, shell, tmp_path):
    """The hub is reachable only through a proxy, both set in .env: the application (which reads no .env) fails
    without the lines and works with them."""
    sim.cdn_base = "http://cdn.invalid"
    work = tmp_path / "app"
    work.mkdir()
    with pproxy(sim.port, tmp_path / "pproxy.log", protocols="http") as port:
        (work / ".env").write_text(f"HF_ENDPOINT=http://hub.invalid\nHTTPS_PROXY=http://127.0.0.1:{port}\n"
                                   f"HTTP_PROXY=http://127.0.0.1:{port}\n")
        env = _app_env(HF_HUB_CACHE=str(cache), HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2")
        without = _shell(shell, f"python -c \"{APP}\"", env, work)
        assert without.returncode != 0
        load = f"eval \"$({HFGET} env {MODEL} --shell bash)\"" if shell == "bash" else \
            f"{HFGET} env {MODEL} --shell fish | source"
        done = _shell(shell, f"{load}; python -c \"{APP}\"", env, work)
    assert done.returncode == 0, done.stderr
    assert '"model_type": "tiny"' in done.stdout
    app = [r for r in sim.requests_for() if not r.headers.get("user-agent", "").startswith("hfget/")]
    assert app and {r.host for r in app} <= {"hub.invalid", "cdn.invalid"}  # the app went the way hfget env said


def test_hf_hub_offline_left_set_for_a_missing_repo_is_removed(sim, cache, cli, isolated, monkeypatch):
    (isolated / "work" / ".env").write_text(f"HF_ENDPOINT={sim.url}\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = cli("env", MODEL, "--shell", "bash", "--cache-dir", cache).stdout
    assert "unset HF_HUB_OFFLINE" in out.splitlines() and f"export HF_ENDPOINT='{sim.url}'" in out


def test_default_model_is_the_repo_and_modelscope_only_is_said_plainly(sim, cache, cli, isolated, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", sim.url)  # only ModelScope answers
    (isolated / "work" / ".env").write_text(f"DEFAULT_MODEL={MODEL}\n")
    result = cli("env", "--shell", "bash", "--cache-dir", cache)
    assert result.exit_code == 1
    assert "Only ModelScope serves hfget-demo/tiny-model" in result.stdout
    assert "hfget download hfget-demo/tiny-model" in result.stdout
    assert "export HF_ENDPOINT" not in result.stdout
    # ... and once hfget fetched it from ModelScope, the app loads it offline.
    assert cli("download", "--cache-dir", cache, "-q").exit_code == 0
    result = cli("env", "--shell", "bash", "--cache-dir", cache)
    assert result.exit_code == 0 and "export HF_HUB_OFFLINE='1'" in result.stdout


def test_download_ends_with_how_to_load_it_and_json_carries_it(sim, cache, cli, tmp_path):
    result = cli("download", MODEL, "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache)
    last = result.stdout.strip().splitlines()[-1]
    assert "HF_HUB_OFFLINE=1" in last and 'from_pretrained("hfget-demo/tiny-model", revision="v1.0")' in last
    data = json.loads(cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json").stdout)
    assert data["load"]["code"] == 'from_pretrained("hfget-demo/tiny-model")'
    assert data["load"]["env"] == {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    local = cli("download", MODEL, "--endpoint", sim.url, "--local-dir", tmp_path / "m", "--json")
    assert json.loads(local.stdout)["load"] == {
        "repo_id": MODEL, "path": str(tmp_path / "m"), "code": f'from_pretrained("{tmp_path / "m"}")', "env": {},
        "line": f'from_pretrained("{tmp_path / "m"}")', "note": None}
    data = json.loads(cli("download", DATASET, "--repo-type", "dataset", "--endpoint", sim.url,
                          "--cache-dir", cache, "--json").stdout)
    assert data["load"]["code"] == 'load_dataset("hfget-demo/tiny-dataset")'


def test_after_one_named_file_the_load_line_is_the_call_that_loads_that_file(sim, cache, cli):
    """`from_pretrained` offline would look for the rest of the repo; the line names the call that returns this
    file, and that line, run as printed by the official client in a fresh process, does."""
    result = cli("download", MODEL, "tokenizer/vocab.txt", "-r", "v1.0", "--endpoint", sim.url, "--cache-dir", cache,
                 "--json")
    load = json.loads(result.stdout)["load"]
    assert load["code"] == 'hf_hub_download("hfget-demo/tiny-model", "tokenizer/vocab.txt", revision="v1.0")'
    assert load["note"] is None
    code = f"from huggingface_hub import hf_hub_download; print({load['code']})"
    env = {**os.environ, **load["env"]}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_bytes() == sim.repo(MODEL).commits[sim.repo(MODEL).resolve("v1.0")][
        "tokenizer/vocab.txt"].content.all_bytes()


def test_after_some_files_the_load_line_says_only_those_are_cached(sim, cache, cli):
    result = cli("download", MODEL, "--include", "*.json", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    lines = " ".join(result.stdout.split())
    assert 'from_pretrained("hfget-demo/tiny-model")' in lines
    assert "only the files you selected are in the cache" in lines
    full = json.loads(cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--json").stdout)
    assert full["load"]["note"] is None  # the whole repo: nothing to warn about
