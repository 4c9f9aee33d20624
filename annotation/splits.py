"""Seeded, order-independent draws that place an item in a split and in the consistency sample.

Each draw hashes (project seed, purpose, external id) to a number in [0, 1): the same item gets
the same answer whatever else is imported and in whatever order, so re-imports are stable and
the test split stays the same random sample for the life of the project.
"""

import hashlib

SPLITS = ("train", "dev", "test")


def uniform_draw(seed: int, purpose: str, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw_split(key: str, seed: int, fractions: dict) -> str:
    """The split for `key`; `fractions` maps train/dev/test to shares that sum to 1."""
    u = uniform_draw(seed, "split", key)
    cumulative = 0.0
    for name in SPLITS:
        cumulative += fractions[name]
        if u < cumulative:
            return name
    return next(name for name in reversed(SPLITS) if fractions[name] > 0)


def draw_consistency_sample(key: str, seed: int, fraction: float) -> bool:
    return uniform_draw(seed, "consistency", key) < fraction
