"""The leakage check's pure module (training/leakage.py): pair finding proven equal to brute force,
groups equal to SciPy's connected components, and the constructed case of planted copies."""

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tests import leakage_data as D
from training import leakage as L


def brute_hash_pairs(h, t):
    h = np.asarray(h, dtype=np.uint64)
    dist = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.triu_indices(h.size, 1)
    keep = dist[i, j] <= t
    return set(zip(i[keep].tolist(), j[keep].tolist(), strict=True))


def test_the_band_radius_cannot_miss_a_pair():
    from itertools import combinations

    assert L.band_radius(10) == 2 and L.band_radius(3) == 0 and L.band_radius(12) == 3
    # every split of t flipped bits over 4 bands puts at most floor(t/4) in some band
    for t in range(0, 16):
        r = L.band_radius(t)
        for counts in combinations(range(t + 4), 3):  # stars and bars: 4 band counts summing to t
            parts = np.diff([-1, *counts, t + 3]) - 1
            assert min(parts) <= r
    masks = L.flip_masks(16, 2)
    assert masks.size == 1 + 16 + 120 == np.unique(masks).size and masks[0] == 0
    assert np.bitwise_count(masks.astype(np.uint64)).max() == 2


@pytest.mark.parametrize("t", [0, 2, 3, 6, 10, 13])
def test_hash_pairs_equal_brute_force(t):
    rng = np.random.default_rng(t)
    base = rng.integers(0, 2**63, size=400, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 400, dtype=np.uint64)
    # Plant copies at every distance 0..t+2 (the ones beyond t must not come back).
    copies = []
    for k in range(200):
        flips = rng.choice(64, size=k % (t + 3), replace=False)
        copies.append(base[k] ^ np.uint64(sum(1 << int(f) for f in flips)))
    h = np.concatenate([base, np.array(copies, dtype=np.uint64)])
    i, j, dist = L.hash_pairs(h, t)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == brute_hash_pairs(h, t)
    assert (dist == np.bitwise_count(h[i] ^ h[j])).all() and (dist <= t).all()
    assert len(brute_hash_pairs(h, t)) >= 60  # the planted copies are there to be found


