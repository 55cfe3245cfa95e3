"""The floors in pyproject.toml and the pins of .ci/constraints-min.txt (what `make test-min` installs) agree.

A floor is only worth what runs on it: `make test-min` runs the suite on exactly these versions, so a floor raised or
lowered in pyproject.toml without the constraints file (or the reverse) would leave a version nothing tests.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / ".ci" / "constraints-min.txt"


def floors(pyproject: str) -> dict[str, str]:
    """Each runtime and `test` dependency's floor (the version of its >=), by normalized name."""
    project = tomllib.loads(pyproject)["project"]
    found = {}
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        lows = [spec.version for spec in req.specifier if spec.operator == ">="]
        found[canonicalize_name(req.name)] = lows[0] if len(lows) == 1 else f"no single >= floor in {line!r}"
    return found


def pins(constraints: str) -> dict[str, str]:
    """name -> version of each `name==version` line (comments and blank lines aside)."""
    found = {}
    for line in constraints.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            found[canonicalize_name(name.strip())] = version.strip() if sep else f"not pinned with ==: {line!r}"
    return found


def same(a: str | None, b: str) -> bool:
    """Equal as versions (3.12 is 3.12.0); the sentences floors() and pins() put for a malformed line never are."""
    try:
        return a is not None and Version(a) == Version(b)
    except InvalidVersion:
        return False


def drift(pyproject: str, constraints: str) -> list[str]:
    """Every way the two files disagree, one sentence each; empty when each floor is pinned and nothing else is."""
    want, have = floors(pyproject), pins(constraints)
    problems = [f"{name}: floor {low} in pyproject.toml, {have.get(name, 'missing')} in constraints-min.txt"
                for name, low in sorted(want.items()) if not same(have.get(name), low)]
    problems += [f"{name}=={version} is pinned but is no dependency of hfget" for name, version in sorted(have.items())
                 if name not in want]
    return problems


def test_every_floor_is_pinned_in_the_min_constraints():
    assert drift((ROOT / "pyproject.toml").read_text(), CONSTRAINTS.read_text()) == []


def test_a_floor_raised_without_its_pin_is_caught():
    pyproject = (ROOT / "pyproject.toml").read_text()
    raised = pyproject.replace('"rich>=13.7"', '"rich>=14"')
    assert raised != pyproject
    assert drift(raised, CONSTRAINTS.read_text()) == ["rich: floor 14 in pyproject.toml, 13.7.0 in constraints-min.txt"]


def test_a_pin_without_a_dependency_and_a_missing_pin_are_caught():
    constraints = CONSTRAINTS.read_text().replace("filelock==", "flock==")
    assert drift((ROOT / "pyproject.toml").read_text(), constraints) == [
        "filelock: floor 3.28 in pyproject.toml, missing in constraints-min.txt",
        "flock==3.28.0 is pinned but is no dependency of hfget",
    ]


@pytest.mark.skipif(not os.environ.get("HFGET_TEST_MIN_VERSIONS"), reason="only under `make test-min`")
def test_make_test_min_runs_on_the_floors():
    """Under `make test-min` each dependency installed is the pinned floor: pip honoured every line."""
    wrong = {name: metadata.version(name) for name, pin in pins(CONSTRAINTS.read_text()).items()
             if not same(metadata.version(name), pin)}
    assert wrong == {}
