"""Byte-range bookkeeping and the resume state file, without any network."""

from __future__ import annotations

import json

from hfget.engine.resume_state import StateWriter, load_done, pending_bytes, state_path
from hfget.engine.segments import IntervalSet, PieceSizes, SegmentPlan

MIB = 1 << 20


def test_interval_set_merges_and_finds_gaps():
    done = IntervalSet([(10, 20), (30, 40)])
    done.add(20, 30)  # touching ranges merge
    assert done.ranges() == [(10, 40)]
    done.add(50, 60)
    done.add(0, 5)
    assert done.gaps(0, 70) == [(5, 10), (40, 50), (60, 70)]
    assert done.total == 5 + 30 + 10 and done.run_end(12) == 40 and done.run_end(45) == 45
    done.remove(15, 55)
    assert done.ranges() == [(0, 5), (10, 15), (55, 60)]
    assert done.clipped(12).ranges() == [(0, 5), (10, 12)]


def test_pieces_go_out_in_order_and_shrink_towards_the_end():
    plan = SegmentPlan(64 * MIB, IntervalSet(), PieceSizes(min_piece=1 * MIB, max_piece=8 * MIB))
    pieces = [plan.next_piece(connections=2) for _ in range(12)]
    starts = [p.start for p in pieces if p]
    assert starts == sorted(starts) and starts[0] == 0
    sizes = [p.end - p.start for p in pieces if p]
    assert sizes[0] == 8 * MIB and sizes[-1] < sizes[0]
    assert sum(sizes) + plan.free.total == 64 * MIB


def test_only_missing_bytes_are_handed_out():
    done = IntervalSet([(0, 3 * MIB), (5 * MIB, 6 * MIB)])
    plan = SegmentPlan(8 * MIB, done, PieceSizes(min_piece=1 * MIB))
    fetched = []
    while (piece := plan.next_piece(connections=4)) is not None:
        fetched.append((piece.start, piece.end))
    assert IntervalSet(fetched).ranges() == [(3 * MIB, 5 * MIB), (6 * MIB, 8 * MIB)]


def test_a_slow_segment_gives_half_its_rest_to_a_thief_and_a_fast_one_does_not():
    sizes = PieceSizes(min_piece=4 * MIB, max_piece=4 * MIB, min_steal=256 * 1024, min_steal_seconds=0.25)
    plan = SegmentPlan(8 * MIB, IntervalSet(), sizes)
    slow, fast = plan.next_piece(1, now=0.0), plan.next_piece(1, now=0.0)
    plan.claim(slow, 100_000)  # 100 kB in 1 s: 40 s to go
    plan.claim(fast, 4 * MIB - 1_000_000)  # nearly done: well under a second to go
    thief = plan.steal(now=1.0)
    assert thief is not None and thief.end == 4 * MIB and slow.end == thief.start
    assert thief.start == 100_000 + (4 * MIB - 100_000) // 2
    plan.release(slow)  # the slow one stops: what it claimed is not written, so it is free again
    assert plan.free.ranges() == [(0, thief.start)]


def test_state_round_trip_and_rejection(tmp_path):
    partial = tmp_path / "abc.incomplete"
    partial.write_bytes(b"x" * 300)
    writer = StateWriter(partial, 1000, "sha256", "abc")
    writer.save(*writer.snapshot(IntervalSet([(0, 100), (200, 300)])))
    writer.save(*writer.snapshot(IntervalSet([(0, 50)])))  # a shorter text: the file is padded, still JSON
    assert json.loads(state_path(partial).read_text())["done"] == [[0, 50]]
    writer.save(*writer.snapshot(IntervalSet([(0, 100), (200, 300)])))
    writer.close()
    done, stateful = load_done(partial, 1000, "sha256", "abc")
    assert stateful and done.ranges() == [(0, 100), (200, 300)]
    assert pending_bytes(partial, 1000, "sha256", "abc") == 800
    # The same partial claimed for another file (other size or hash) is not trusted, and is removed.
    assert pending_bytes(partial, 1001, "sha256", "abc") == 1001
    done, stateful = load_done(partial, 1000, "sha256", "other")
    assert not done and not stateful
    assert not partial.exists() and not state_path(partial).exists()


def test_a_partial_without_state_is_a_prefix(tmp_path):
    partial = tmp_path / "abc.incomplete"
    partial.write_bytes(b"x" * 300)
    done, stateful = load_done(partial, 1000, "sha256", "abc")
    assert not stateful and done.ranges() == [(0, 300)]
    partial.write_bytes(b"x" * 1200)  # longer than the file: cannot be a prefix of it
    done, _ = load_done(partial, 1000, "sha256", "abc")
    assert not done and not partial.exists()
