"""The `.env` file as people really have it: found only within the project (never a parent folder's settings
widening where the token goes), saved by Windows Notepad in UTF-16 or GBK, with a full-width ＝ from a Chinese input
method. A clear error naming the file, the line and the fix, or a correct read; never a codec traceback, never a
token in any message."""

from __future__ import annotations

import json
import os

import pytest

from hfget import config
from support import GATED_TOKEN, MODEL, VALID_TOKEN, tree_state

GATED = "hfget-demo/gated-model"


@pytest.fixture
def project(isolated, monkeypatch):
    """A project folder under HOME (~/work/proj), the working folder; ~/work is its parent."""
    proj = isolated / "home" / "work" / "proj"
    proj.mkdir(parents=True)
    monkeypatch.chdir(proj)
    return proj


# --- whose .env: the token never follows a parent folder's settings --------------------------------------------


def test_a_parent_folders_env_cannot_send_the_token_elsewhere(sim, cache, cli, project, monkeypatch):
    """~/work/.env, left by some other project, names the simulator as "the official hub": the token from the
    environment does not go there, and hfget says why it ignored that line."""
    monkeypatch.delenv("HFGET_OFFICIAL_ENDPOINT")
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    monkeypatch.setenv("HFGET_SOURCES", "mirror")  # never the real huggingface.co from a test
    parent_env = project.parent / ".env"
    parent_env.write_text(f"HFGET_OFFICIAL_ENDPOINT={sim.url}\nHFGET_ALLOW_TOKEN_TO_MIRROR=1\nHF_ENDPOINT={sim.url}\n")
    sim.clear_log()
    result = cli("download", GATED, "--cache-dir", cache, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert not any(r.authorization for r in sim.requests_for()), "the token went where a parent .env pointed"
    assert sim.requests_for()  # the mirror from that .env (an ordinary setting) was used, without the token
    note = error["notes"][0]
    assert note.startswith(f"Ignored HFGET_OFFICIAL_ENDPOINT, HFGET_ALLOW_TOKEN_TO_MIRROR from {parent_env}")
    assert "not this project's own" in note and GATED_TOKEN not in result.output


def test_the_projects_own_env_may_and_the_token_destination_is_named(sim, cache, cli, project, monkeypatch):
    """The same line in the project's own .env (next to .git) is the user's decision: the token goes to that host,
    and the run says so once, naming it."""
    monkeypatch.delenv("HFGET_OFFICIAL_ENDPOINT")
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    monkeypatch.setenv("HFGET_SOURCES", "hub")
    (project / ".git").mkdir()
    sub = project / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)  # run from a subfolder: the project root's .env is still the project's own
    (project / ".env").write_text(f"HFGET_OFFICIAL_ENDPOINT={sim.url}\n")
    sim.clear_log()
    result = cli("download", GATED, "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    assert any(r.authorization == f"Bearer {GATED_TOKEN}" for r in sim.requests_for())
    notes = json.loads(result.stdout)["notes"]
    sent = [n for n in notes if "was sent to" in n]
    assert sent == [f"Your HF token hf_****5678 (from env (HF_TOKEN)) was sent to 127.0.0.1:{sim.port}, which is "
                    f"not huggingface.co: HFGET_OFFICIAL_ENDPOINT (.env ({project / '.env'})) names it as the "
                    "official hub."]
    human = cli("download", GATED, "--cache-dir", cache)
    assert human.stdout.count("was sent to 127.0.0.1") == 1 and GATED_TOKEN not in human.output


def test_the_search_stops_at_the_project_root_and_never_goes_above_home(project, isolated):
    home = isolated / "home"
    (home / "work" / ".env").write_text("DEFAULT_MODEL=parent/model\n")
    found = config.resolve(cwd=project, home=home)
    assert found.env_file == home / "work" / ".env" and found.env is not None and not found.env.own
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert config.resolve(cwd=project, home=home).env_file is None  # the project root ends the search
    (project / "pyproject.toml").unlink()
    (home / "work" / ".env").unlink()
    (isolated / ".env").write_text("DEFAULT_MODEL=above/home\n")  # above HOME: never read
    try:
        assert config.resolve(cwd=project, home=home).env_file is None
        (home / ".env").write_text("DEFAULT_MODEL=home/model\n")  # HOME itself is the last folder searched
        assert config.resolve(cwd=project, home=home).get("DEFAULT_MODEL") == "home/model"
    finally:
        (isolated / ".env").unlink()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a folder to another user")
def test_the_search_stops_before_a_folder_another_user_owns(project, isolated):
    home = isolated / "home"
    (home / "work" / ".env").write_text("DEFAULT_MODEL=planted/model\n")
    os.chown(home / "work", 4321, 4321)
    try:
        settings = config.resolve(cwd=project, home=home)
        assert settings.env_file is None  # root's own run does not read another user's folder either
    finally:
        os.chown(home / "work", 0, 0)


# --- how it is saved ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")],
    ids=["utf-8", "utf-8 with BOM", "utf-16 le (Notepad 'Unicode')", "utf-16 be"],
)
def test_utf8_and_utf16_env_files_are_read_right(sim, cache, cli, isolated, encoding, prefix):
    # The setting on the first line, right after the byte-order mark: a BOM read as text would hide it.
    text = f"HF_ENDPOINT={sim.url}\r\n# 镜像设置 (mirror)\r\nDEFAULT_MODEL={MODEL}\r\n"
    (isolated / "work" / ".env").write_bytes(prefix + text.encode(encoding))
    result = cli("download", "--cache-dir", cache, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["repo_id"], summary["endpoint"]) == (MODEL, sim.url)


