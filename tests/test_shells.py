"""Variables written for each shell are taken literally by that shell: bash, zsh and fish run here; PowerShell and
cmd.exe cannot, so their lines are checked against their documented quoting rules; .env lines are read back by
python-dotenv (what hfget and most Python apps read .env with)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from hfget.doctor.shells import Assignment, ShellQuoteError, line, quote, render

NASTY = [
    "https://hf-mirror.com",
    "socks5h://user:p@ss word@127.0.0.1:1080",
    "it's",
    'say "hi"',
    "$HOME and ${HOME} and $(id) and `id`",
    "back\\slash\\\\double and trailing\\",
    "semi;colon & amp | pipe > gt < lt ^ caret",
    "bang! !! history",
    "glob * ? [a]",
    "中文路径/模型 and emoji 🤗",
    "tab\there",
    "two\nlines",
    "percent 50% and %PATH%",
    "",
    "'",
    "''\\'",
    "\u2019curly\u2018 quotes",
]


def _run(argv: list[str], script: str) -> str:
    # bytes, not text mode: text mode would turn a \r the shell printed into \n
    done = subprocess.run(argv, input=script.encode(), capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_value_comes_back_unchanged_from_the_real_shell(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here (apt-get install {shell}; .ci/run installs it when it can)")
    script = "".join(line(Assignment(f"V{i}", value), shell) + "\n" for i, value in enumerate(NASTY))
    # Print each back NUL-separated, exactly as the shell holds it (the same line in all three shells).
    script += "".join(f"printf '%s\\0' \"$V{i}\"\n" for i in range(len(NASTY)))
    out = _run([shell], script)
    assert out.split("\0")[:-1] == NASTY


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_unset_and_comments_are_valid_too(shell, monkeypatch):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = render([Assignment("HF_HUB_OFFLINE", None), Assignment("HF_ENDPOINT", "https://hf-mirror.com")], shell,
                  ["a comment with 'quotes' & $vars", "and a second\nline"])
    out = _run([shell], text + "printf '%s|%s' \"$HF_HUB_OFFLINE\" \"$HF_ENDPOINT\"\n")
    assert out == "|https://hf-mirror.com"
    # exported: a child process sees it
    out = _run([shell], text + "python3 -c 'import os; print(os.environ[\"HF_ENDPOINT\"])'\n")
    assert out.strip() == "https://hf-mirror.com"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30))
def test_bash_takes_any_value_literally(value):
    out = _run(["bash"], line(Assignment("V", value), "bash") + "\nprintf '%s' \"$V\"\n")
    assert out == value


def test_dotenv_lines_read_back_with_python_dotenv(tmp_path):
    values = [v for v in NASTY if "${" not in v]
    path = tmp_path / ".env"
    path.write_text(render([Assignment(f"V{i}", v) for i, v in enumerate(values)], "dotenv", ["comment"]))
    read = dotenv_values(path, interpolate=True)
    assert [read[f"V{i}"] for i in range(len(values))] == values
    with pytest.raises(ShellQuoteError, match=r"\$\{"):
        quote("${HOME}", "dotenv")  # python-dotenv would expand it, quoted or not


# --- PowerShell and cmd.exe: their rules, checked against an independent reading of each line ---------------------


def _powershell_single_quoted(text: str) -> str:
    """PowerShell's rule for '...': literal, except that a doubled quote character (ASCII or typographic) is one."""
    assert text[0] == "'" and text[-1] == "'"
    body, out, i = text[1:-1], [], 0
    quotes = "'\u2018\u2019\u201a\u201b"
    while i < len(body):
        if body[i] in quotes:
            assert i + 1 < len(body) and body[i + 1] == body[i], f"a lone quote would end the string: {text!r}"
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("value", NASTY)
def test_powershell_lines_assign_the_literal_value(value):
    text = line(Assignment("HF_ENDPOINT", value), "powershell")
    match = re.fullmatch(r"\$env:HF_ENDPOINT = ('.*')", text, re.DOTALL)
    assert match, text
    assert _powershell_single_quoted(match.group(1)) == value


def test_powershell_exact_lines():
    assert line(Assignment("HF_ENDPOINT", "https://hf-mirror.com"), "powershell") == \
        "$env:HF_ENDPOINT = 'https://hf-mirror.com'"
    assert line(Assignment("X", "it's $HOME"), "powershell") == "$env:X = 'it''s $HOME'"
    assert line(Assignment("HF_HUB_OFFLINE", None), "powershell") == \
        "Remove-Item Env:HF_HUB_OFFLINE -ErrorAction SilentlyContinue"
    assert render([], "powershell", ["note"]) == "# note\n"


def test_cmd_lines_quote_the_whole_assignment_and_refuse_what_cmd_would_expand():
    assert line(Assignment("HF_ENDPOINT", "https://hf-mirror.com"), "cmd") == 'set "HF_ENDPOINT=https://hf-mirror.com"'
    # Inside set "...", & | < > ^ are literal: the line sets exactly this value.
    assert line(Assignment("P", "http://u:a&b|c^d@127.0.0.1:7890"), "cmd") == 'set "P=http://u:a&b|c^d@127.0.0.1:7890"'
    assert line(Assignment("C", "C:\\Users\\me\\hub cache"), "cmd") == 'set "C=C:\\Users\\me\\hub cache"'
    assert line(Assignment("HF_HUB_OFFLINE", None), "cmd") == 'set "HF_HUB_OFFLINE="'
    for bad in ("%PATH%", 'a"b', "two\nlines"):
        with pytest.raises(ShellQuoteError):
            line(Assignment("X", bad), "cmd")
    assert line(Assignment("X", "50% off"), "cmd") == 'set "X=50% off"'  # a lone % is kept by cmd
    # REM lines are parsed for redirection and pipes: those characters are left out of comments.
    assert render([], "cmd", ["a & b | c > d %e%"]) == "REM a   b   c   d  e\n"


def test_names_are_checked_and_unknown_shells_refused():
    with pytest.raises(ShellQuoteError):
        line(Assignment("BAD NAME", "x"), "bash")
    with pytest.raises(ShellQuoteError):
        line(Assignment("X", "x"), "tcsh")
    with pytest.raises(ShellQuoteError):
        quote("a\0b", "bash")
