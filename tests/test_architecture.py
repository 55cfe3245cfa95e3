"""The architecture contracts in pyproject.toml ([tool.importlinter]) hold, and they do catch a broken boundary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(project: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        # It reads the pyproject.toml of its working folder. No --no-logo: that option is 2.14+, the floor is 2.1.
        [str(LINT), "--no-cache"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    return project


def test_the_import_contracts_hold(tmp_path):
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_engine_module_importing_the_ui_breaks_the_contracts(tmp_path):
    project = _copy(tmp_path)
    events = project / "src" / "hfget" / "engine" / "events.py"
    events.write_text(events.read_text() + "\nfrom ..ui import progress  # a boundary broken on purpose\n")
    result = _lint(project)
    assert result.returncode != 0
    assert "hfget.engine is not allowed to import hfget.ui" in result.stdout
    assert "hfget.engine.events -> hfget.ui.progress" in result.stdout


def test_shipped_code_importing_the_simulator_breaks_the_contracts(tmp_path):
    project = _copy(tmp_path)
    cli = project / "src" / "hfget" / "download.py"
    cli.write_text(cli.read_text() + "\nfrom .testing import simrepo  # a boundary broken on purpose\n")
    result = _lint(project)
    assert result.returncode != 0
    assert "hfget.download is not allowed to import hfget.testing" in result.stdout


def test_the_readme_tree_shows_every_room_and_few_top_level_modules():
    """The Development tree in the README is the map of src/hfget: every package and top-level module is on it."""
    package = ROOT / "src" / "hfget"
    readme = (ROOT / "README.md").read_text()
    tree = readme[readme.index("```text\nsrc/hfget/"):]
    tree = tree[: tree.index("```", 3)]
    modules = sorted(p.name for p in package.glob("*.py"))
    packages = sorted(p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert len(modules) <= 12, modules  # the rest lives in packages that show the architecture
    for name in [m for m in modules if not m.startswith("__")] + [f"{p}/" for p in packages]:
        assert f"\n  {name}" in tree, f"{name} is missing from the README's Development tree"
    for sub in packages:
        for module in (package / sub).glob("*.py"):
            if module.name != "__init__.py" and sub not in ("testing",):
                assert module.name in tree, f"{sub}/{module.name} is missing from the README's Development tree"


MAX_FUNCTION_LINES = 60


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (and methods) of more than `limit` lines, decorators and docstrings included."""
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > limit:
                    found.append(f"{path.relative_to(root.parent)}:{start} {node.name} ({node.end_lineno - start + 1})")
    return found


def test_no_function_is_longer_than_a_screen():
    """Functions over 60 lines get split where it reads better (a command's options are named at module level)."""
    assert long_functions(ROOT / "src" / "hfget") == []


def test_the_length_check_sees_a_long_function(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (package / "m.py").write_text(f"@staticmethod\ndef long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(package) == ["pkg/m.py:1 long (62)"]
