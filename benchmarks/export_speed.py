"""How fast, and in how much memory, the labelled dataset is exported (annotation/services/dataset_export.py).

A text project of ``--items`` items, each labelled by ``--labelers`` labelers (200,000 x 5 = 1M
annotations by default; labels 80 % right, 5 % unsure), 1 % gold and 1 % SME resolutions, is
written once into its own PostgreSQL database with set-based INSERT ... SELECT (seconds, not the
minutes of row-by-row creation). Each export then runs in a fresh process, so its peak resident
memory (ru_maxrss) is its own: seconds and peak memory of JSONL and Parquet, with and without every
labeler's label, at the full size and at a tenth of it (the same project, filtered to one slice of
10 % of the items: what grows with the project and what does not).

    .venv/bin/python benchmarks/export_speed.py [--items 200000] [--labelers 5] [--no-results] [--cases 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
SLUG = "export-bench"
CLASSES = ["a", "b", "c", "d"]
AMBIGUITY = ["unclear"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/concord_bench_export")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--labelers", type=int, default=5)
    parser.add_argument("--no-results", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument(
        "--cases", help="comma-separated positions in CASES to run (default: all), e.g. 0,1 for the final labels"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one export, print JSON
    return parser.parse_args(argv)


def ensure_database(url):
    parts = urlsplit(url)
    import psycopg

    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )


def setup_django(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare(n_items, n_labelers):
    """The benchmark project, built once with set-based SQL and reused while its size matches."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Annotation, Item, Membership, Project
    from annotation.services.projects import create_project

    project = Project.objects.filter(slug=SLUG).first()
    if project is not None:
        have = (Item.objects.filter(project=project).count(), Annotation.objects.filter(item__project=project).count())
        if have == (n_items, n_items * n_labelers):
            return project
        project.delete()
    started = time.perf_counter()
    project = create_project(
        slug=SLUG, name="Export benchmark", data_kind="text", classes=CLASSES, ambiguity_classes=AMBIGUITY
    )
    User = get_user_model()
    labelers = []
    for n in range(n_labelers):
        user, _ = User.objects.get_or_create(username=f"export-bench-{n:02d}")
        Membership.objects.get_or_create(user=user, project=project, defaults={"role": "labeler"})
        labelers.append(user.pk)
    class_ids = list(project.label_classes.filter(is_ambiguity=False).order_by("order").values_list("pk", flat=True))
    k = len(class_ids)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO annotation_item (project_id, external_id, image, thumbnail, text, sha256, metadata, split,
                in_consistency_sample, source_name, created_at, queue_done, queue_gold)
            SELECT %s, 't' || lpad(g::text, 7, '0'), '', '', 'text number ' || g, '',
                jsonb_build_object('source', (ARRAY['app','web','email'])[1 + g %% 3], 'tenth', (g %% 10)::text),
                CASE WHEN g %% 10 < 8 THEN 'train' WHEN g %% 10 = 8 THEN 'dev' ELSE 'test' END,
                g %% 5 = 0, '', now(), false, false
            FROM generate_series(1, %s) AS g
            """,
            [project.pk, n_items],
        )
        cur.execute(
            """
            INSERT INTO annotation_annotation (item_id, labeler_id, unsure, note, source, is_current)
            SELECT i.id, u, random() < 0.05, '', 'human', true
            FROM annotation_item i CROSS JOIN unnest(%s::bigint[]) AS u WHERE i.project_id = %s
            """,
            [labelers, project.pk],
        )
        # 80 % of labels name the item's true class (its id modulo K), the rest a random class.
        cur.execute(
            """
            INSERT INTO annotation_annotationlabel (annotation_id, label_class_id)
            SELECT a.id, (%s::bigint[])[1 + CASE WHEN random() < 0.8 THEN a.item_id %% %s
                                             ELSE floor(random() * %s)::int END]
            FROM annotation_annotation a JOIN annotation_item i ON i.id = a.item_id WHERE i.project_id = %s
            """,
            [class_ids, k, k, project.pk],
        )
        cur.execute(
            """
            WITH g AS (
                INSERT INTO annotation_goldlabel (item_id, created_at)
                SELECT id, now() FROM annotation_item WHERE project_id = %s AND id %% 100 = 1 RETURNING id, item_id)
            INSERT INTO annotation_goldlabelclass (gold_id, label_class_id)
            SELECT g.id, (%s::bigint[])[1 + g.item_id %% %s] FROM g
            """,
            [project.pk, class_ids, k],
        )
        cur.execute(
            """
            WITH r AS (
                INSERT INTO annotation_resolution (item_id, is_ambiguous, note, is_current, created_at)
                SELECT id, false, '', true, now() FROM annotation_item WHERE project_id = %s AND id %% 100 = 2
                RETURNING id, item_id)
            INSERT INTO annotation_resolutionlabel (resolution_id, label_class_id)
            SELECT r.id, (%s::bigint[])[1 + r.item_id %% %s] FROM r
            """,
            [project.pk, class_ids, k],
        )
        cur.execute(
            "ANALYZE annotation_item, annotation_annotation, annotation_annotationlabel, annotation_goldlabel, "
            "annotation_resolution"
        )
    print(f"built {n_items:,} items and {n_items * n_labelers:,} annotations in {time.perf_counter() - started:.0f} s")
    return project


def run_one(spec):
    """One export in this (fresh) process: seconds, rows, bytes and peak resident memory."""
    from annotation.models import Project
    from annotation.services import dataset_export as service

    fmt, options = spec["format"], spec["options"]
    project = Project.objects.get(slug=SLUG)
    # Imported before the clock starts: a worker process has them loaded already.
    import pyarrow.parquet  # noqa: F401

    import training.services  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out_path = Path(spec["out"])
    started = time.perf_counter()
    with open(out_path, "wb") as out:
        rows = service.write_export(project, fmt, service.check_options(project, options), out)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = out_path.stat().st_size
    out_path.unlink()
    print(json.dumps({"seconds": seconds, "rows": rows, "bytes": size, "rss_before_kib": before, "rss_peak_kib": peak}))


CASES = [
    ("jsonl", {}, "final labels"),
    ("parquet", {}, "final labels"),
    ("jsonl", {"include_labels": True}, "+ every labeler's label"),
    ("parquet", {"include_labels": True}, "+ every labeler's label"),
    ("jsonl", {"include_labels": True, "slice": ["tenth=3"]}, "+ labels, one slice (10 % of the items)"),
]


def main(argv=None):
    args = parse_args(argv)
    if args.one:
        setup_django(args.database_url)
        run_one(json.loads(args.one))
        return
    ensure_database(args.database_url)
    setup_django(args.database_url)
    prepare(args.items, args.labelers)
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="export-bench-"))
    chosen = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else CASES
    for fmt, options, what in chosen:
        spec = {"format": fmt, "options": {"consensus": "dawid_skene", **options}, "out": str(scratch / f"out.{fmt}")}
        done = subprocess.run(  # noqa: S603 (our own interpreter and script)
            [sys.executable, __file__, "--database-url", args.database_url, "--one", json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results.append((fmt, what, figures))
        print(
            f"{fmt:8s} {what:45s} {figures['rows']:>9,} rows {figures['seconds']:7.1f} s "
            f"{figures['bytes'] / 2**20:8.2f} MiB file, peak RSS {figures['rss_peak_kib'] / 1024:6.0f} MiB "
            f"(after start-up {figures['rss_before_kib'] / 1024:.0f} MiB)"
        )
    if args.no_results:
        return
    from django.db import connection
    from results import write_section  # benchmarks/results.py, beside this script

    version = connection.cursor().connection.info.server_version
    lines = [
        f"`benchmarks/export_speed.py`, {date.today():%Y-%m-%d}, {os.cpu_count()} cores (shared), "
        f"{platform.machine()}, Python {platform.python_version()}, PostgreSQL "
        f"{version // 10000}.{version % 100}. A text project of {args.items:,} items x "
        f"{args.labelers} labelers = {args.items * args.labelers:,} annotations (1 % gold, 1 % resolutions), "
        "final labels by Dawid-Skene where no gold or resolution decides. Each export runs in a fresh process; "
        "peak memory is that process's maximum resident set (Python, Django and NumPy included), beside its size "
        "right after start-up. Before this change there was no export at all (paging through the annotation "
        "list was the only way out).",
        "",
        "| format | what | rows | seconds | rows/s | file MiB | peak RSS MiB | RSS at start MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, what, f in results:
        lines.append(
            f"| {fmt} | {what} | {f['rows']:,} | {f['seconds']:.1f} | {f['rows'] / f['seconds']:,.0f} | "
            f"{f['bytes'] / 2**20:.2f} | {f['rss_peak_kib'] / 1024:.0f} | {f['rss_before_kib'] / 1024:.0f} |"
        )
    write_section("## Dataset export", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
