"""How long the "where to work next" pieces take at scale (no database, seeded synthetic data):

- the slices of the evaluated items with tags merged in (annotation.tag_slices.with_tags, then
  training.evaluation._slice_codes), what evaluation adds per model;
- the table itself (training.worknext.work_next) over R evaluated items and S slices;
- "nearest to a tag" (active_learning.restriction.nearest_rows): the k pool items closest to the
  tagged ones, in a 256-dimensional embedding.

    .venv/bin/python benchmarks/work_next_speed.py

Prints a table and replaces the "Where to work next" section of benchmarks/RESULTS.md.
"""

import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from active_learning.restriction import nearest_rows  # noqa: E402
from annotation.tag_slices import with_tags  # noqa: E402
from training import worknext as W  # noqa: E402
from training.evaluation import _slice_codes  # noqa: E402

SECTION = "## Where to work next"


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    rng = np.random.default_rng(0)
    rows = []
    for r, n_tags in ((10_000, 20), (100_000, 50)):
        ids = np.arange(r)
        meta = [{"ink": str(rng.integers(0, 3)), "device": f"d{rng.integers(0, 30)}"} for _ in range(r)]
        tags = {}
        for t in range(n_tags):  # each tag on 2 % of the items
            for i in rng.choice(r, r // 50, replace=False).tolist():
                tags.setdefault(i, {})[f"tag:t{t}"] = "yes"
        secs_slices, codes = best_of(lambda meta=meta, tags=tags, ids=ids: _slice_codes(with_tags(ids, meta, tags), 50))
        member = np.concatenate([np.stack([c == j for j in range(len(v))]) for c, v in codes.values()])
        s = member.shape[0]
        y = rng.integers(0, 10, size=r)
        pred = np.where(rng.random(r) < 0.8, y, rng.integers(0, 10, size=r))
        share, hlp = rng.random(s), rng.uniform(0.8, 1.0, size=s)
        args = (y, pred, member, share, hlp, hlp - 0.02, hlp + 0.02)
        secs_table, _ = best_of(lambda args=args: W.work_next(*args))
        rows.append((f"{r:,} evaluated items, {s} slices ({n_tags} tags)", secs_slices, secs_table))
    near = []
    for n_pool, n_anchor in ((10_000, 100), (100_000, 1_000)):
        pool = rng.normal(size=(n_pool, 256)).astype(np.float32)
        anchors = rng.normal(size=(n_anchor, 256)).astype(np.float32)
        secs, _ = best_of(lambda pool=pool, anchors=anchors: nearest_rows(pool, anchors, 500))
        near.append((n_pool, n_anchor, secs))

    lines = [
        f"`benchmarks/work_next_speed.py`, {date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}. Best of 3, seeded "
        "synthetic data, no database.",
        "",
        "| evaluated items and slices | slices with tags merged, s | table, s |",
        "|---|---:|---:|",
        *[f"| {name} | {a:.3f} | {b:.3f} |" for name, a, b in rows],
        "",
        "| pool items | tagged items | 256-d embedding, k = 500 nearest, s |",
        "|---:|---:|---:|",
        *[f"| {p:,} | {a:,} | {s:.3f} |" for p, a, s in near],
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += [
        "",
        f"Load average at the end (1/5/15 min): {load} on {os.cpu_count()} cores shared with other work: the "
        "seconds are upper bounds. The slices step is Python dicts (one per evaluated item), paid once per "
        "evaluation; the table is NumPy. Nearest-to-a-tag is one (pool x tagged) distance matrix in blocks of "
        "2,048 pool rows, run once per cycle in the scoring step, beside the model's predictions of the pool.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(SECTION, f"{SECTION}\n\n{text}\n")


if __name__ == "__main__":
    main()
