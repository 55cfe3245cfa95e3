"""The fixtures every test uses: an isolated environment, the shared hub simulator, a cache folder, the CLI.
What tests share besides fixtures lives in the `support` package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hfget.cli import app
from hfget.testing.hubsim import HubSimulator, SimUser
from hfget.testing.simrepo import demo_repos

from support import GATED_TOKEN, VALID_TOKEN, cdn_on_another_host, closed_port
from support.servers import release_held_ports

# Every variable hfget, huggingface_hub, modelscope or requests would read from the environment.
_ISOLATE_PREFIXES = ("HF_", "HUGGINGFACE_", "HFGET_", "MODELSCOPE_", "XDG_")


_ISOLATE_NAMES = {
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "USE_MODELSCOPE", "DEFAULT_MODEL",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
    # The terminal's size: exported by some shells and by pytest-xdist's workers (80x24); output into a pipe is
    # then wrapped at 80. Tests that care about the width set it themselves.
    "COLUMNS", "LINES",
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point HOME, every cache and the working directory into tmp_path; clear every setting from the env."""
    for name in list(os.environ):
        if name.startswith(_ISOLATE_PREFIXES) or name.upper() in _ISOLATE_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # The default sources must never reach the internet from a test: the official hub and ModelScope become closed
    # loopback ports (connection refused at once) and there are no known public mirrors. Tests that need them up
    # point these settings at the simulator.
    monkeypatch.setenv("HFGET_OFFICIAL_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HFGET_KNOWN_MIRRORS", "")
    monkeypatch.chdir(work)
    for parent in work.parents:
        assert not (parent / ".env").exists(), f"a stray {parent / '.env'} would leak into the tests"
    return tmp_path


@pytest.fixture(scope="session")
def _session_sim():
    sim = HubSimulator(
        demo_repos(large_mb=6),
        users=[
            SimUser(VALID_TOKEN, "alice", orgs=("hfget-demo",)),
            SimUser(GATED_TOKEN, "bob", gated_access=frozenset({"hfget-demo/gated-model"})),
        ],
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(_session_sim):
    """The shared simulator, with faults and the request log cleared for each test."""
    _session_sim.clear_faults()
    _session_sim.clear_log()
    _session_sim.tree_page_size = 1000
    _session_sim.rate_limit = 0
    _session_sim.cdn_base = None
    _session_sim.link_ttl = None
    _session_sim.link_per_range = False
    _session_sim.block_cache = None
    yield _session_sim
    _session_sim.clear_faults()


@pytest.fixture
def sim_cdn_elsewhere(sim):
    """The simulator with its CDN named as another host (cdn_on_another_host), for a test that runs huggingface_hub."""
    with cdn_on_another_host(sim):
        yield sim


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hub-cache"


@pytest.fixture
def cli():
    """Run `hfget ARGS...` in-process; returns click's Result (stdout, stderr, exit_code)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)

    return run


@pytest.fixture(autouse=True)
def _release_held_ports():
    """The ports `closed_port` held for a test are let go when it ends."""
    yield
    release_held_ports()
