"""The `.env` file: which one belongs to the folder hfget runs in, how it is decoded, and every line that is not
KEY=VALUE.

Which file: the nearest `.env` from the working folder upward, but the search stops at the project root (the
nearest folder with `.git`, `pyproject.toml` or another project marker), at the home folder, and before any folder
owned by another user; it never looks above the home folder. A `.env` in the working folder or at or below the
project root is the project's own; one found in a parent folder with no project marker on the way (a `.env` left
in `~/work` by some other project) is only inherited, and `config.resolve` takes no setting from it that would
widen where the token may go.

Decoding: UTF-8 with or without a byte-order mark, UTF-16 and UTF-32 with one (what Windows Notepad writes as
"Unicode"). Anything else is reported with the file, the line and the fix, never as a codec traceback. Each line
python-dotenv cannot read as KEY=VALUE (a full-width `＝` typed by a Chinese input method, `KEY: value`, a quote
never closed) is reported with its line number and its fix; a line's value is never repeated, since it may be a
token.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_MARKERS = (
    ".git", ".hg", ".svn", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile",
    "environment.yml", "package.json",
)
_BOMS = (  # UTF-32's marks first: the little-endian one starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"), (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_LEADING_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]{0,63})")
SAVE_AS_UTF8 = ("save it as UTF-8 (Notepad: File > Save as > Encoding: UTF-8; VS Code: the encoding in the status "
                "bar > Save with Encoding > UTF-8)")


@dataclass(frozen=True)
class EnvFile:
    path: Path
    own: bool  # the project's own .env: in the working folder, at or below the project root, or --env-file
    why: str  # how it was found, for diagnose and for the note when a setting from it is ignored


@dataclass(frozen=True)
class EnvProblem:
    path: Path
    line: int  # 1-based; 0 for the whole file
    what: str  # what is wrong, never quoting a value
    fix: str

    def describe(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else str(self.path)
        return f"{where}: {self.what}"


@dataclass
class EnvRead:
    values: dict[str, str | None] = field(default_factory=dict)
    problems: list[EnvProblem] = field(default_factory=list)
    encoding: str = "UTF-8"


# --- which file -------------------------------------------------------------------------------------------------


def find(cwd: Path, home: Path) -> EnvFile | None:
    cwd, home = Path(os.path.realpath(cwd)), Path(os.path.realpath(home))
    above_home = set(home.parents)
    found: Path | None = None
    root: Path | None = None
    for folder in (cwd, *cwd.parents):
        if folder in above_home or (folder != cwd and not _owned_by_me(folder)):
            break
        if found is None and (folder / ".env").is_file():
            found = folder / ".env"
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            root = folder
            break
        if folder == home:
            break
    if found is None:
        return None
    if found.parent == cwd:
        return EnvFile(found, True, "in the working folder")
    if root is not None:
        return EnvFile(found, True, f"in the project {root}")
    return EnvFile(found, False, f"in a parent folder of {cwd}, with no project marker (.git, pyproject.toml, ...) "
                                 "between them: not this project's own")


def _owned_by_me(folder: Path) -> bool:
    """A folder another user owns (/tmp, a shared mount) is not where this user's settings live (POSIX only)."""
    if not hasattr(os, "getuid"):
        return True
    try:
        return folder.stat().st_uid == os.getuid()
    except OSError:
        return False


# --- reading it -------------------------------------------------------------------------------------------------


def read(path: Path) -> EnvRead:
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        data = path.read_bytes()
    except OSError as error:
        return EnvRead(problems=[EnvProblem(path, 0, f"cannot be read ({error.strerror or error})",
                                            "Fix its permissions, or point --env-file at another file.")])
    text, encoding, problem = decode(data, path)
    if problem is not None:
        return EnvRead(problems=[problem], encoding=encoding)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # python-dotenv miscounts lines after an error otherwise
    good: list[str] = []
    problems: list[EnvProblem] = []
    for binding in parse_stream(io.StringIO(text)):
        problem = _line_problem(path, binding)
        if problem is not None:
            problems.append(problem)
        elif binding.key is not None:
            good.append(binding.original.string)
    # Only the lines that parsed go to python-dotenv (for its quoting and ${VAR} rules): it would log a warning of
    # its own for the others.
    values = dict(dotenv_values(stream=io.StringIO("\n".join(good) + "\n"), interpolate=True))
    return EnvRead(values, problems, encoding)


def decode(data: bytes, path: Path) -> tuple[str, str, EnvProblem | None]:
    """(text, encoding name, problem): UTF-8 (BOM or not), UTF-16/32 with a BOM; anything else is a problem."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), name, None
            except UnicodeDecodeError as error:
                return "", name, EnvProblem(path, 0, f"starts with a {name} byte-order mark but is not valid {name} "
                                            f"({error.reason})", f"Save it again: {SAVE_AS_UTF8}.")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return "", "?", EnvProblem(path, line, "contains NUL bytes: it looks saved as UTF-16 without a byte-order "
                                   "mark", f"{SAVE_AS_UTF8[0].upper()}{SAVE_AS_UTF8[1:]}.")
    try:
        return data.decode("utf-8"), "UTF-8", None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        try:
            data.decode("gbk")
            looks = "ANSI/GBK (the default of Notepad on Chinese Windows)"
        except UnicodeDecodeError:
            looks = "a legacy code page"
        return "", "?", EnvProblem(path, line, f"has bytes that are not UTF-8 (the file looks saved as {looks})",
                                   f"The file was saved as ANSI/GBK: {SAVE_AS_UTF8}.")


def _line_problem(path: Path, binding) -> EnvProblem | None:
    """What is wrong with one statement python-dotenv read, or None. Shows the name and separator, never a value."""
    key = binding.key
    if not binding.error and (key is None or ("＝" not in key and (binding.value is not None or _NAME.fullmatch(key)))):
        return None  # a comment, a blank line, KEY=VALUE, or a bare KEY (python-dotenv's "unset")
    original = binding.original.string
    line = binding.original.line + len(original) - len(original.lstrip("\n"))  # blank lines merged into an error
    raw = original.strip("\n")
    name_match = _LEADING_NAME.match(raw)
    name = name_match.group(1) if name_match else None
    after = raw[name_match.end():].lstrip(" \t") if name_match else raw.lstrip()
    sep = after[:1] if after[:1] in ("＝", ":", "：", "=") else ""
    shown = f"{name}{sep}…" if name else "this line"
    if "＝" in raw and (not name or sep == "＝"):
        return EnvProblem(path, line, f"{shown} uses a full-width ＝ (U+FF1D, typed by a Chinese input method) "
                          "instead of =", f"Replace ＝ with a plain = (switch the input method to English): "
                          f"{name or 'NAME'}=VALUE.")
    if name and sep in (":", "："):
        return EnvProblem(path, line, f"{shown} separates the name from the value with a colon",
                          f"Write {name}=VALUE (with =, as .env files need).")
    if name and (raw.count('"') % 2 or raw.count("'") % 2):
        return EnvProblem(path, line, f"{shown} has a quote that is never closed",
                          f"Close the quote, or remove it: {name}=VALUE.")
    if name and not sep:
        return EnvProblem(path, line, f"{name} … is not NAME=VALUE (no = after the name)",
                          f"If it is a setting, write {name}=VALUE; if not, start the line with # to make it a "
                          "comment.")
    return EnvProblem(path, line, f"{shown} is not NAME=VALUE",
                      "Write it as NAME=VALUE (letters, digits and _ in the name), or start it with # to make it a "
                      "comment.")
