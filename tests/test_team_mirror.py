"""olah as a lab's team mirror, with default hfget clients pointed at it by the team's `.env` (README "For teams").

The mirror is the real olah (PyPI), run from its own venv. Each client is `hfget download` in its own process with its
own HOME (its own default cache), as on separate machines of one lab; the only setting is `HF_ENDPOINT` in the
`.env` of the project folder they run in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfget.testing.simrepo import demo_repos
from support import MODEL, official_offline_load

from olah_server import make_mirror_repo, olah_factory  # noqa: F401  (a fixture)

CLIENTS = 3

pytestmark = pytest.mark.interop


def _team_folder(tmp_path: Path, endpoint: str) -> Path:
    """A project folder with the team's `.env`: the lab's mirror, nothing else."""
    folder = tmp_path / "team-project"
    folder.mkdir(exist_ok=True)
    (folder / ".env").write_text(f"# the lab's olah\nHF_ENDPOINT={endpoint}\n")
    return folder


def _clients(folder: Path, tmp_path: Path, *args: str, n: int = CLIENTS) -> list[tuple[Path, subprocess.CompletedProcess]]:
    """`n` default hfget clients at once, each with its own HOME; returns (their hub cache, the finished process)."""
    running = []
    for i in range(n):
        home = tmp_path / f"user{i}"
        home.mkdir(exist_ok=True)
        env = {**os.environ, "HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-m", "hfget", "download", *args], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running.append((home / ".cache" / "huggingface" / "hub", proc))
    done = []
    for cache, proc in running:
        out, err = proc.communicate(timeout=180)
        done.append((cache, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    return done


def _demo_model():
    (model, *_) = demo_repos(large_mb=6)
    return model


def test_three_default_clients_through_an_offline_olah_serving_a_local_git_repo(olah_factory, tmp_path):
    model = _demo_model()
    mirror = tmp_path / "mirror"
    commits = {}
    for ref in ("v1.0", "main"):  # v1.0 first (tagged), then main: the git history of the lab's copy
        files = model.commits[model.refs[ref]]
        commits[ref] = make_mirror_repo(mirror, MODEL, {p: f.content.all_bytes() for p, f in files.items()},
                                        lfs={p for p, f in files.items() if f.lfs}, tag="v1.0" if ref == "v1.0" else None)
    olah = olah_factory(mirrors=[mirror], offline=True)
    folder = _team_folder(tmp_path, olah.url)

    for cache, done in _clients(folder, tmp_path, MODEL):
        assert done.returncode == 0, done.stderr
        assert f"from mirror ({olah.url})" in done.stdout
        loaded = official_offline_load(cache, MODEL)
        assert loaded["files"] == {p: f.content.sha256 for p, f in model.commits[model.refs["main"]].items()}
        assert Path(loaded["path"]).name == commits["main"]
    # olah's git-mirror route ignores Range (200, chunked, the whole file): each client took each file in one
    # request instead of opening several ranged ones that would each get the whole file.
    weights = [r for r in olah.client_requests() if r.method == "GET" and r.target.endswith("/model.safetensors")]
    assert len(weights) == CLIENTS and {r.status for r in weights} == {200}
    # A tag of the lab's repo works as a revision too.
    ((cache, done),) = _clients(folder, tmp_path, MODEL, "--revision", "v1.0", n=1)
    assert done.returncode == 0, done.stderr
    assert official_offline_load(cache, MODEL, "v1.0")["files"] == {
        p: f.content.sha256 for p, f in model.commits[model.refs["v1.0"]].items()}
    assert olah.upstream_calls() == []  # offline: olah never left the machine


def test_three_default_clients_through_a_cold_online_olah_move_each_byte_upstream_about_once(sim, olah_factory,
                                                                                            tmp_path):
    olah = olah_factory(upstream=sim.url)
    sim.clear_log()  # olah's start-up check of the upstream
    folder = _team_folder(tmp_path, olah.url)
    main = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]
    repo_bytes = sum(f.size for f in main.values())

    for cache, done in _clients(folder, tmp_path, MODEL):
        assert done.returncode == 0, done.stderr
        assert f"from mirror ({olah.url})" in done.stdout
        assert official_offline_load(cache, MODEL)["files"] == {p: f.content.sha256 for p, f in main.items()}
    upstream = sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*")
    assert repo_bytes <= upstream <= 1.2 * repo_bytes, (upstream, repo_bytes)
    # Nothing reached the upstream but through olah (the clients only know the mirror, and the hub is blocked).
    assert {r.headers.get("user-agent", "").split("/")[0] for r in sim.requests_for("*")} == {"python-httpx"}


def test_when_the_team_mirror_is_down_hfget_falls_back_to_the_public_routes_and_says_so(sim, olah_factory, tmp_path,
                                                                                        monkeypatch):
    olah = olah_factory(upstream=sim.url)
    folder = _team_folder(tmp_path, olah.url)
    olah.stop()  # the lab's mirror is down today; huggingface.co (played by the simulator) is reachable
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", sim.url)
    ((cache, done),) = _clients(folder, tmp_path, MODEL, n=1)
    assert done.returncode == 0, done.stderr
    assert f"from hub ({sim.url})" in done.stdout
    # The "Sources tried" table: the team mirror first, skipped as unreachable, then the hub that served it.
    row = next(line for line in done.stdout.splitlines() if olah.url in line)
    assert row.split()[0] == "mirror" and "skipped" in row and "unreachable: Connection" in done.stdout
    main = sim.repo(MODEL).commits[sim.repo(MODEL).refs["main"]]
    assert official_offline_load(cache, MODEL)["files"] == {p: f.content.sha256 for p, f in main.items()}
