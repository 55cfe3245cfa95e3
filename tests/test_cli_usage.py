"""The command line's own edges: usage errors as JSON with --json, -q silencing everything but the error, no
secret in a usage error, "1 file" not "1 files"."""

from __future__ import annotations

import json
import re

import pytest

from support import MODEL, VALID_TOKEN, closed_port


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["download", MODEL, "--max-workers", "lots", "--json"], "'lots' is not a valid int"),
        (["download", MODEL, "--json", "--repo-type", "checkpoint"], "'checkpoint' is not one of"),
        # click's words: "No such option: --x" (typer's own click, 0.28+), "No such option '--x'." (click 8.5)
        (["download", MODEL, "--no-such-option", "--json"], "No such option:? '?--no-such-option"),
        (["token-check", "--json", "--repo-type", "nope"], "'nope' is not one of"),
        (["diagnose", "--timeout", "soon", "--json"], "'soon' is not a valid float"),
        (["cache", "list", "--json", "--only", "pip"], "'pip' is not one of"),
    ],
)
def test_a_usage_error_with_json_is_json_on_stdout(cli, args, needle):
    result = cli(*args)
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "usage" and error["exit_code"] == 2 and re.search(needle, error["message"])
    assert json.loads(result.stdout)["ok"] is False
    assert re.search(needle, result.stderr)  # the usual usage message is still there for a person


def test_a_usage_error_without_json_prints_nothing_on_stdout(cli):
    result = cli("download", MODEL, "--max-workers", "lots")
    assert result.exit_code == 2 and result.stdout == "" and "'lots' is not a valid int" in result.stderr


def test_a_token_pasted_in_the_wrong_place_is_not_repeated(cli):
    for args in (["download", MODEL, "--max-workers", VALID_TOKEN, "--json"], ["download", MODEL, "-r", "..",
                 "--proxy", f"http://u:{VALID_TOKEN}@127.0.0.1:1"], ["download", VALID_TOKEN, "--repo-type", "nope"]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert VALID_TOKEN not in result.output
    # A token given as the repo: looked up as a repo id (it is one), and never printed in full.
    result = cli("token-check", VALID_TOKEN)
    assert VALID_TOKEN not in result.output and "hf_****1234" in result.output


def test_quiet_keeps_an_error_to_its_paragraph(sim, cli, cache, monkeypatch):
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", f"http://127.0.0.1:{closed_port()}")
    args = ["download", MODEL, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--cache-dir", cache]
    loud = cli(*args)
    assert loud.exit_code == 1 and "Sources tried" in loud.stderr
    quiet = cli(*args, "-q")
    assert quiet.exit_code == 1 and quiet.stdout == ""
    assert "Sources tried" not in quiet.stderr and quiet.stderr.startswith("Error: No source could be reached")
    assert "Fix:" in quiet.stderr


def test_one_file_is_one_file(sim, cli, cache):
    result = cli("download", MODEL, "config.json", "--endpoint", sim.url, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert "Downloading 1 file (" in result.stderr and "  1 file, " in result.stdout
    assert "1 files" not in result.output