def test_hash_pairs_handle_big_runs_of_equal_hashes():
    # 300 equal hashes (a blank image, imported 300 times) and a chunk smaller than their pairs.
    h = np.zeros(300, dtype=np.uint64)
    pairs = []
    order = np.arange(300)
    for left, right in L._run_pairs(order, h, chunk=1000):
        pairs.extend(zip(left.tolist(), right.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 300 * 299 // 2
    i, _, _ = L.hash_pairs(h, 4)
    assert i.size == 300 * 299 // 2
    with pytest.raises(ValueError, match=r"0\.\.63"):
        L.hash_pairs(h, 64)


def test_normalise_text():
    assert L.normalise_text("  Hello,   WORLD!! ") == "hello world"
    assert L.normalise_text("\uff28ello\u00a0\u201cworld\u201d") == "hello world"  # NFKC: full-width H, nbsp
    assert L.normalise_text("Straße") == L.normalise_text("STRASSE")  # case folding
    assert L.normalise_text("...") == ""
    assert L.shingles("abc") == {"abc"} and L.shingles("") == set()
    assert L.shingles("abcdefg") == {"abcde", "bcdef", "cdefg"}


def test_text_pairs_equal_exact_jaccard_brute_force():
    rng = np.random.default_rng(1)
    words = [f"w{k}" for k in range(300)]
    texts = []
    for _ in range(120):
        texts.append(" ".join(rng.choice(words, size=14)))
    for k in range(60):  # copies with 0..3 words changed: Jaccard from 1 down to about 0.5
        w = texts[k].split()
        for pos in rng.choice(len(w), size=k % 4, replace=False):
            w[pos] = str(rng.choice(words))
        texts.append(" ".join(w))
    sets = [L.shingles(L.normalise_text(t)) for t in texts]
    want = set()
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= L.TEXT_MIN_JACCARD:
                want.add((a, b))
    i, j, jac = L.text_pairs(texts)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    # Nothing below the threshold comes back; the LSH sieve may miss a pair near it (probability
    # 0.01 at J = 0.7), never one at J >= 0.8 here.
    assert got <= want and len(want) >= 30
    assert len(got) >= 0.97 * len(want)
    sure = {(a, b) for a, b in want if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= 0.8}
    assert sure <= got
    for a, b, s in zip(i.tolist(), j.tolist(), jac.tolist(), strict=True):
        assert s == pytest.approx(len(sets[a] & sets[b]) / len(sets[a] | sets[b]))


def test_signatures_equal_datasketch_minhash():
    from datasketch import MinHash

    sets = [L.shingles(L.normalise_text(t)) for t in ("The quick brown fox.", "the quick brown fox!", "Hello")]
    sig = L.minhash_signatures(sets)
    for row, shingle_set in zip(sig, sets, strict=True):
        reference = MinHash(num_perm=L.NUM_PERM)
        for shingle in shingle_set:
            reference.update(shingle.encode("utf-8"))
        assert (row == reference.hashvalues).all()
    assert (sig[0] == sig[1]).all()


def test_lsh_candidates_equal_datasketch_minhash_lsh():
    from datasketch import MinHash, MinHashLSH

    rng = np.random.default_rng(7)
    words = [f"w{k}" for k in range(80)]
    texts = [" ".join(rng.choice(words, size=10)) for _ in range(150)]
    texts += [t.replace(t.split()[3], "zz", 1) for t in texts[:50]]
    sets = [L.shingles(L.normalise_text(t)) for t in texts]
    sketches = MinHash.bulk([[s.encode("utf-8") for s in shingle_set] for shingle_set in sets], num_perm=L.NUM_PERM)
    sig = L.minhash_signatures(sets)
    assert (sig == np.stack([m.hashvalues for m in sketches])).all()
    i, j = L.lsh_candidates(sig)
    lsh = MinHashLSH(num_perm=L.NUM_PERM, params=(L.LSH_BANDS, L.LSH_ROWS))
    for k, m in enumerate(sketches):
        lsh.insert(k, m)
    reference = {(min(k, o), max(k, o)) for k, m in enumerate(sketches) for o in lsh.query(m) if o != k}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == reference
    assert len(reference) >= 40


def test_groups_equal_scipy_connected_components():
    rng = np.random.default_rng(3)
    n = 500
    i = rng.integers(0, n, 400)
    j = rng.integers(0, n, 400)
    labels = L.union_find_groups(n, i, j)
    graph = coo_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    count, ref = connected_components(graph, directed=False)
    assert np.unique(labels).size == count
    # the same partition: a one-to-one map between the two labellings
    assert len(set(zip(labels.tolist(), ref.tolist(), strict=True))) == count
    for root in np.unique(labels):
        assert root == np.flatnonzero(labels == root).min()


def test_check_keeps_cross_split_pairs_and_counts_the_rest():
    far = (1 << 64) - 1  # all bits set: 64 bits from 0
    h = np.array([0, 1, 3, far, far ^ 0xFFFF, 0xFFFFFFFF], dtype=np.uint64)
    splits = ["train", "dev", "train", "test", "test", "dev"]
    result = L.check(splits, image_hashes=h, digests=["a", "b", "c", "d", "e", "a"])
    # 0-1 (1 bit), 0-2 (2), 1-2 (1): 0-1 and 1-2 cross, 0-2 inside train; 3-4 (16 bits) no
    # pair; 0-5 (32 bits) exact by its digest "a".
    got = {(p.i, p.j, p.kind) for p in result.pairs}
    assert got == {(0, 1, "near"), (1, 2, "near"), (0, 5, "exact")}
    assert result.redundancy == {"train": 1, "dev": 0, "test": 0}
    assert result.groups == [[0, 1, 2, 5]]


def test_check_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        L.check(["train"], image_hashes=np.zeros(2, dtype=np.uint64))
    with pytest.raises(ValueError, match="same length"):
        L.check(["train", "dev"], texts=["a"])


def test_target_split_is_the_majority_and_a_tie_goes_to_train_then_dev():
    assert L.target_split(["dev", "dev", "train"]) == "dev"
    assert L.target_split(["test", "dev"]) == "dev"
    assert L.target_split(["test", "train"]) == "train"
    assert L.target_split(["test", "test", "train"]) == "test"


def _image_result(case):
    fps = [L.image_fingerprint(im) for im in case.images]
    return L.check(
        case.splits, image_hashes=np.array([f[0] for f in fps], dtype=np.uint64), digests=[f[1] for f in fps]
    )


def _found(case, result):
    return {tuple(sorted((case.names[p.i], case.names[p.j]))) for p in result.pairs}


def assert_planted_found_and_nothing_else(case, found, groups):
    """Every original-copy pair found; nothing found outside a planted group; the groups exact."""
    assert case.planted() <= found
    assert found <= case.group_pairs()
    assert groups == case.groups


def test_planted_image_copies_are_all_found_and_no_unrelated_tile_is():
    case = D.image_case()
    result = _image_result(case)
    found = _found(case, result)
    assert_planted_found_and_nothing_else(case, found, [{case.names[m] for m in g} for g in result.groups])
    assert len(case.planted()) == 32 and len(case.groups) == 8
    unrelated = set(case.names) - set().union(*case.groups)
    assert len(unrelated) == 40  # other tiles, flat ones among them
    split = dict(zip(case.names, case.splits, strict=True))
    same = {(a, b) for a, b in case.group_pairs() if split[a] == split[b]}
    assert 0 < sum(result.redundancy.values()) <= len(same)


def test_an_exact_pixel_copy_in_another_file_is_exact():
    case = D.image_case(n_originals=1)
    images = [case.images[0], case.images[0].copy()]
    fps = [L.image_fingerprint(im) for im in images]
    result = L.check(["train", "test"], image_hashes=np.array([f[0] for f in fps], dtype=np.uint64),
                     digests=[f[1] for f in fps])  # fmt: skip
    assert [(p.kind, p.distance) for p in result.pairs] == [("exact", 0)]


def test_planted_text_copies_are_all_found_and_no_unrelated_sentence_is():
    case = D.text_case()
    result = L.check(case.splits, texts=case.texts)
    found = _found(case, result)
    assert_planted_found_and_nothing_else(case, found, [{case.names[m] for m in g} for g in result.groups])
    assert found == case.group_pairs()  # here the two copies of a sentence are near each other too
    assert len(found) == 24
    kinds = {(case.names[p.i], case.names[p.j]): p.kind for p in result.pairs}
    assert kinds[("s00", "s00-punct")] == "exact"  # re-punctuated: equal once normalised
    assert kinds[("s00", "s00-edit")] == "near"
