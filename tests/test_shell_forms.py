"""The settings diagnose recommends and `hfget env` prints, as PowerShell and cmd.exe lines (on Windows by default,
anywhere with --shell): valid by each shell's quoting rules (tests/test_shells.py reads them independently), and
carrying exactly the value of the `.env` line."""

from __future__ import annotations

import json
import re

import pytest

from hfget.ui.cli_env import Shell, verdict_shells
from support import MODEL
from test_shells import _powershell_single_quoted


def _cmd_value(text: str, name: str) -> str:
    """cmd.exe's reading of `set "NAME=value"`: everything between `NAME=` and the last quote, taken literally
    (no % in it, or cmd would expand it)."""
    match = re.fullmatch(rf'set "{name}=(.*)"', text)
    assert match, text
    assert not re.search(r"%[^%\s]+%", match.group(1)) and '"' not in match.group(1)
    return match.group(1)


def _diagnose(cli, *args):
    as_json = cli("diagnose", "--timeout", "2", "--json", *args)
    human = cli("diagnose", "--timeout", "2", *args)
    return json.loads(as_json.stdout), human


def test_diagnose_writes_the_verdict_for_powershell_and_cmd_when_asked(sim, cli, monkeypatch):
    """The must-show: the mirror that works here, as a .env line, and as the PowerShell and cmd lines that set it for
    a session, each shell reading back exactly the mirror's URL."""
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", "http://hub.invalid")
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", sim.url)
    report, human = _diagnose(cli, "--shell", "powershell", "--shell", "cmd")
    verdict = report["verdict"]
    assert verdict["env_lines"] == [f"HF_ENDPOINT={sim.url}"]
    (powershell,) = verdict["shell_lines"]["powershell"]
    (cmd,) = verdict["shell_lines"]["cmd"]
    assert _powershell_single_quoted(powershell.removeprefix("$env:HF_ENDPOINT = ")) == sim.url
    assert _cmd_value(cmd, "HF_ENDPOINT") == sim.url
    assert f"    HF_ENDPOINT={sim.url}\n" in human.stdout  # the .env line stays, the shells' lines come alongside
    assert f"  Or for this PowerShell session:\n    {powershell}\n" in human.stdout
    assert f"  Or for this cmd.exe session:\n    {cmd}\n" in human.stdout


@pytest.mark.parametrize("value", ["a&b.example,$corp.example,localhost", "socks5h://user:p'a$s|s@127.0.0.1:1080",
                                   "C:\\Users\\me\\hub cache", "50% off", "^caret! & (parens)"])
def test_values_the_shells_must_not_expand_are_written_literally(value):
    """What the verdict may recommend (NO_PROXY lists, proxy URLs, paths) with `&`, `$`, `'`, `|`, `^`, `%` in it:
    each shell's line reads back exactly the .env value."""
    from hfget.doctor.verdict import in_shell

    (ps,) = in_shell([f"NO_PROXY={value}"], "powershell")
    (cmd,) = in_shell([f"NO_PROXY={value}"], "cmd")
    assert _powershell_single_quoted(ps.removeprefix("$env:NO_PROXY = ")) == value
    assert _cmd_value(cmd, "NO_PROXY") == value


def test_a_value_cmd_cannot_take_literally_becomes_a_remark_not_a_wrong_line():
    from hfget.doctor.verdict import in_shell

    assert in_shell(["HTTPS_PROXY=http://u:%PASS%@proxy:8080"], "cmd")[0].startswith("REM HTTPS_PROXY: cmd.exe would")
    assert in_shell(["HTTPS_PROXY=http://u:%PASS%@proxy:8080"], "powershell") == [
        "$env:HTTPS_PROXY = 'http://u:%PASS%@proxy:8080'"]


def test_on_windows_both_shells_come_by_default():
    assert verdict_shells(None, windows=True) == ("powershell", "cmd")
    assert verdict_shells(None, windows=False) == ()
    assert verdict_shells([Shell.cmd], windows=True) == ("cmd",)


@pytest.mark.parametrize("shell", ["powershell", "cmd"])
def test_hfget_env_prints_valid_lines_for_the_windows_shells(sim, cache, cli, shell):
    """`hfget env --shell powershell|cmd`: the offline line for a cached repo, and where the cache is."""
    assert cli("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--quiet").exit_code == 0
    result = cli("env", MODEL, "--shell", shell, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    values = {}
    for text in result.stdout.splitlines():
        if text.startswith(("#", "REM")) or not text:
            continue
        if shell == "powershell":
            match = re.fullmatch(r"\$env:(\w+) = ('.*')", text)
            assert match, text
            values[match.group(1)] = _powershell_single_quoted(match.group(2))
        else:
            name = re.match(r'set "(\w+)=', text).group(1)
            values[name] = _cmd_value(text, name)
    assert values["HF_HUB_OFFLINE"] == "1" and values["HF_HUB_CACHE"] == str(cache)
