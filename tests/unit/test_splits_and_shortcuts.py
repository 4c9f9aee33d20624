from collections import Counter

import pytest

from annotation.services.projects import assign_shortcuts
from annotation.splits import draw_consistency_sample, draw_split, uniform_draw

FRACTIONS = {"train": 0.7, "dev": 0.2, "test": 0.1}


def test_split_is_a_function_of_seed_and_id_only():
    ids = [f"item-{i}" for i in range(500)]
    forward = [draw_split(i, 7, FRACTIONS) for i in ids]
    backward = [draw_split(i, 7, FRACTIONS) for i in reversed(ids)]
    assert forward == backward[::-1]
    assert forward != [draw_split(i, 8, FRACTIONS) for i in ids]


def test_split_shares_follow_the_fractions():
    counts = Counter(draw_split(f"x{i}", 0, FRACTIONS) for i in range(20_000))
    for name, share in FRACTIONS.items():
        assert counts[name] / 20_000 == pytest.approx(share, abs=0.015)


def test_zero_fraction_split_never_drawn():
    fractions = {"train": 0.9, "dev": 0.1, "test": 0.0}
    assert {draw_split(f"x{i}", 3, fractions) for i in range(2000)} == {"train", "dev"}


def test_consistency_sample_share_and_independence_from_split():
    drawn = [draw_consistency_sample(f"x{i}", 0, 0.2) for i in range(20_000)]
    assert sum(drawn) / 20_000 == pytest.approx(0.2, abs=0.01)
    # Different purposes hash differently, so the sample is not a split in disguise.
    assert uniform_draw(0, "split", "x1") != uniform_draw(0, "consistency", "x1")
    assert not any(draw_consistency_sample(f"x{i}", 0, 0.0) for i in range(100))
    assert all(draw_consistency_sample(f"x{i}", 0, 1.0) for i in range(100))


def test_single_character_classes_keep_their_own_key():
    names = [str(d) for d in range(10)] + ["unclear"]
    assert assign_shortcuts(names) == [*"0123456789", "q"]


def test_other_classes_take_free_keys_in_order_and_skip_taken_ones():
    assert assign_shortcuts(["cat", "dog", "2"], taken={"1"}) == ["3", "4", "2"]
    assert assign_shortcuts(["A", "a"]) == ["a", "1"]


def test_keys_run_out_gracefully():
    keys = assign_shortcuts([f"class{i}" for i in range(40)])
    assert len(set(keys[:33])) == 33 and keys[33:] == [""] * 7
    assert not {"u", "s", "z"} & set(keys)  # the labeling page's own keys
