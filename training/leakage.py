"""Near-duplicate items across train / dev / test: the leakage check. Pure: PIL, NumPy, imagehash
and datasketch in, arrays and plain lists out; no Django.

A copy of a dev item in train (re-encoded, resized, slightly cropped, re-punctuated) lets the model
see the answer, and inflates every dev figure, the gap to HLP included. Three detectors:

- **exact**: the same content after decoding — identical grayscale pixels (the file's bytes may
  differ: another encoder, other metadata), or identical normalised text.
- **images**: the difference hash (``imagehash.dhash``, ``DHASH_SIZE`` = 8, so 64 bits) of each
  image; two images are near duplicates when their hashes differ in at most ``IMAGE_MAX_DISTANCE``
  bits. Pairs are found without comparing all N² of them by the pigeonhole principle: split the 64
  bits into t + 1 bands; two hashes within Hamming distance t differ in at most t bands, so they
  agree exactly on at least one. Items are sorted by each band's value, only items in one run of
  equal values are compared (the candidates), and each candidate is verified by its full distance.
  On hashes spread like real photos' the runs stay short and the work near-linear in N.
- **texts**: normalised text (Unicode NFKC, case folded, punctuation dropped, whitespace collapsed)
  cut into character shingles of ``SHINGLE_CHARS``; a ``datasketch.MinHash`` of each and a
  ``MinHashLSH`` index of ``LSH_BANDS`` bands of ``LSH_ROWS`` rows give candidates, then every
  candidate is verified by the exact Jaccard similarity of the shingle sets, kept when at least
  ``TEXT_MIN_JACCARD``. The LSH is a sieve and can miss: a pair of Jaccard J becomes a candidate
  with probability 1 - (1 - J**5)**25, which is 0.990 at J = 0.7, 0.99996 at J = 0.8 (and 1 for
  texts equal once normalised: those are exact duplicates). An unrelated pair at J = 0.1 is a
  candidate with probability 0.00025, so the exact verification stays cheap.

Pairs are joined into near-duplicate groups (union-find). Only pairs whose items lie in different
splits leak; pairs inside one split are counted as redundancy, per split.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "dev", "test")
DHASH_SIZE = 8  # a 9x8 thumbnail, 64 bits
IMAGE_MAX_DISTANCE = 10  # of 64 bits: JPEG re-encoding, resizing and a crop of a few % stay within it
SHINGLE_CHARS = 5
TEXT_MIN_JACCARD = 0.7
NUM_PERM = 128
LSH_BANDS, LSH_ROWS = 25, 5  # of the NUM_PERM = 128 hash values (125 used)

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


def thresholds() -> dict:
    """The stated thresholds, as the report keeps them."""
    return {
        "image": {"hash": "dhash", "hash_size": DHASH_SIZE, "bits": DHASH_SIZE * DHASH_SIZE,
                  "max_distance": IMAGE_MAX_DISTANCE},
        "text": {"normalisation": "NFKC, casefold, punctuation removed, whitespace collapsed",
                 "shingle_chars": SHINGLE_CHARS, "num_perm": NUM_PERM, "lsh_bands": LSH_BANDS,
                 "lsh_rows": LSH_ROWS, "min_jaccard": TEXT_MIN_JACCARD},
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------


def image_fingerprint(image) -> tuple[int, str]:
    """(64-bit dhash as an int, SHA-256 of the grayscale pixels) of a PIL image."""
    import imagehash

    gray = image.convert("L")
    bits = imagehash.dhash(gray, hash_size=DHASH_SIZE).hash.reshape(-1)
    value = int(np.packbits(bits.astype(np.uint8)).view(">u8")[0]) if bits.size == 64 else _bits_to_int(bits)
    digest = hashlib.sha256(f"{gray.size}".encode() + gray.tobytes()).hexdigest()
    return value, digest


def _bits_to_int(bits) -> int:
    value = 0
    for bit in bits.tolist():
        value = (value << 1) | int(bit)
    return value


def normalise_text(text: str) -> str:
    """NFKC, case folded, punctuation dropped, runs of whitespace made one space."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def shingles(normalised: str) -> set:
    """Character shingles of ``SHINGLE_CHARS`` (a shorter text is its own single shingle)."""
    k = SHINGLE_CHARS
    if len(normalised) <= k:
        return {normalised} if normalised else set()
    return {normalised[i : i + k] for i in range(len(normalised) - k + 1)}


