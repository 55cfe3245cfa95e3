"""The progress display on narrow terminals: every row stays on one line (a wrapped row leaves its units, "MB", on a
line of their own and the next redraw writes over the wrong line), long names are cut with an ellipsis, and the
numbers are always whole."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from hfget.engine.events import FileProgress, FileStarted, TransferStarted
from hfget.ui.progress import RichProgress

NAMES = [
    "model.safetensors",
    "onnx/model.onnx",
    "checkpoints/stage-2/very-long-folder-name/model-00003-of-00017.safetensors",
    "数据/训练集/第一部分/非常长的文件名-00001.parquet",
]


def _rows(width: int) -> list[str]:
    terminal = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    progress = RichProgress(terminal)
    progress(TransferStarted(files=len(NAMES), total_bytes=213_200_000 * len(NAMES),
                             source="mirror http://mirror.internal.example.invalid:8080/a/long/path"))
    for name in NAMES:
        progress(FileStarted(name, 209_700_000))
        progress(FileProgress(name, 98_000_000))
    table = progress.progress.make_tasks_table(progress.progress.tasks)
    screen = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    screen.print(table)
    return screen.file.getvalue().rstrip("\n").split("\n")


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_every_row_fits_on_one_line_with_whole_numbers(width):
    rows = _rows(width)
    assert len(rows) == 1 + len(NAMES), rows  # one line per task: nothing wrapped
    for row in rows:
        assert Text(row).cell_len <= width, row
        assert "/" in row and "MB" in row, row  # done/total and its unit on the row itself
    if width >= 80:
        assert "model.safetensors" in rows[1]  # a common name shown whole on a standard terminal


def test_a_long_name_keeps_its_end():
    rows = _rows(80)
    long_row = next(r for r in rows if "00017.safetensors" in r)  # the file name, not the folders, survives
    assert "…" in long_row
