"""The labeling queue's pure rules (annotation/queue.py): no database, hand-checked cases."""

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from annotation import queue
from annotation.queue import Candidates, QueueItem

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("sample", "gold", "overlap", "expected"),
    [(False, False, 3, 1), (True, False, 3, 3), (False, True, 3, 3), (True, True, 3, 3), (True, False, 1, 1)],
)
def test_labels_needed_is_overlap_for_the_consistency_sample_and_gold_else_one(sample, gold, overlap, expected):
    assert queue.labels_needed(in_consistency_sample=sample, has_gold=gold, overlap=overlap) == expected


@pytest.mark.parametrize(
    ("needed", "labelled", "leased", "expected"),
    [(3, 0, 0, 3), (3, 1, 1, 1), (3, 2, 1, 0), (1, 0, 1, 0), (1, 2, 0, 0)],
)
def test_open_slots(needed, labelled, leased, expected):
    assert queue.open_slots(needed, labelled, leased) == expected


def test_a_lease_holds_until_it_expires_and_only_while_leased():
    assert queue.lease_is_live("leased", LATER, NOW)
    assert not queue.lease_is_live("leased", NOW, NOW)  # expires_at is exclusive
    assert not queue.lease_is_live("leased", EARLIER, NOW)
    assert not queue.lease_is_live("done", LATER, NOW)
    assert not queue.lease_is_live("skipped", LATER, NOW)


def test_what_keeps_an_item_from_a_labeler():
    assert not queue.blocks_labeler(None, None, NOW)
    assert not queue.blocks_labeler("leased", EARLIER, NOW)  # expired: may come back to them
    assert queue.blocks_labeler("leased", LATER, NOW)
    assert queue.blocks_labeler("done", EARLIER, NOW)
    assert queue.blocks_labeler("skipped", EARLIER, NOW)


def test_undo_window_is_inclusive_and_never_backwards():
    assert queue.undo_allowed(NOW, NOW + timedelta(seconds=30), 30)
    assert not queue.undo_allowed(NOW, NOW + timedelta(seconds=30, microseconds=1), 30)
    assert not queue.undo_allowed(NOW, NOW - timedelta(seconds=1), 30)


def test_seeded_rank_is_stable_in_range_and_depends_on_the_seed():
    ranks = [queue.seeded_rank(7, i) for i in range(1, 2001)]
    assert ranks == [queue.seeded_rank(7, i) for i in range(1, 2001)]
    assert all(0 <= r < queue.RANK_MODULUS for r in ranks)
    assert len(set(ranks)) >= 1990  # ties are possible but rare
    other_seed = [queue.seeded_rank(8, i) for i in range(1, 2001)]
    assert other_seed != ranks
    # The orders of two seeds share no structure: about half of all pairs agree, as for random orders.
    order_a = sorted(range(2000), key=ranks.__getitem__)
    order_b = sorted(range(2000), key=other_seed.__getitem__)
    position_b = {item: p for p, item in enumerate(order_b)}
    assert abs(_rank_correlation(order_a, position_b)) < 0.1


def test_seeded_rank_does_not_follow_the_id():
    ranks = [queue.seeded_rank(0, i) for i in range(1, 2001)]
    order = sorted(range(2000), key=ranks.__getitem__)
    assert abs(_rank_correlation(order, {i: i for i in range(2000)})) < 0.1
    # Consecutive ids land far apart: no runs of neighbours at the front of the queue.
    front = sorted(order[:50])
    assert sum(1 for a, b in itertools.pairwise(front) if b - a == 1) <= 2


def test_seeded_rank_matches_the_integer_formula_used_in_sql():
    a, b, c = queue.rank_coefficients(3)
    p = queue.RANK_MODULUS
    for item_id in (1, 2, 99, 10**7):
        x = (item_id * a + b) % p
        assert (item_id * a + b) < 2**63 and x * x < 2**63 and (x * x % p) * c + x < 2**63
        assert queue.seeded_rank(3, item_id) == ((x * x) % p * c + x) % p


