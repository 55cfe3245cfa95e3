"""README.zh-CN.md is the whole README in Simplified Chinese, and stays in step with README.md.

Prose is translated, so it cannot be compared; everything a reader copies or looks up can: the same sections in
the same order (level, and any command in the heading), the same code blocks (commands identical; only `#`
comments in shell, Python and TOML blocks, and the descriptions in the source tree, may be translated; program output
identical), the same tables with the same
first column, the same inline code (commands, options, variables, paths), the same links. And every section that
has prose in English has Chinese prose.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EN = (ROOT / "README.md").read_text(encoding="utf-8")
ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CJK = re.compile(r"[\u4e00-\u9fff]")


def _without_code(text: str) -> str:
    return FENCE.sub("", text)


def _headings(text: str) -> list[tuple[int, list[str]]]:
    found = re.findall(r"^(#{1,6}) (.*)$", _without_code(text), re.MULTILINE)
    return [(len(hashes), re.findall(r"`([^`]+)`", title)) for hashes, title in found]


def _sections(text: str) -> list[str]:
    return re.split(r"^#{1,6} .*$", _without_code(text), flags=re.MULTILINE)


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for lang, body in FENCE.findall(text):
        lines = body.splitlines()
        if lang in ("bash", "python", "toml"):  # comments may be translated; the code may not
            lines = [re.sub(r"\s+#(?: .*)?$", "", line).rstrip() for line in lines if not line.lstrip().startswith("#")]
        elif lines and lines[0] == "src/hfget/":  # the source tree: the names, not their descriptions
            lines = [line.split()[0] for line in lines if line.strip() and not line.startswith("   ")]
        out.append((lang, lines))
    return out


def _inline_code(text: str) -> set[str]:
    # A code span may wrap onto the next line (Markdown joins it with a space): compare it joined.
    return {re.sub(r"\s+", " ", span) for span in re.findall(r"`([^`]+)`", _without_code(text))}


def _tables(text: str) -> list[list[str]]:
    """Each table's first column, below its (translated) header row."""
    tables, current = [], []
    for line in _without_code(text).splitlines() + [""]:
        if line.startswith("|"):
            current.append(line.split("|")[1].strip())
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def _links(text: str) -> list[str]:
    """Link targets and bare URLs, but the two READMEs' links to each other."""
    found = re.findall(r"\]\(([^)]+)\)", _without_code(text)) + re.findall(r"https?://[^\s`)>\]]+", text)
    return sorted(link for link in found if link not in ("README.md", "README.zh-CN.md"))


def test_each_readme_links_to_the_other_at_the_top():
    assert "[简体中文](README.zh-CN.md)" in "\n".join(EN.splitlines()[:5])
    assert "[English](README.md)" in "\n".join(ZH.splitlines()[:5])


def test_same_sections_in_the_same_order():
    assert _headings(ZH) == _headings(EN)


def test_same_code_blocks():
    en, zh = _blocks(EN), _blocks(ZH)
    assert len(zh) == len(en)
    for i, (a, b) in enumerate(zip(en, zh)):
        assert a == b, f"code block {i + 1} differs"


def test_same_tables_with_the_same_first_column():
    assert _tables(ZH) == _tables(EN)


def test_same_inline_code_and_links():
    assert sorted(_inline_code(EN) - _inline_code(ZH)) == []
    assert sorted(_inline_code(ZH) - _inline_code(EN)) == []
    assert _links(ZH) == _links(EN)


@pytest.mark.parametrize("index", range(len(_sections(EN))))
def test_each_section_names_the_same_things(index):
    """Section by section, the same inline code: a paragraph that went missing or moved shows here."""
    assert _inline_code(_sections(ZH)[index]) == _inline_code(_sections(EN)[index])


@pytest.mark.parametrize("index", range(len(_sections(EN))))
def test_every_section_with_prose_is_translated(index):
    en, zh = _sections(EN)[index], _sections(ZH)[index]
    prose_en = re.sub(r"`[^`]*`|\|.*|\s", "", en)
    if len(prose_en) > 40:  # a section with sentences, not only a table or a block
        assert len(CJK.findall(zh)) > len(prose_en) / 8, f"section {index} looks untranslated: {zh[:200]!r}"
        assert len(re.findall(r"\b(?:the|and|with|which)\b", re.sub(r"`[^`]*`", "", zh))) < 3, \
            f"section {index} still has English prose: {zh[:200]!r}"
