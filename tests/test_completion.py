"""Shell completion as Typer provides it (`hfget --install-completion`, `--show-completion`), exercised in the real
shells: the script each prints is loaded there and asked to complete a command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _shell(shell: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def test_the_options_are_offered():
    done = subprocess.run([str(BIN / "hfget"), "--help"], capture_output=True, text=True, timeout=60)
    assert "--install-completion" in done.stdout and "--show-completion" in done.stdout


def test_bash_completes_commands_and_subcommands(tmp_path):
    script = """
eval "$(hfget --show-completion)"
complete -p hfget
COMP_WORDS=(hfget ca); COMP_CWORD=1; _hfget_completion hfget; echo "top: ${COMPREPLY[*]}"
COMP_WORDS=(hfget cache v); COMP_CWORD=2; _hfget_completion hfget; echo "sub: ${COMPREPLY[*]}"
COMP_WORDS=(hfget env --shell f); COMP_CWORD=3; _hfget_completion hfget; echo "arg: ${COMPREPLY[*]}"
"""
    done = _shell("bash", script, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "complete -o default -F _hfget_completion hfget" in lines
    assert "top: cache" in lines and "sub: verify" in lines and "arg: fish" in lines


def test_fish_completes_after_loading_the_script(tmp_path):
    done = _shell("fish", "hfget --show-completion | source; complete -C 'hfget cache v'; complete -C 'hfget en'",
                  tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["verify", "env"]


def test_zsh_loads_the_script_and_the_completer_answers(tmp_path):
    done = _shell("zsh", "autoload -Uz compinit && compinit -u && eval \"$(hfget --show-completion)\" && "
                  "whence -w _hfget_completion", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "_hfget_completion: function" in done.stdout
    # What the zsh function asks hfget, answered as zsh expects ("value":"help" lines).
    env = {**os.environ, "_HFGET_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "hfget cache ver"}
    answer = subprocess.run([str(BIN / "hfget")], capture_output=True, text=True, timeout=60, env=env)
    assert answer.stdout.startswith('_arguments') and '"verify":"Re-hash cached files' in answer.stdout


def test_install_completion_writes_the_users_shell_config(tmp_path):
    # `; exit $?` keeps bash in between: for a lone command it execs hfget, whose parent is then whatever ran pytest
    # (make's sh for `make test-min`), and typer names the shell from the parent process.
    done = _shell("bash", "hfget --install-completion; exit $?", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "completion installed" in done.stdout
    assert "hfget" in (tmp_path / ".bashrc").read_text()
    installed = (tmp_path / ".bash_completions" / "hfget.sh").read_text()
    assert "_HFGET_COMPLETE=complete_bash" in installed
