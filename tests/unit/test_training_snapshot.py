"""training.snapshot: label precedence, ambiguity, the consensus threshold and the content hash."""

import numpy as np
import pytest

from training import snapshot as S

NAN = np.nan
AMB = np.array([False, False, False, True])  # classes 0, 1, 2 and the ambiguity class 3


def select(res, res_amb, gold, cons, conf, **kw):
    kw.setdefault("min_confidence", 0.8)
    return S.select_labels(
        np.array(res, dtype=float), np.array(res_amb, dtype=bool), np.array(gold, dtype=float),
        np.array(cons, dtype=float), np.array(conf, dtype=float), AMB, **kw,
    )  # fmt: skip


def names(status):
    return [S.STATUS_NAMES[s] for s in status]


def test_precedence_resolution_then_gold_then_confident_consensus():
    label, status = select(
        res=[2, NAN, NAN, NAN, NAN],
        res_amb=[False] * 5,
        gold=[1, 1, NAN, NAN, NAN],
        cons=[0, 0, 0, 0, NAN],
        conf=[0.99, 0.99, 0.85, 0.5, NAN],
    )
    assert label.tolist() == [2, 1, 0, -1, -1]
    assert names(status) == ["resolution", "gold", "consensus", "low_confidence", "unlabelled"]


def test_threshold_is_inclusive():
    label, status = select([NAN], [False], [NAN], [1], [0.8])
    assert label.tolist() == [1] and names(status) == ["consensus"]


def test_ambiguity_is_left_out_by_default_and_does_not_fall_through():
    label, status = select(
        res=[NAN, 3, NAN, NAN],
        res_amb=[True, False, False, False],
        gold=[1, 1, 3, NAN],  # gold never overrides the SME's "ambiguous"
        cons=[0, 0, 0, 3],
        conf=[1, 1, 1, 0.95],
    )
    assert label.tolist() == [-1, -1, -1, -1]
    assert names(status) == ["ambiguous"] * 4


def test_keep_ambiguity_keeps_them_as_their_own_class():
    label, status = select(
        res=[NAN, 3, NAN, 2],
        res_amb=[True, False, False, True],  # the last: ambiguous although a class was left on it
        gold=[NAN, NAN, 3, NAN],
        cons=[NAN, NAN, NAN, NAN],
        conf=[NAN] * 4,
        keep_ambiguity=True,
        fallback_ambiguity_class=3,
    )
    assert label.tolist() == [3, 3, 3, 3]
    assert names(status) == ["resolution", "resolution", "gold", "resolution"]
    # Without a class to hold it, a bare "ambiguous" is left out even when kept.
    label, status = select([NAN], [True], [NAN], [NAN], [NAN], keep_ambiguity=True)
    assert label.tolist() == [-1] and names(status) == ["ambiguous"]


def test_unconfident_ambiguity_consensus_is_low_confidence_not_ambiguous():
    _, status = select([NAN], [False], [NAN], [3], [0.5])
    assert names(status) == ["low_confidence"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="gold"):
        select([NAN], [False], [7], [NAN], [NAN])
    with pytest.raises(ValueError, match="shape"):
        select([NAN, NAN], [False], [NAN, NAN], [NAN, NAN], [NAN, NAN])


def test_hash_is_stable_and_order_free_and_sensitive():
    base = S.content_hash([3, 1, 2], [10, 11, 10], ["train", "dev", "train"], [10, 11])
    assert len(base) == 64
    assert S.content_hash([1, 2, 3], [11, 10, 10], ["dev", "train", "train"], [10, 11]) == base
    assert base == "ad6842fdd902398d41ad433fb474bed08c040380b1f046291e77ea77f0ea4458"  # the same in every process
    assert S.content_hash([3, 1, 2], [10, 10, 10], ["train", "dev", "train"], [10, 11]) != base  # a label
    assert S.content_hash([3, 1, 2], [10, 11, 10], ["train", "test", "train"], [10, 11]) != base  # a split
    assert S.content_hash([3, 1], [10, 11], ["train", "dev"], [10, 11]) != base  # an item fewer
    assert S.content_hash([3, 1, 2], [10, 11, 10], ["train", "dev", "train"], [10, 11, 12]) != base  # a class
    with pytest.raises(ValueError, match="twice"):
        S.content_hash([1, 1], [10, 10], ["train", "train"], [10])
