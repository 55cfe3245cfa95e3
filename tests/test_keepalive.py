"""Many small files over few connections: keep-alive through the hub's redirect, and a cap per host that holds.

Connections are counted where they arrive: a loopback TCP forwarder in front of the simulator counts every
connection it accepts (no mocking of the client). The simulator answers each small file's resolve URL like today's
hub, with a relative 307 to /api/resolve-cache on the same origin.
"""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest

from hfget.engine.governor import ConnectionGovernor
from hfget.testing.hubsim import HubSimulator
from hfget.testing.simrepo import SimRepo, blob_file

from support import LoopbackServer, expected_files

REPO = "hfget-demo/many-small"
FILES = 120


class CountingForwarder(LoopbackServer):
    """Accepts on a loopback port and pipes each connection to `target`; `accepted` counts the connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        super().__init__(backlog=256)

    def handle(self, client: socket.socket) -> None:
        upstream = self.hold(socket.create_connection(self.target))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture(scope="module")
def many_small():
    repo = SimRepo(REPO)
    repo.commit([blob_file(f"data/{i // 40}/item-{i:03d}.json", 500 + 97 * i, seed=1000 + i, lfs=False)
                 for i in range(FILES)])
    sim = HubSimulator([repo])
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def hub(many_small):
    many_small.clear_log()
    forwarder = CountingForwarder(("127.0.0.1", int(many_small.url.rsplit(":", 1)[1])))
    yield forwarder
    forwarder.close()


def _download(cli, hub, cache, *flags: str):
    return cli("download", REPO, "--endpoint", hub.url, "--source", "mirror", "--cache-dir", cache, "--quiet", *flags)


def _landed(cache) -> dict[str, str]:
    snapshot = next((cache / f"models--{REPO.replace('/', '--')}" / "snapshots").iterdir())
    return {p.relative_to(snapshot).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in snapshot.rglob("*") if p.is_file()}


@pytest.mark.parametrize("cap", [1, 3])
def test_small_files_never_use_more_connections_than_the_cap(many_small, hub, cache, cli, cap):
    # More files and connections wanted than the cap allows: only the cap decides how many connections open.
    result = _download(cli, hub, cache, "--max-per-host", str(cap), "--connections", "16", "--max-workers", "16")
    assert result.exit_code == 0, result.output
    assert _landed(cache) == expected_files(many_small, REPO)
    resolves = [r for r in many_small.log if "/resolve/" in r.path]
    assert len(resolves) == FILES and all(r.status == 307 for r in resolves)  # each went through the redirect
    assert 1 <= hub.accepted <= cap


def test_the_redirect_is_followed_on_the_same_connection(many_small, hub, cache, cli):
    # One connection for everything: the revision, the tree, and per file the 307 and the file it points to.
    result = _download(cli, hub, cache, "--max-per-host", "1")
    assert result.exit_code == 0, result.output
    assert hub.accepted == 1
    assert len([r for r in many_small.log if "/api/resolve-cache/" in r.path]) == FILES


def test_a_bad_cap_is_a_usage_error_before_any_traffic(many_small, hub, cache, cli):
    result = _download(cli, hub, cache, "--max-per-host", "0")
    assert result.exit_code == 2 and "max per host" in result.output
    assert hub.accepted == 0


def _drive_small_files(governor: ConnectionGovernor, first_byte: float | None, seconds: float = 3.0) -> None:
    """Many small files from a distant server: each connection waits `first_byte` per file and is quiet meanwhile
    (so every window has quiet connections), and bytes grow with the files in flight."""
    now, received = 0.0, 0.0
    while now < seconds:
        governor.tick(now, int(received), busy=governor.limit, cpu=0.0, quiet=governor.limit // 2,
                      first_byte=first_byte)
        received += 20_000 * governor.limit / 0.2 * 0.05  # 20 KB per file, a file per 0.2 s per connection
        now += 0.05


def test_the_governor_opens_up_when_small_files_wait_on_round_trips():
    distant = ConnectionGovernor(budget=64, floor=2)
    _drive_small_files(distant, first_byte=0.2)
    assert distant.limit == 64 and distant.latency_bound
    # Without a measured wait (or with a server that holds requests for seconds), quiet connections keep the scout
    # where it is: that is what protects a caching mirror from a pile of held requests.
    for first_byte in (None, 2.0):
        unknown = ConnectionGovernor(budget=64, floor=2)
        _drive_small_files(unknown, first_byte=first_byte)
        assert unknown.limit == 2


def test_small_files_from_a_near_server_get_no_more_connections_than_pay():
    # Answers at once, and the rate hardly grows with connections (this machine's CPU is the limit): no jump to the
    # budget, whatever the CPU share says (other programs may be taking the cores).
    near = ConnectionGovernor(budget=64, floor=2)
    now, received = 0.0, 0.0
    while now < 3.0:
        near.tick(now, int(received), busy=near.limit, cpu=0.0, first_byte=0.001)
        received += 8_000_000 * (1 + 0.05 * near.limit) * 0.05
        now += 0.05
    assert near.limit <= 4 and max(limit for _, limit, _ in near.history) <= 4
