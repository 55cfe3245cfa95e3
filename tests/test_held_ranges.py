"""A mirror that holds ranges (olah, online): it fetches each block upstream once and holds every other request on
that block until it is saved, and stalls altogether when too many are held. Several default hfget clients at once,
on a file of several blocks, must all succeed without making it fetch a block twice, the way several `hf download`
(one stream per file) do. (test_team_mirror.py has the team's setup around olah; this is about its ranges.)

Two servers: the simulator with its `block_cache` knob (fast, deterministic: small blocks, a slow upstream, and the
starvation olah shows when too many requests are held), and the real olah (PyPI) in front of the simulator."""

from __future__ import annotations

import pytest

from hfget.testing.hubsim import BlockCache, HubSimulator
from hfget.testing.simrepo import SimRepo, blob_file, text_file
from support import expected_files, hfget_process, official_offline_load

from olah_server import olah_factory  # noqa: F401  (a fixture)

MIB = 1 << 20
TEAM = "team/big-model"


def _repo(size: int) -> SimRepo:
    repo = SimRepo(TEAM)
    repo.commit([text_file("config.json", '{"model_type": "big"}\n'), blob_file("model.safetensors", size, seed=51)])
    return repo


def _repo_bytes(sim: HubSimulator) -> int:
    repo = sim.repo(TEAM)
    return sum(f.size for f in repo.commits[repo.refs["main"]].values())


def _three_clients(endpoint: str, tmp_path, **env: str) -> list[tuple[int, str]]:
    """Three default `hfget download` at once, each into its own cache; returns (exit code, stderr) of each."""
    clients = [hfget_process("download", TEAM, "--endpoint", endpoint, "--cache-dir", tmp_path / f"cache{i}", env=env)
               for i in range(3)]
    outcomes = []
    for client in clients:
        _, err = client.communicate(timeout=600)
        outcomes.append((client.returncode, err))
    return outcomes


def _check_caches(sim: HubSimulator, tmp_path, outcomes) -> None:
    for i, (code, err) in enumerate(outcomes):
        assert code == 0, err
        assert official_offline_load(tmp_path / f"cache{i}", TEAM)["files"] == expected_files(sim, TEAM)


def test_three_clients_through_a_mirror_that_holds_ranges(tmp_path):
    # 2 MiB blocks at 0.8 MB/s: each takes 2.6 s upstream, long enough for a held range to show; 8 held requests
    # starve it, as 40 do olah (its thread pool).
    with HubSimulator([_repo(8 * MIB + 4321)]) as sim:
        sim.block_cache = BlockCache(2 * MIB, upstream_rate=800_000, starve_at=8)
        # A short read timeout so that, were the mirror starved, the test would not wait 30 s for each stall.
        outcomes = _three_clients(sim.url, tmp_path, HFGET_READ_TIMEOUT="6")
        _check_caches(sim, tmp_path, outcomes)
        assert sim.block_cache.fetched <= 1.2 * _repo_bytes(sim), "a block was fetched upstream twice"
        assert not any("retry" in err or "FAILED" in err for _, err in outcomes)


@pytest.mark.interop
@pytest.mark.timeout(900)  # the first run builds olah's venv (about a minute)
def test_three_default_clients_through_a_cold_real_olah_on_a_file_of_two_blocks(olah_factory, tmp_path):
    # Upstream at 20 MB/s per connection (olah fetches a 64 MiB block in 3.4 s), as a team mirror's internet link.
    with HubSimulator([_repo(100 * MIB + 123)]) as sim:
        olah = olah_factory(upstream=sim.url)
        sim.clear_log()  # olah's start-up request upstream
        sim.rate_limit = 20_000_000
        outcomes = _three_clients(olah.url, tmp_path)
        _check_caches(sim, tmp_path, outcomes)
        upstream = sim.body_bytes_served("/cdn/*") + sim.body_bytes_served("/api/resolve-cache/*")
        assert upstream <= 1.2 * _repo_bytes(sim), [(r.range, r.body_bytes) for r in sim.requests_for("/cdn/*")]
        assert not any("retry" in err or "FAILED" in err for _, err in outcomes)
