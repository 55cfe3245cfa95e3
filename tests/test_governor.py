"""The connection governor against modelled links: it must find the number of connections that pays."""

from __future__ import annotations

import pytest

from hfget.engine.governor import ConnectionGovernor

MB = 1_000_000


def _drive(governor: ConnectionGovernor, rate_of, seconds: float = 6.0, cores_of=None) -> list[int]:
    """Tick every 50 ms with every allowed connection busy; bytes arrive at rate_of(limit), and the process uses
    cores_of(limit) CPU cores (not reported when None)."""
    now, received, cpu, limits = 0.0, 0.0, 0.0, []
    while now < seconds:
        limit = governor.tick(now, int(received), busy=governor.limit, cpu=cpu if cores_of else None)
        limits.append(limit)
        received += rate_of(limit) * 0.05
        cpu += (cores_of(limit) if cores_of else 0.0) * 0.05
        now += 0.05
    return limits


def test_a_mirror_throttling_each_connection_gets_the_whole_budget_at_once():
    governor = ConnectionGovernor(budget=64, floor=2)
    limits = _drive(governor, lambda n: 8 * MB * n)
    assert limits[0] == 2 and governor.limit == 64
    assert limits.index(64) * 0.05 < 0.5  # one scout window, then the whole budget


def test_a_fast_link_keeps_few_connections():
    governor = ConnectionGovernor(budget=64, floor=2)
    limits = _drive(governor, lambda n: 400 * MB * (1 - 0.005 * n))  # flat, slightly worse with more threads
    assert governor.limit == 2 and max(limits) <= 4  # one probe upwards, which did not pay


def test_it_sheds_connections_beyond_the_point_where_they_stop_paying():
    governor = ConnectionGovernor(budget=64, floor=2)
    _drive(governor, lambda n: 10 * MB * min(n, 32))  # slow connections, but the link saturates at 32 of them
    assert governor.limit == 32


def test_fast_connections_are_added_while_they_pay():
    governor = ConnectionGovernor(budget=64, floor=2)
    _drive(governor, lambda n: 100 * MB * min(n, 8))  # 100 MB/s each, up to a link of 800 MB/s
    assert governor.limit == 8


def test_windows_where_the_limit_was_not_binding_teach_nothing():
    governor = ConnectionGovernor(budget=64, floor=2)
    now = 0.0
    for _ in range(100):  # only 1 connection has work: the tail of a download
        governor.tick(now, int(now * 30 * MB), busy=1)
        now += 0.05
    assert governor.limit == 2 and not governor.history


@pytest.mark.parametrize("budget", [1, 4])
def test_the_limit_never_leaves_the_budget_and_floor(budget):
    governor = ConnectionGovernor(budget=budget, floor=2)
    limits = _drive(governor, lambda n: 8 * MB * n)
    assert all(1 <= limit <= budget for limit in limits)


def test_slow_connections_that_more_connections_do_not_speed_up_go_back_to_the_scout():
    governor = ConnectionGovernor(budget=8, floor=2)
    _drive(governor, lambda n: 16 * MB / (1 + 0.05 * n))  # many small files on a busy machine: more is worse
    assert governor.limit == 2


def test_slow_connections_on_a_busy_cpu_are_not_multiplied_at_once():
    # Many small files on a fast link: each connection moves few bytes (requests, renames, links), but the machine
    # is already busy with two; the whole budget would only queue threads. At most one doubling is tried.
    governor = ConnectionGovernor(budget=64, floor=2)
    limits = _drive(governor, lambda n: 12 * MB / (1 + 0.05 * n), cores_of=lambda n: 1.0)
    assert max(limits) <= 4 and governor.limit == 2


def test_slow_connections_on_an_idle_cpu_still_get_the_whole_budget():
    governor = ConnectionGovernor(budget=64, floor=2)
    limits = _drive(governor, lambda n: 8 * MB * n, cores_of=lambda n: 0.02 * n)  # a throttling mirror
    assert governor.limit == 64 and limits.index(64) * 0.05 < 0.5
