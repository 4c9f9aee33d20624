"""How fast tags are written in bulk and read as slices (annotation/services/tags.py,
annotation/tag_slices.py).

A project of ``--items`` items (half with metadata noise=car) is built once in its own PostgreSQL
database; then, timed: one tag added to every item by ids (one transaction: the rows, one event
each), the same request again (idempotent: nothing written), a second tag on every item matching
the item browser's filter slice=noise=car, reading all tags as slice metadata (what the quality
report's load does) and removing the first tag from every item.

    .venv/bin/python benchmarks/tag_speed.py [--items 50000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SLUG = "tag-bench"


def ensure_database(url):
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/concord_bench_tags")
    parser.add_argument("--items", type=int, default=50_000)
    args = parser.parse_args(argv)
    ensure_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from annotation.models import Item, Membership, Project
    from annotation.services import tags
    from annotation.services.projects import create_project
    from annotation.tag_slices import tag_metadata, with_tags

    Project.objects.filter(slug=SLUG).delete()
    project = create_project(slug=SLUG, name="Tag bench", data_kind="text", classes=["a", "b"])
    user, _ = get_user_model().objects.get_or_create(username="tag-bench-sme")
    Membership.objects.get_or_create(user=user, project=project, defaults={"role": "sme"})
    Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"t{i}",
                text="x",
                split="train",
                metadata={"noise": "car" if i % 2 else "rain"},
            )
            for i in range(args.items)
        ],
        batch_size=5000,
    )
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    figures = []
    seconds, result = timed(lambda: tags.tag_items(project, user, ids, name="blurry"))
    figures.append(("add one tag to every item by ids", result["changed"], seconds))
    seconds, result = timed(lambda: tags.tag_items(project, user, ids, name="blurry"))
    figures.append(("the same again (nothing to write)", result["unchanged"], seconds))
    seconds, result = timed(
        lambda: tags.tag_matching(project, user, "browser", {"slice": "noise=car"}, name="car-noise")
    )
    figures.append(("add a tag by the item browser's filter slice=noise=car", result["changed"], seconds))
    meta = [{"noise": "car"}] * len(ids)
    seconds, merged = timed(lambda: with_tags(ids, meta, tag_metadata(project.pk)))
    figures.append(("read every tag as slice metadata (quality report load)", len(merged), seconds))
    seconds, result = timed(lambda: tags.tag_items(project, user, ids, name="blurry", add=False))
    figures.append(("remove the first tag from every item", result["changed"], seconds))
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(f"Tags, {args.items:,} items; {machine}")
    print("| step | items | seconds | items/s |")
    print("|---|---:|---:|---:|")
    for what, n, s in figures:
        print(f"| {what} | {n:,} | {s:.2f} | {n / s:,.0f} |")
    Project.objects.filter(slug=SLUG).delete()


if __name__ == "__main__":
    main()