def _rank_correlation(order, position):
    n = len(order)
    d2 = sum((i - position[item]) ** 2 for i, item in enumerate(order))
    return 1 - 6 * d2 / (n * (n * n - 1))


@pytest.mark.parametrize(
    ("candidates", "draw", "expected"),
    [
        (Candidates(prioritized=1, ranked_plain=2, ranked_gold=3), 0.5, 1),  # queue entries first
        (Candidates(prioritized=1, ranked_plain=2, ranked_gold=3), 0.05, 3),  # gold drawn
        (Candidates(ranked_plain=2, ranked_gold=3), 0.5, 2),
        (Candidates(ranked_plain=2, ranked_gold=3), 0.05, 3),
        (Candidates(ranked_gold=3), 0.5, 3),  # ordinary items used up: gold is served
        (Candidates(prioritized=1, ranked_plain=2), 0.05, 1),  # gold used up: the queue's order
        (Candidates(ranked_plain=2), 0.05, 2),
        (Candidates(), 0.05, None),
    ],
)
def test_choose_follows_the_queue_and_serves_gold_at_its_rate(candidates, draw, expected):
    assert queue.choose(candidates, gold_rate=0.1, draw=draw) == expected


def test_choose_serves_gold_at_the_configured_rate():
    rng = random.Random(0)
    both = Candidates(prioritized=1, ranked_plain=2, ranked_gold=3)
    picks = [queue.choose(both, gold_rate=0.2, draw=rng.random()) for _ in range(20_000)]
    assert picks.count(3) / len(picks) == pytest.approx(0.2, abs=0.01)
    assert queue.choose(both, gold_rate=0.0, draw=0.0) == 1  # rate 0: never
    assert queue.choose(both, gold_rate=1.0, draw=0.999) == 3  # rate 1: always, while gold lasts


def _items():
    return [
        QueueItem(id=1, rank=50),
        QueueItem(id=2, rank=10),
        QueueItem(id=3, rank=30, in_consistency_sample=True),
        QueueItem(id=4, rank=20, has_gold=True),
        QueueItem(id=5, rank=40, priority=0.5),
        QueueItem(id=6, rank=60, priority=0.9, has_gold=True),
    ]


def _next(items, labeler="u", draw=0.5, gold_rate=0.1):
    return queue.reference_next(items, labeler, now=NOW, overlap=3, gold_rate=gold_rate, draw=draw)


def test_reference_order_priority_first_then_rank():
    items = _items()
    assert _next(items) == 6  # queue entries first, by priority (0.9 beats 0.5), gold or not
    items[5].labelled_by = frozenset({"u"})
    assert _next(items) == 5
    items[4].labelled_by = frozenset({"u"})
    assert _next(items) == 2  # then the shuffled order of ordinary items: rank 10
    assert _next(items, draw=0.0) == 4  # gold drawn: the first gold item in the shuffled order


def test_reference_counts_labels_and_other_leases_against_the_slots():
    item = QueueItem(id=1, rank=1, in_consistency_sample=True, labelled_by=frozenset({"a", "b"}))
    assert _next([item]) == 1  # 2 of 3 slots taken
    item.assignments = {"c": ("leased", LATER)}
    assert _next([item]) is None  # the last slot is leased to c
    item.assignments = {"c": ("leased", EARLIER)}
    assert _next([item]) == 1  # c's lease ran out
    item.assignments = {"c": ("skipped", LATER)}
    assert _next([item]) == 1  # a skip holds no slot
    plain = QueueItem(id=2, rank=2, labelled_by=frozenset({"a"}))
    assert _next([plain]) is None  # an ordinary item needs one label


def test_reference_never_serves_an_item_twice_to_the_same_labeler():
    item = QueueItem(id=1, rank=1, in_consistency_sample=True)
    for status, expires in [("done", EARLIER), ("skipped", EARLIER), ("leased", LATER)]:
        item.assignments = {"u": (status, expires)}
        assert _next([item]) is None
    item.assignments = {"u": ("leased", EARLIER)}  # their own lease ran out: it may come back
    assert _next([item]) == 1
    item.assignments = {}
    item.labelled_by = frozenset({"u"})
    assert _next([item]) is None
