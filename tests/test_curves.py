"""fitness.curves: the curve pipe's two ends and the prune rule, in-process."""

from __future__ import annotations

import os

import pytest

from fitness.curves import POINTS, PruneRule, Reader, Writer, loss_at, mean_loss


def test_writer_sends_one_mean_point_per_stretch_of_the_budget_and_reader_takes_them():
    read, write = os.pipe()
    writer = Writer(write)
    for i in range(10 * POINTS):
        writer.add(i / (10 * POINTS), 5.0 - i / (10 * POINTS))
    writer.flush()
    os.close(write)
    reader, data = Reader(), b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    reader.feed(data[:37])  # lines split anywhere still parse
    reader.feed(data[37:])
    curve = reader.curve()
    assert len(curve) == POINTS
    assert curve[0][0] == pytest.approx(0.00225, abs=1e-5) and curve[0][1] == pytest.approx(4.99775, abs=1e-4)
    assert [p for p, _ in curve] == sorted(p for p, _ in curve)


def test_reader_drops_malformed_backwards_and_excess_points():
    reader = Reader()
    reader.feed(b"0.2 3.0\nnan 1\n0.1 2.0\n1.5 2.0\nx y\n0.3 inf\n0.4 2.5 9\n0.5 2.0\n")
    assert reader.curve() == ((0.2, 3.0), (0.5, 2.0))
    reader.feed(b"".join(b"0.9 1.0\n" for _ in range(2 * POINTS)))
    assert len(reader.curve()) == POINTS


def test_loss_at_interpolates_inside_the_curve_only():
    curve = ((0.1, 4.0), (0.3, 2.0))
    assert loss_at(curve, 0.2) == pytest.approx(3.0)
    assert loss_at(curve, 0.05) is None and loss_at(curve, 0.5) is None
    assert mean_loss(curve, 0.0, 0.2) == 4.0 and mean_loss(curve, 0.5, 0.6) is None


def test_prune_rule_waits_for_its_point_then_compares_window_means():
    parent = tuple((i / 10, 3.0) for i in range(11))
    rule = PruneRule(parent, at=0.4, margin=0.1, window=0.2)
    early = ((0.1, 9.0), (0.3, 9.0))
    assert rule.verdict(early) == ""  # not yet at 40%
    assert "trails its parent's 3.000" in rule.verdict((*early, (0.4, 3.2)))
    assert rule.verdict(((0.2, 3.05), (0.3, 3.05), (0.4, 3.05))) == ""  # within the margin
    assert PruneRule((), at=0.4).verdict(early + ((0.5, 9.0),)) == ""  # no parent curve: never pruned


def test_prune_rule_round_trips_and_refuses_a_window_past_its_point():
    rule = PruneRule(((0.1, 2.0), (0.5, 1.0)), at=0.5, margin=0.02, window=0.2)
    assert PruneRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(ValueError, match="at=0.1 window=0.2"):
        PruneRule((), at=0.1, window=0.2)
