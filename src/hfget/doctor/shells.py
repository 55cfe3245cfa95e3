"""Environment assignments written for a shell: bash, zsh, fish, PowerShell, cmd.exe, or a `.env` file.

One place for the quoting rules, so every command that tells a user "set this" (`hfget env`, diagnose's verdict)
prints lines the user's own shell takes as they are, whatever the value holds (spaces, quotes, `$`, `%`, `!`, `&`).

    render([Assignment("HF_ENDPOINT", "https://hf-mirror.com")], "fish")
    -> "set -gx HF_ENDPOINT 'https://hf-mirror.com'\n"

The rules, each checked by running the shell where it exists (tests/test_shells.py):
- bash / zsh: single quotes keep everything literal; a `'` inside is written `'\\''`.
- fish: single quotes keep everything but `\\` and `'`, which are escaped with a backslash.
- PowerShell: single quotes keep everything literal; a `'` (or a typographic single quote, which PowerShell also
  takes as a quote) is doubled.
- cmd.exe: `set "NAME=value"` keeps `&|<>^` literal inside the quotes; `%` cannot be escaped on a command line
  (`%%` only works in batch files), so a value holding `%NAME%` is refused rather than silently expanded; `!`
  only matters with delayed expansion, which is off by default.
- .env (as python-dotenv reads it: hfget, and apps that load `.env` with it): single quotes, inside which `\\` and
  `'` are backslash-escaped; `${NAME}` would be expanded even there and cannot be escaped, so it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish", "powershell", "cmd", "dotenv")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CMD_VARIABLE = re.compile(r"%[^%\s]+%")


class ShellQuoteError(ValueError):
    """A value the shell cannot take literally (a NUL byte; `%NAME%` in cmd; a newline in cmd)."""


@dataclass(frozen=True)
class Assignment:
    """NAME=value to set; `value=None` means: remove NAME from the environment."""

    name: str
    value: str | None


def quote(value: str, shell: str) -> str:
    """`value` as one literal word of `shell`."""
    _check_shell(shell)
    if "\0" in value:
        raise ShellQuoteError("a value holding a NUL byte cannot be passed through the environment")
    if shell in ("bash", "zsh"):
        return "'" + value.replace("'", "'\\''") + "'"
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell == "powershell":
        return "'" + re.sub("(['\u2018\u2019\u201a\u201b])", r"\1\1", value) + "'"
    if shell == "cmd":
        _check_cmd(value)
        return value  # cmd has no quoting of its own: the `set "NAME=value"` form carries it (see line())
    # dotenv, as python-dotenv reads it (its own set_key writes the same): inside single quotes only `\\` and `\'`
    # are escapes. `${NAME}` is expanded even there, with no way to escape it.
    if "${" in value:
        raise ShellQuoteError("python-dotenv would expand ${...} in this value, and a .env file cannot escape it")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def line(item: Assignment, shell: str) -> str:
    """One line of `shell` that sets (or removes) the variable."""
    _check_shell(shell)
    if not _NAME.fullmatch(item.name):
        raise ShellQuoteError(f"{item.name!r} is not a valid environment variable name")
    name, value = item.name, item.value
    if value is None:
        return {
            "bash": f"unset {name}",
            "zsh": f"unset {name}",
            "fish": f"set -e {name}",
            "powershell": f"Remove-Item Env:{name} -ErrorAction SilentlyContinue",
            "cmd": f'set "{name}="',
            "dotenv": f"# unset {name} (a .env file cannot remove a variable)",
        }[shell]
    if shell in ("bash", "zsh"):
        return f"export {name}={quote(value, shell)}"
    if shell == "fish":
        return f"set -gx {name} {quote(value, shell)}"
    if shell == "powershell":
        return f"$env:{name} = {quote(value, shell)}"
    if shell == "cmd":
        return f'set "{name}={quote(value, shell)}"'
    return f"{name}={quote(value, shell)}"


def comment(text: str, shell: str) -> str:
    """A comment line (cmd: `REM`); a multi-line text gives several."""
    _check_shell(shell)
    prefix = "REM " if shell == "cmd" else "# "
    # In cmd, REM lines are still parsed for redirections and pipes: keep the characters that would act out.
    cleaned = [re.sub(r"[&|<>^%]", " ", part) if shell == "cmd" else part for part in text.splitlines() or [""]]
    return "\n".join((prefix + part).rstrip() for part in cleaned)


def render(assignments: list[Assignment], shell: str, comments: list[str] = ()) -> str:
    """Comments first, then one line per assignment; ends with a newline."""
    lines = [comment(text, shell) for text in comments] + [line(a, shell) for a in assignments]
    return "".join(text + "\n" for text in lines)


def _check_shell(shell: str) -> None:
    if shell not in SHELLS:
        raise ShellQuoteError(f"unknown shell {shell!r}: one of {', '.join(SHELLS)}")


def _check_cmd(value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ShellQuoteError("cmd.exe cannot set a value holding a line break on one line")
    if '"' in value:
        raise ShellQuoteError('cmd.exe cannot set a value holding a double quote inside set "NAME=value"')
    if _CMD_VARIABLE.search(value):
        raise ShellQuoteError("cmd.exe would expand %...% in this value, and a command line cannot escape it")