@pytest.mark.parametrize(
    ("content", "line", "needles"),
    [
        ("# 镜像设置\nHF_ENDPOINT=https://hf-mirror.com\n".encode("gbk"), 1,
         ["has bytes that are not UTF-8", "ANSI/GBK", "save it as UTF-8"]),
        ("HF_ENDPOINT=https://hf-mirror.com\n".encode("utf-16-le"), 1, ["UTF-16 without a byte-order mark", "UTF-8"]),
        (f"HF_ENDPOINT=https://hf-mirror.com\nHF_TOKEN＝{VALID_TOKEN}\n".encode(), 2,
         ["HF_TOKEN＝… uses a full-width ＝ (U+FF1D", "Replace ＝ with a plain =", "HF_TOKEN=VALUE"]),
        (f"# ok\n\nHF_TOKEN: {VALID_TOKEN}\n".encode(), 3, ["HF_TOKEN:… separates the name from the value with a colon"]),
        (f"HF_TOKEN {VALID_TOKEN}\n".encode(), 1, ["HF_TOKEN … is not NAME=VALUE", "HF_TOKEN=VALUE"]),
        (f"HF_TOKEN='{VALID_TOKEN}\n".encode(), 1, ["HF_TOKEN=… has a quote that is never closed"]),
    ],
    ids=["gbk", "utf-16 without BOM", "full-width equals", "colon", "space", "unclosed quote"],
)
def test_an_env_file_hfget_cannot_read_is_a_clear_error(sim, cache, cli, isolated, content, line, needles):
    dotenv = isolated / "work" / ".env"
    dotenv.write_bytes(content)
    before = tree_state(cache)
    sim.clear_log()
    for args in ([], ["--json"]):
        result = cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, *args)
        assert result.exit_code == 2, result.output
        output = result.output
        assert "Traceback" not in output and "codec" not in output and "Internal error" not in output
        assert VALID_TOKEN not in output  # the value of a broken line is never repeated
        assert f"{dotenv}, line {line}" in output
        for needle in needles:
            assert needle in output
    assert json.loads(result.stdout)["error"]["kind"] == "usage"
    assert sim.requests_for() == [] and tree_state(cache) == before


def test_diagnose_reports_every_broken_line_and_carries_on(sim, cli, isolated, monkeypatch):
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    dotenv = isolated / "work" / ".env"
    dotenv.write_text(f"HF_ENDPOINT＝{sim.url}\nHF_HUB_OFFLINE=1\nplain words\n")
    result = cli("diagnose", MODEL, "--timeout", "1", "--json")
    report = json.loads(result.stdout)
    lines = [c for c in report["checks"] if c["name"].startswith(".env line")]
    assert [(c["name"], c["status"]) for c in lines] == [(".env line 1", "fail"), (".env line 3", "fail")]
    assert report["verdict"]["fix_first"][0].startswith(f"{dotenv}, line 1: HF_ENDPOINT＝… uses a full-width ＝")
    assert report["ok"] is True  # the rest of the file (HF_HUB_OFFLINE) was read, and routes were tested
    assert any(c["name"] == "HF_HUB_OFFLINE" for c in report["checks"] if c["group"] == "conflicts")


# --- tokens as pasted --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pasted", [f'"{GATED_TOKEN}"', f"'{GATED_TOKEN}'", f"Bearer {GATED_TOKEN}",
                                    f"Authorization: Bearer {GATED_TOKEN}", f"  {GATED_TOKEN}\n"])
def test_a_token_pasted_with_quotes_or_bearer_is_recognised(sim, cache, cli, monkeypatch, pasted):
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)
    monkeypatch.setenv("HF_TOKEN", pasted)
    sim.clear_log()
    result = cli("download", GATED, "--cache-dir", cache, "-q")
    assert result.exit_code == 0, result.output
    assert {r.authorization for r in sim.requests_for() if r.authorization} == {f"Bearer {GATED_TOKEN}"}
    checked = json.loads(cli("token-check", GATED, "--json").stdout)
    assert checked["ok"] is True and checked["hf"][0]["masked"] == "hf_****5678"
    assert GATED_TOKEN not in json.dumps(checked)