# --------------------------------------------------------------------------------------------
# Pair finding
# --------------------------------------------------------------------------------------------


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def band_masks(max_distance: int, bits: int = 64) -> list[tuple[int, int]]:
    """(shift, mask) of ``max_distance + 1`` contiguous bands that together cover ``bits``."""
    n_bands = max_distance + 1
    if n_bands > bits:
        raise ValueError(f"max_distance must be below {bits}")
    edges = np.linspace(0, bits, n_bands + 1).round().astype(int)
    return [(int(lo), (1 << int(hi - lo)) - 1) for lo, hi in itertools.pairwise(edges.tolist())]


def _run_pairs(order: np.ndarray, keys_sorted: np.ndarray, chunk: int = 2_000_000):
    """Yield (left, right) index arrays of every pair inside each run of equal sorted keys."""
    n = keys_sorted.size
    if n < 2:
        return
    starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
    lengths = np.diff(np.r_[starts, n])
    ends = np.repeat(starts + lengths, lengths)  # one past each position's run
    after = ends - np.arange(n) - 1  # partners after each position in its run
    cum = np.cumsum(after)
    begin = 0
    while begin < n:
        # positions [begin, stop) whose pairs fit in one chunk (at least one position)
        base = cum[begin - 1] if begin else 0
        stop = max(int(np.searchsorted(cum, base + chunk, side="right")), begin + 1)
        counts = after[begin:stop]
        total = int(counts.sum())
        if total:
            left_pos = np.repeat(np.arange(begin, stop), counts)
            first = np.cumsum(counts) - counts
            right_pos = left_pos + 1 + (np.arange(total) - np.repeat(first, counts))
            yield order[left_pos], order[right_pos]
        begin = stop


def hash_pairs(hashes, max_distance: int = IMAGE_MAX_DISTANCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of 64-bit hashes within Hamming ``max_distance``.

    Parameters
    ----------
    hashes : uint64 array (N,)
    max_distance : int

    Returns
    -------
    i, j : int64 arrays (P,), i < j, sorted; distance : int64 array (P,).
    """
    h = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    found = []
    for shift, mask in band_masks(max_distance):
        keys = (h >> np.uint64(shift)) & np.uint64(mask)
        order = np.argsort(keys, kind="stable")
        for left, right in _run_pairs(order, keys[order]):
            dist = _popcount(h[left] ^ h[right])
            keep = dist <= max_distance
            if keep.any():
                a, b = left[keep], right[keep]
                found.append(np.minimum(a, b) * h.size + np.maximum(a, b))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    codes = np.unique(np.concatenate(found))
    i, j = codes // h.size, codes % h.size
    return i.astype(np.int64), j.astype(np.int64), _popcount(h[i] ^ h[j]).astype(np.int64)


def text_pairs(texts, min_jaccard: float = TEXT_MIN_JACCARD):
    """Pairs of texts whose normalised shingle sets have Jaccard similarity >= ``min_jaccard``.

    Parameters
    ----------
    texts : sequence of str (N,)

    Returns
    -------
    i, j : int64 arrays (P,), i < j, sorted; jaccard : float64 array (P,).
    """
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(normalise_text(t)) for t in texts]
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(LSH_BANDS, LSH_ROWS))
    # One MinHash holds the permutations; bulk() reuses them for every text.
    encoded = [[s.encode("utf-8") for s in shingle_set] for shingle_set in sets]
    sketches = MinHash.bulk(encoded, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for idx, sketch in enumerate(sketches):
            if sets[idx]:
                session.insert(idx, sketch, check_duplication=False)
    out_i, out_j, out_s = [], [], []
    for idx, sketch in enumerate(sketches):
        if not sets[idx]:
            continue
        for other in lsh.query(sketch):
            if other <= idx:
                continue
            a, b = sets[idx], sets[other]
            jac = len(a & b) / len(a | b)
            if jac >= min_jaccard:
                out_i.append(idx)
                out_j.append(other)
                out_s.append(jac)
    order = np.lexsort((np.array(out_j, dtype=np.int64), np.array(out_i, dtype=np.int64)))
    return (
        np.array(out_i, dtype=np.int64)[order],
        np.array(out_j, dtype=np.int64)[order],
        np.array(out_s, dtype=np.float64)[order],
    )


def exact_pairs(digests) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of equal content digests (N,) -> int64 arrays (P,)."""
    groups: dict = {}
    for idx, digest in enumerate(digests):
        if digest:
            groups.setdefault(digest, []).append(idx)
    i, j = [], []
    for members in groups.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i.append(members[a])
                j.append(members[b])
    return np.array(i, dtype=np.int64), np.array(j, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Groups and the report
# --------------------------------------------------------------------------------------------


def union_find_groups(n: int, i, j) -> np.ndarray:
    """Component label (N,) of each node under the edges (i, j); a label is its smallest member."""
    parent = np.arange(n)

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)], dtype=np.int64)


