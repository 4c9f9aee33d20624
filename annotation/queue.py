"""Which item a labeler gets next: the pure rules of the labeling queue (no Django, no database).

The service (`annotation/services/labeling.py`) asks the database only for the few candidates
these rules allow and lets `choose` decide between them; `reference_next` states the whole rule
on plain Python objects, so tests can check the service's SQL against it on random projects.

The rule, for labeler u at time `now`:

- An item *needs* `overlap` labels when it is in the consistency sample or has gold, else 1.
- Its *taken* slots are its current annotations plus the unexpired leases of other labelers.
- It is *available* to u when taken < needed, u holds no current annotation of it, and u has not
  finished, skipped or (still) leased it. u's own expired lease does not count: the item may come
  back to u.
- Order: items with an active queue entry first, higher priority first; then every item in a
  seeded pseudo-random order (`seeded_rank`), ties broken by id.
- Gold: with probability `gold_rate` the next gold item in the seeded order is served instead;
  when ordinary items run out, gold is served. The draw is made for every request in the same
  way, so neither the answer nor its timing says which kind came out.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

# A Mersenne prime: products of two residues stay below 2**62, so the rank can be computed with
# plain 64-bit integer arithmetic in SQL (PostgreSQL bigint, SQLite integer) without overflow.
RANK_MODULUS = 2**31 - 1


class Status(StrEnum):
    """An assignment's state, as stored in `Assignment.status`."""

    LEASED = "leased"
    DONE = "done"
    SKIPPED = "skipped"


def labels_needed(*, in_consistency_sample: bool, has_gold: bool, overlap: int) -> int:
    """How many independent current labels an item needs: `overlap` for the consistency sample
    and gold items, 1 for the rest."""
    return overlap if (in_consistency_sample or has_gold) else 1


def open_slots(needed: int, labelled: int, leased: int) -> int:
    """Label slots still free: needed minus current labels minus other labelers' live leases."""
    return max(0, needed - labelled - leased)


def lease_is_live(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """A lease holds its slot until it expires; done and skipped assignments hold nothing."""
    return status == Status.LEASED and expires_at is not None and expires_at > now


def blocks_labeler(status: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Does the labeler's own assignment keep the item from being served to them (again)?

    Done, skipped and live leases do; no assignment or an expired lease does not."""
    if status is None:
        return False
    return status != Status.LEASED or lease_is_live(status, expires_at, now)


def undo_allowed(created_at: datetime, now: datetime, window_seconds: float) -> bool:
    """A submit may be undone for `window_seconds` after it was made."""
    return timedelta(0) <= now - created_at <= timedelta(seconds=window_seconds)


def rank_coefficients(seed: int) -> tuple[int, int, int]:
    """Three residues mod RANK_MODULUS drawn from the project seed: (a, b, c), a and c nonzero."""
    digest = hashlib.blake2b(f"concord-queue:{int(seed)}".encode(), digest_size=24).digest()
    a, b, c = (int.from_bytes(digest[i : i + 8], "big") for i in (0, 8, 16))
    return 1 + a % (RANK_MODULUS - 1), b % RANK_MODULUS, 1 + c % (RANK_MODULUS - 1)


def seeded_rank(seed: int, item_id: int) -> int:
    """The item's place in the project's shuffled order, in [0, RANK_MODULUS).

    x = (a*id + b) mod p spreads the ids; rank = (c * (x*x mod p) + x) mod p makes the order
    non-linear in the id. Only integer *, + and mod, each product below 2**62, so the SQL the
    service runs (`F("id") * a + b` ...) gives exactly these numbers on PostgreSQL and SQLite.
    Ties are possible and broken by id.
    """
    a, b, c = rank_coefficients(seed)
    x = (item_id * a + b) % RANK_MODULUS
    return (c * ((x * x) % RANK_MODULUS) + x) % RANK_MODULUS


@dataclass(frozen=True)
class Candidates:
    """The best available item of each source, or None: what the service's query returns.

    `prioritized`: the first by active queue entry (highest priority first), gold or not;
    `ranked_plain` / `ranked_gold`: the first ordinary / gold item in the seeded order.
    """

    prioritized: int | None = None
    ranked_plain: int | None = None
    ranked_gold: int | None = None


def choose(candidates: Candidates, *, gold_rate: float, draw: float) -> int | None:
    """The item to serve, given each source's best candidate and a uniform draw in [0, 1).

    Gold when draw < gold_rate (and a gold item is left); otherwise the queue's order: a
    prioritized item, then the seeded order of ordinary items, then gold, so nothing is
    withheld while anything remains.
    """
    if draw < gold_rate and candidates.ranked_gold is not None:
        return candidates.ranked_gold
    for item in (candidates.prioritized, candidates.ranked_plain, candidates.ranked_gold):
        if item is not None:
            return item
    return None


@dataclass
class QueueItem:
    """An item as the reference rule sees it (tests build these from plain data).

    `labelled_by`: labelers with a current annotation. `assignments`: labeler -> (status,
    expires_at). `priority`: the active queue entry's priority, or None.
    """

    id: int
    rank: int
    in_consistency_sample: bool = False
    has_gold: bool = False
    priority: float | None = None
    labelled_by: frozenset = frozenset()
    assignments: Mapping = field(default_factory=dict)

    def needed(self, overlap: int) -> int:
        return labels_needed(in_consistency_sample=self.in_consistency_sample, has_gold=self.has_gold, overlap=overlap)

    def taken(self, labeler, now: datetime) -> int:
        leases = sum(
            1
            for other, (status, expires_at) in self.assignments.items()
            if other != labeler and lease_is_live(status, expires_at, now)
        )
        return len(self.labelled_by) + leases

    def available_to(self, labeler, now: datetime, overlap: int) -> bool:
        if labeler in self.labelled_by:
            return False
        status, expires_at = self.assignments.get(labeler, (None, None))
        if blocks_labeler(status, expires_at, now):
            return False
        return self.taken(labeler, now) < self.needed(overlap)


def best_candidates(items: Iterable[QueueItem], labeler, *, now: datetime, overlap: int) -> Candidates:
    """Each source's best available item for `labeler` (the service computes this in SQL)."""
    available = [item for item in items if item.available_to(labeler, now, overlap)]
    prioritized = [item for item in available if item.priority is not None]
    plain = [item for item in available if not item.has_gold]
    gold = [item for item in available if item.has_gold]

    def first(pool, key):
        return min(pool, key=key).id if pool else None

    return Candidates(
        prioritized=first(prioritized, lambda item: (-item.priority, item.rank, item.id)),
        ranked_plain=first(plain, lambda item: (item.rank, item.id)),
        ranked_gold=first(gold, lambda item: (item.rank, item.id)),
    )


def reference_next(
    items: Iterable[QueueItem], labeler, *, now: datetime, overlap: int, gold_rate: float, draw: float
) -> int | None:
    """The whole rule in plain Python: the id of the item `labeler` gets next, or None."""
    return choose(best_candidates(items, labeler, now=now, overlap=overlap), gold_rate=gold_rate, draw=draw)
