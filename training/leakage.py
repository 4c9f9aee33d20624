"""Near-duplicate items across train / dev / test: the leakage check. Pure: PIL, NumPy, imagehash
and datasketch in, arrays and plain lists out; no Django.

A copy of a dev item in train (re-encoded, resized, slightly cropped, re-punctuated) lets the model
see the answer, and inflates every dev figure, the gap to HLP included. Three detectors:

- **exact**: the same content after decoding — identical grayscale pixels (the file's bytes may
  differ: another encoder, other metadata), or identical normalised text.
- **images**: the difference hash (``imagehash.dhash``, ``DHASH_SIZE`` = 8, so 64 bits) of each
  image; two images are near duplicates when their hashes differ in at most ``IMAGE_MAX_DISTANCE``
  (t) bits. Pairs are found without comparing all N² of them by the pigeonhole principle. Split
  into t + 1 bands, two hashes within t bits agree exactly on one band; but at t = 10 that leaves
  bands of 6 bits, whose buckets hold N/64 items each, and the candidates grow as N² / 128 (860
  million at 100,000 items). So the 64 bits are split into ``BANDS`` = 4 bands of 16 bits instead:
  two hashes within t bits differ in at most floor(t / 4) bits in one band (were every band off by
  more, the total would exceed t), so each item looks up, in each band's table, the 1 + 16 + 120
  keys within 2 bits of its own (t = 10), and each candidate is verified by its full distance.
  On uniform hashes that is about 137 x 4 x N²/65536 candidates (84 million at 100,000 items,
  verified in NumPy in seconds; benchmarks/leakage_check.py), and ``max_distance`` < 4 is the
  exact-band case (t + 1 bands' guarantee with fewer, wider bands).
- **texts**: normalised text (Unicode NFKC, case folded, punctuation dropped, whitespace collapsed)
  cut into character shingles of ``SHINGLE_CHARS``; a ``datasketch.MinHash`` of each (its default
  SHA-1 hash per shingle, memoised) and LSH of ``LSH_BANDS`` bands of ``LSH_ROWS`` rows give
  candidates, then every candidate is verified by the exact Jaccard similarity of the shingle
  sets, kept when at least ``TEXT_MIN_JACCARD``. The banding is ``datasketch.MinHashLSH``'s
  (equal rows of a band make a candidate; the tests prove the same candidates), done with a
  sort per band in NumPy: MinHashLSH's Python dictionaries took 30 s per 100,000 texts. The LSH
  is a sieve and can miss: a pair of Jaccard J becomes a candidate with probability
  1 - (1 - J**5)**25, 0.990 at J = 0.7 and 0.99996 at J = 0.8 (texts equal once normalised are
  exact duplicates and always found); an unrelated pair at J = 0.1 is a candidate with
  probability 0.00025, so the exact verification stays cheap.

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
BANDS = 4  # of the 64-bit image hash: 16 bits each
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


def band_radius(max_distance: int, bands: int = BANDS) -> int:
    """The in-band radius that cannot miss a pair within ``max_distance``: if every one of
    ``bands`` bands differed by more than r = floor(t / bands) bits, the hashes would differ by at
    least bands * (r + 1) > t."""
    return max_distance // bands


def flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), r)]
    return np.array(masks, dtype=np.int64)


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
    """Every pair of 64-bit hashes within Hamming ``max_distance`` (multi-index hashing: see the
    module docstring).

    Parameters
    ----------
    hashes : uint64 array (N,)
    max_distance : int, 0..63

    Returns
    -------
    i, j : int64 arrays (P,), i < j, sorted; distance : int64 array (P,).
    """
    if not 0 <= max_distance < 64:
        raise ValueError("max_distance must be in 0..63")
    h = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    n = h.size
    width = 64 // BANDS
    masks = flip_masks(width, band_radius(max_distance))
    found = []
    for band in range(BANDS):
        keys = ((h >> np.uint64(band * width)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << width)
        first = np.cumsum(counts) - counts  # where each key's items start in ``order``
        for mask in masks.tolist():
            probe = keys ^ mask
            hits = counts[probe]
            left = np.flatnonzero(hits)
            if not left.size:
                continue
            per = hits[left]
            total = int(per.sum())
            offsets = np.arange(total) - np.repeat(np.cumsum(per) - per, per)
            right = order[np.repeat(first[probe[left]], per) + offsets]
            left = np.repeat(left, per)
            keep = left < right  # each unordered pair once per probe; never an item with itself
            left, right = left[keep], right[keep]
            close = np.bitwise_count(h[left] ^ h[right]) <= max_distance
            if close.any():
                found.append(left[close] * n + right[close])
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    codes = np.unique(np.concatenate(found))
    i, j = codes // n, codes % n
    return i.astype(np.int64), j.astype(np.int64), np.bitwise_count(h[i] ^ h[j]).astype(np.int64)


def _identity(value):
    return value


def minhash_signatures(shingle_sets) -> np.ndarray:
    """``datasketch.MinHash`` hash values (N, NUM_PERM) uint64 of each shingle set, with its
    default hash (SHA-1, first 32 bits) computed once per distinct shingle (shingles repeat
    across texts: " the " is everywhere)."""
    from datasketch import MinHash
    from datasketch.hashfunc import sha1_hash32

    shingle_sets = list(shingle_sets)
    value = {s: sha1_hash32(s.encode("utf-8")) for s in set().union(*shingle_sets)}

    def hashed(shingle_set):
        return [value[s] for s in shingle_set]

    sketches = MinHash.bulk((hashed(s) for s in shingle_sets), num_perm=NUM_PERM, hashfunc=_identity)
    if not sketches:
        return np.zeros((0, NUM_PERM), dtype=np.uint64)
    return np.stack([m.hashvalues for m in sketches]).astype(np.uint64)


def lsh_candidates(signatures, bands: int = LSH_BANDS, rows: int = LSH_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) whose signatures (N, NUM_PERM) agree on every row of at least one band: the
    candidates ``datasketch.MinHashLSH`` with ``params=(bands, rows)`` gives, by a sort per band."""
    sig = np.asarray(signatures, dtype=np.uint64)
    n = sig.shape[0]
    rng = np.random.default_rng(0)
    # Rows of a band folded into one 64-bit key; a collision of unequal rows would only add a
    # candidate, which the exact Jaccard then drops.
    weights = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    found = []
    for b in range(bands):
        block = sig[:, b * rows : (b + 1) * rows]
        with np.errstate(over="ignore"):
            keys = (block * weights).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for left, right in _run_pairs(order, sorted_keys):
            # equal keys, and equal rows (so a fold collision never passes)
            same = (block[left] == block[right]).all(axis=1)
            a, c = left[same], right[same]
            found.append(np.minimum(a, c) * n + np.maximum(a, c))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    codes = np.unique(np.concatenate(found))
    return (codes // n).astype(np.int64), (codes % n).astype(np.int64)


def text_pairs(texts, min_jaccard: float = TEXT_MIN_JACCARD):
    """Pairs of texts whose normalised shingle sets have Jaccard similarity >= ``min_jaccard``.

    Parameters
    ----------
    texts : sequence of str (N,)

    Returns
    -------
    i, j : int64 arrays (P,), i < j, sorted; jaccard : float64 array (P,).
    """
    sets = [shingles(normalise_text(t)) for t in texts]
    present = np.array([bool(s) for s in sets], dtype=bool).reshape(len(sets))
    where = np.flatnonzero(present)  # an empty text has no shingles and matches nothing
    sig = minhash_signatures([sets[k] for k in where.tolist()])
    ci, cj = lsh_candidates(sig)
    out_i, out_j, out_s = [], [], []
    for a, b in zip(where[ci].tolist(), where[cj].tolist(), strict=True):
        sa, sb = sets[a], sets[b]
        jac = len(sa & sb) / len(sa | sb)
        if jac >= min_jaccard:
            out_i.append(a)
            out_j.append(b)
            out_s.append(jac)
    return (
        np.array(out_i, dtype=np.int64),
        np.array(out_j, dtype=np.int64),
        np.array(out_s, dtype=np.float64),
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
            normalised = [normalise_text(t) for t in texts]
            digests = [hashlib.sha256(t.encode()).hexdigest() if t else "" for t in normalised]
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
    """The split a group moves into: the one most of its members are in (fewest items move); a tie
    goes to the earlier of train, dev, test, so a tie never moves training items into an
    evaluation split: dev and test only give up items that have a copy elsewhere."""
    counts = {s: 0 for s in SPLITS}
    for s in splits_of_members:
        counts[s] += 1
    return max(SPLITS, key=lambda s: (counts[s], -SPLITS.index(s)))