@dataclass
class Pair:
    i: int
    j: int
    kind: str  # "exact" or "near"
    distance: int | None = None  # images: Hamming bits
    jaccard: float | None = None  # texts


@dataclass
class LeakageResult:
    """Positions are indices into the inputs. ``pairs`` and ``groups`` hold only what crosses
    splits; ``redundancy`` counts same-split pairs per split."""

    pairs: list[Pair] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)
    redundancy: dict = field(default_factory=dict)


def check(splits, *, image_hashes=None, texts=None, digests=None) -> LeakageResult:
    """The leakage check over N items.

    Parameters
    ----------
    splits : sequence of str (N,)
        "train", "dev" or "test".
    image_hashes : uint64 array (N,), for images
    texts : sequence of str (N,), for texts
    digests : sequence of str (N,)
        Content digests for exact duplicates (decoded pixels); for texts the normalised text is
        used when not given.
    """
    split = np.asarray(list(splits), dtype=object)
    n = split.size
    found: dict[tuple[int, int], Pair] = {}
    if texts is not None:
        if len(texts) != n:
            raise ValueError("texts and splits must have the same length")
        if digests is None:
            digests = [hashlib.sha256(normalise_text(t).encode()).hexdigest() if normalise_text(t) else ""
                       for t in texts]  # fmt: skip
        i, j, jac = text_pairs(texts)
        for a, b, s in zip(i.tolist(), j.tolist(), jac.tolist(), strict=True):
            found[(a, b)] = Pair(a, b, "near", jaccard=round(s, 4))
    if image_hashes is not None:
        h = np.asarray(image_hashes, dtype=np.uint64).reshape(-1)
        if h.size != n:
            raise ValueError("image_hashes and splits must have the same length")
        i, j, dist = hash_pairs(h)
        for a, b, d in zip(i.tolist(), j.tolist(), dist.tolist(), strict=True):
            found[(a, b)] = Pair(a, b, "near", distance=d)
    if digests is not None:
        if len(digests) != n:
            raise ValueError("digests and splits must have the same length")
        for a, b in zip(*(x.tolist() for x in exact_pairs(digests)), strict=True):
            old = found.get((a, b))
            found[(a, b)] = Pair(a, b, "exact", distance=old.distance if old else None,
                                 jaccard=old.jaccard if old else None)  # fmt: skip

    result = LeakageResult(redundancy={s: 0 for s in SPLITS})
    cross = []
    for key in sorted(found):
        pair = found[key]
        if split[pair.i] == split[pair.j]:
            result.redundancy[str(split[pair.i])] = result.redundancy.get(str(split[pair.i]), 0) + 1
        else:
            cross.append(pair)
    result.pairs = cross
    # Groups join every near-duplicate pair (same-split ones too: a group moves as a whole),
    # and are reported when they span more than one split.
    keys = sorted(found)
    labels = union_find_groups(n, [k[0] for k in keys], [k[1] for k in keys])
    members: dict[int, list[int]] = {}
    for pos in sorted({p.i for p in cross} | {p.j for p in cross}):
        members.setdefault(int(labels[pos]), [])
    for pos in range(n):
        if int(labels[pos]) in members:
            members[int(labels[pos])].append(pos)
    result.groups = [members[root] for root in sorted(members)]
    return result


def target_split(splits_of_members) -> str:
    """The split a group moves into: the one most of its members are in; a tie goes to the
    earlier of train, dev, test (train first: the test split stays the sample it was drawn as)."""
    counts = {s: 0 for s in SPLITS}
    for s in splits_of_members:
        counts[s] += 1
    return max(SPLITS, key=lambda s: (counts[s], -SPLITS.index(s)))
