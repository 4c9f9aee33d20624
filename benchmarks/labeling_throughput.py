"""Labeling throughput: N simulated labelers over HTTP against a real server on a 100,000-item project.

    .venv/bin/python benchmarks/labeling_throughput.py \\
        --database-url postgres://postgres@127.0.0.1:5432/concord_bench_e

What it does, all on this machine (loopback only):

1. creates the PostgreSQL database if it is missing and migrates it;
2. creates (or reuses) a text project of --items items (20 % consistency sample with overlap 3,
   1 % gold, 1,000 active queue entries, 11 classes) and --labelers labelers with API tokens,
   and clears the labels and leases of earlier runs (unless --keep-labels);
3. starts the web server, DEBUG off, with persistent database connections: by default --servers
   `manage.py runserver --noreload` processes (Django's threaded development server; with
   TCP_NODELAY on its connections, as gunicorn sets it); with --server gunicorn, the production
   server as docker/compose.yaml runs it, with --servers sync workers; with --base-url, none: the
   labelers go to a server already running there (on the same --database-url);
4. runs --labelers threads, each a labeler that asks for the next item and submits a label
   (token auth, a fresh client_id per label) until --seconds or --max-requests run out, once per
   pace in --think-ms (by default at a person's pace, then flat out);
5. prints p50/p95/p99 of next-item and submit latency and labels per second, checks that no
   item got more labels than it needed, and writes the figures to benchmarks/RESULTS.md under
   "## Labeling throughput" (the rest of that file is left as it is).

Client threads and the servers share this machine's CPUs, so the figures are an upper bound on
latency for the servers alone. Bounded: --seconds per phase, --max-requests per phase.
"""

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Labeling throughput"
SLUG = "bench-texts"
CLASSES = ["positive", "negative", "neutral", "question", "complaint", "praise", "spam", "offtopic", "request"]
AMBIGUITY = ["unclear", "mixed"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WORDS = ["the", "a", "model", "label", "queue", "item", "fast", "slow", "good", "bad", "price", "screen", "battery",
         "delivery", "support", "refund"]  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/concord_bench_e")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the labelers work in each phase")
    parser.add_argument("--max-requests", type=int, default=60_000, help="stop after this many requests in all")
    parser.add_argument(
        "--think-ms",
        default="1500,0",
        help="comma-separated phases: each labeler's mean pause (ms) between a submit and its next ask, drawn "
        "uniformly from 0.5x to 1.5x; 1500 is about a person's pace (the demo's simulated labelers take a median "
        "1.5 s per item), 0 is flat out",
    )
    parser.add_argument(
        "--warmup-seconds", type=float, default=3.0, help="requests in this first stretch are not timed"
    )
    parser.add_argument("--port", type=int, default=8765, help="first port; server n listens on port + n")
    parser.add_argument(
        "--server",
        choices=["runserver", "gunicorn"],
        default="runserver",
        help="runserver: --servers development servers, one port each; gunicorn: one gunicorn with --servers workers",
    )
    parser.add_argument(
        "--base-url",
        help="target a server already running there, e.g. http://127.0.0.1:8000 (serving --database-url); starts none",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=2,
        help="server processes, like gunicorn workers (one runserver uses one core: Python's GIL)",
    )
    parser.add_argument("--keep-labels", action="store_true", help="start from the labels of the previous run")
    parser.add_argument("--no-results", action="store_true", help="print only; leave RESULTS.md alone")
    return parser.parse_args(argv)


# ---- Database and data -------------------------------------------------------------------------


def ensure_database(url):
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or parts.hostname not in LOOPBACK:
        sys.exit("the benchmark needs a PostgreSQL database on this machine (postgres://…@127.0.0.1/…)")
    import psycopg

    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
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


def prepare_project(n_items, n_labelers, keep_labels):
    """The benchmark project and its labelers' tokens; items are created once and reused."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from annotation.models import (
        Annotation,
        Assignment,
        GoldLabel,
        GoldLabelClass,
        Item,
        Membership,
        Project,
        QueueEntry,
    )
    from annotation.services import labeling
    from annotation.services.projects import create_project

    project = Project.objects.filter(slug=SLUG).first()
    if project is None:
        project = create_project(
            slug=SLUG,
            name="Benchmark texts",
            data_kind="text",
            classes=CLASSES,
            ambiguity_classes=AMBIGUITY,
            overlap=3,
            consistency_fraction=0.2,
            seed=7,
        )
    have = project.items.count()
    if have < n_items:
        rng = random.Random(have)
        classes = list(project.label_classes.order_by("order"))
        started = time.perf_counter()
        for start in range(have, n_items, 5000):
            stop = min(start + 5000, n_items)
            with transaction.atomic():
                items = Item.objects.bulk_create(
                    Item(
                        project=project,
                        external_id=f"t{i:07d}",
                        split=rng.choices(["train", "dev", "test"], [0.8, 0.1, 0.1])[0],
                        text=" ".join(rng.choices(WORDS, k=rng.randint(8, 40))),
                        in_consistency_sample=rng.random() < 0.2,
                        metadata={"source": rng.choice(["app", "web", "email"])},
                    )
                    for i in range(start, stop)
                )
                gold = GoldLabel.objects.bulk_create(GoldLabel(item=item) for item in items if rng.random() < 0.01)
                GoldLabelClass.objects.bulk_create(
                    GoldLabelClass(gold=g, label_class=rng.choice(classes)) for g in gold
                )
        print(f"created {n_items - have:,} items in {time.perf_counter() - started:.0f} s")
    if not QueueEntry.objects.filter(project=project, is_active=True).exists():
        rng = random.Random(1)
        ids = list(project.items.values_list("pk", flat=True))
        QueueEntry.objects.bulk_create(
            QueueEntry(project=project, item_id=pk, priority=rng.random(), strategy="benchmark")
            for pk in rng.sample(ids, min(1000, len(ids)))
        )

    User = get_user_model()
    tokens = []
    for n in range(n_labelers):
        user, _ = User.objects.get_or_create(username=f"bench-labeler-{n:02d}")
        Membership.objects.get_or_create(user=user, project=project, defaults={"role": "labeler"})
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    if not keep_labels:
        with transaction.atomic():
            Annotation.objects.filter(item__project=project).delete()
            Assignment.objects.filter(item__project=project).delete()
            Item.objects.filter(project=project, queue_done=True).update(queue_done=False)
            QueueEntry.objects.filter(project=project, strategy="benchmark").update(is_active=True)
    labeling.refresh_queue_state(project)
    # Planner statistics for the fresh rows, as autovacuum would gather them on a live database.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE annotation_item, annotation_annotation, annotation_assignment, annotation_goldlabel, "
            "annotation_queueentry"
        )
    return project, tokens


def overfilled(project):
    """Items holding more current labels than they need (must be none)."""
    from django.db.models import Count, Exists, OuterRef, Q

    from annotation.models import GoldLabel, Item

    items = Item.objects.filter(project=project).annotate(
        n=Count("annotations", filter=Q(annotations__is_current=True)),
        gold_=Exists(GoldLabel.objects.filter(item=OuterRef("pk"))),
    )
    over_k = items.filter(n__gt=project.overlap).count()
    over_1 = items.filter(n__gt=1, in_consistency_sample=False, gold_=False).count()
    return over_k + over_1


def label_counts(project):
    from annotation.models import Annotation

    return Annotation.objects.filter(item__project=project).count()


# ---- Server ------------------------------------------------------------------------------------


def start_server(url, port, log_path, kind="runserver", workers=1):
    env = {
        **os.environ,
        "DATABASE_URL": url + ("&" if "?" in url else "?") + "conn_max_age=600",
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # Plain HTTP on loopback: no redirect to HTTPS (on by default when DEBUG is off).
        "SECURE_SSL_REDIRECT": "false",
    }
    if kind == "gunicorn":
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    else:
        command = [sys.executable, __file__, "--serve", f"127.0.0.1:{port}"]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(  # noqa: S603 - a fixed command line
        command,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.log = log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server stopped at start; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/schema/")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    sys.exit(f"the server did not answer within 60 s; see {log_path}")


def serve(address):
    """`manage.py runserver --noreload` with TCP_NODELAY on its connections, as gunicorn sets it.

    Without it, Django's development server writes a response's headers and body in two packets and
    Nagle's algorithm holds the second back for the client's delayed ACK: ~40 ms on some responses
    that no production server would add.
    """
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line
    from django.core.servers import basehttp

    setup = basehttp.WSGIRequestHandler.setup

    def setup_nodelay(handler):
        handler.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup(handler)

    basehttp.WSGIRequestHandler.setup = setup_nodelay
    execute_from_command_line(["manage.py", "runserver", "--noreload", address])


def stop_server(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    server.log.close()


# ---- Labelers ----------------------------------------------------------------------------------


class Labeler(threading.Thread):
    def __init__(self, target, project_id, token, deadline, budget, think, seed, timed_from):
        super().__init__(daemon=True)
        self.target, self.token, self.deadline, self.budget, self.think = target, token, deadline, budget, think
        self.timed_from = timed_from
        self.next_url = f"/api/v1/projects/{project_id}/next-item/"
        self.post_url = f"/api/v1/projects/{project_id}/annotations/"
        self.rng = random.Random(seed)
        self.next_ms, self.submit_ms = [], []
        self.labels = 0
        self.errors = []
        self.empty = False
        self.conn = None

    def request(self, method, path, body=None):
        """One request on this labeler's kept-alive connection (reopened when the server closed it)."""
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                scheme, host, port = self.target
                connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
                self.conn = connection_class(host, port, timeout=30)
                self.conn.connect()
                # As browsers do: http.client sends a POST's headers and body in two writes, which
                # Nagle's algorithm would otherwise hold back for the server's delayed ACK (~40 ms).
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if response.will_close:
                self.conn.close()
                self.conn = None
            return response.status, data, elapsed
        raise AssertionError("unreachable")

    def run(self):
        try:
            if self.think:
                time.sleep(self.rng.uniform(0, self.think))  # labelers do not all start at once
            while time.monotonic() < self.deadline and self.budget.take(2):
                timed = time.monotonic() >= self.timed_from
                status, data, ms = self.request("GET", self.next_url)
                if timed:
                    self.next_ms.append(ms)
                if status == 204:
                    self.empty = True
                    return
                if status != 200:
                    self.errors.append(("next-item", status, data[:200]))
                    continue
                item = json.loads(data)["id"]
                label = self.rng.choice(CLASSES + AMBIGUITY)
                body = {"item": item, "labels": [label], "client_id": str(uuid.uuid4()), "duration_ms": 900}
                status, data, ms = self.request("POST", self.post_url, body)
                if timed:
                    self.submit_ms.append(ms)
                if status == 201:
                    self.labels += 1
                else:
                    self.errors.append(("submit", status, data[:200]))
                if self.think:
                    time.sleep(self.think * self.rng.uniform(0.5, 1.5))
        except Exception as exc:  # reported with the results
            self.errors.append(("exception", 0, repr(exc).encode()))
        finally:
            if self.conn is not None:
                self.conn.close()


class Budget:
    """Requests left to all labelers together."""

    def __init__(self, n):
        self.left = n
        self.lock = threading.Lock()

    def take(self, n):
        with self.lock:
            if self.left < n:
                return False
            self.left -= n
            return True


def percentiles(values):
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}  # fmt: skip


# ---- Report ------------------------------------------------------------------------------------


def run_phase(args, targets, project_id, tokens, think_ms):
    """The labelers at one pace; their figures."""
    budget = Budget(args.max_requests)
    started = time.monotonic()
    labelers = [
        Labeler(
            targets[n % len(targets)],
            project_id,
            token,
            deadline=started + args.seconds,
            budget=budget,
            think=think_ms / 1000,
            seed=n,
            timed_from=started + args.warmup_seconds,
        )
        for n, token in enumerate(tokens)
    ]
    for labeler in labelers:
        labeler.start()
    for labeler in labelers:
        labeler.join(timeout=args.seconds + 120)
    elapsed = time.monotonic() - started
    return {
        "think_ms": think_ms,
        "elapsed": elapsed,
        "next": percentiles([m for w in labelers for m in w.next_ms]),
        "submit": percentiles([m for w in labelers for m in w.submit_ms]),
        "labels": sum(w.labels for w in labelers),
        "errors": [e for w in labelers for e in w.errors],
    }


def report(args, phases, written, over, server_version):
    def row(phase, name, p):
        pace = f"{phase['think_ms']:g} ms" if phase["think_ms"] else "flat out"
        if not p["n"]:
            return f"| {pace} | {name} | 0 | | | | | |"
        return (f"| {pace} | {name} | {p['n']:,} | {p['p50']:.1f} | {p['p95']:.1f} | {p['p99']:.1f} "
                f"| {p['max']:.1f} | {p['mean']:.1f} |")  # fmt: skip

    labels = sum(p["labels"] for p in phases)
    errors = [e for p in phases for e in p["errors"]]
    if args.base_url:
        servers = f"the server at {args.base_url}"
    elif args.server == "gunicorn":
        servers = f"gunicorn with {args.servers} sync workers (as docker/compose.yaml starts it)"
    else:
        servers = (
            f"{args.servers} `manage.py runserver --noreload` processes (Django's threaded development server, "
            f"standing in for gunicorn workers; with TCP_NODELAY on its connections as gunicorn sets it; labelers "
            f"spread evenly over them)"
        )
    lines = [
        f"{args.labelers} concurrent simulated labelers over HTTP (token auth, one kept-alive connection each "
        f"where the server keeps it) against {servers}, "
        f"{'its own settings' if args.base_url else 'DEBUG off, persistent database connections'}, "
        f"PostgreSQL {server_version}, on a {args.items:,}-item "
        f"text project (20 % consistency sample with overlap 3, 1 % gold, 1,000 active queue entries). Each "
        f"phase runs {args.seconds:g} s; latencies leave out its first {args.warmup_seconds:g} s (new connections, "
        f"first queries). Think time: each labeler's mean pause between a submit and its next ask. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared by the servers, PostgreSQL, the client "
        f"threads and whatever else runs there (1-minute load average {args.load_before:.1f} before the run, "
        f"{os.getloadavg()[0]:.1f} after); Python {platform.python_version()}.",
        "",
        "| think time | request | n | p50 ms | p95 ms | p99 ms | max ms | mean ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        lines += [row(phase, "GET next-item", phase["next"]), row(phase, "POST annotations (submit)", phase["submit"])]
    lines.append("")
    for phase in phases:
        pace = f"{phase['think_ms']:g} ms think time" if phase["think_ms"] else "Flat out"
        rate = phase["labels"] / phase["elapsed"]
        lines.append(
            f"- {pace}: {phase['labels']:,} labels in {phase['elapsed']:.1f} s, **{rate:.1f} labels/s** "
            f"({2 * rate:.1f} requests/s)."
        )
    for phase in phases:
        pace = f"at {phase['think_ms']:g} ms think time" if phase["think_ms"] else "flat out"
        met = all(phase[r]["n"] and phase[r]["p95"] < 50 for r in ("next", "submit"))
        lines.append(f"- Issue 3's target, p95 under 50 ms for both requests, {pace}: {'met' if met else 'not met'}.")
    lines += [
        f"- Failed requests: {len(errors)}. Annotations written: {written:,} (successful submits: {labels:,}). "
        f"Items holding more labels than they need: {over}.",
        f"- Command: `.venv/bin/python benchmarks/labeling_throughput.py --items {args.items} "
        f"--labelers {args.labelers} --servers {args.servers} --seconds {args.seconds:g} "
        f"--think-ms {args.think_ms}"
        + (f" --base-url {args.base_url}" if args.base_url else f" --server {args.server}")
        + f"`, run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC.",
    ]
    if errors:
        lines.append(f"- First errors: {errors[:3]}")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(argv[1])
        return
    args = parse_args(argv)
    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.db import connection

    project, tokens = prepare_project(args.items, args.labelers, args.keep_labels)
    args.load_before = os.getloadavg()[0]
    before = label_counts(project)
    server_version = f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
    connection.close()

    (ROOT / "var").mkdir(exist_ok=True)
    servers = []
    try:
        if args.base_url:
            parts = urlsplit(args.base_url)
            targets = [(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))]
        elif args.server == "gunicorn":
            log = ROOT / "var" / f"benchmark-gunicorn-{args.port}.log"
            servers.append(start_server(args.database_url, args.port, log, "gunicorn", workers=args.servers))
            targets = [("http", "127.0.0.1", args.port)]
        else:
            targets = [("http", "127.0.0.1", args.port + n) for n in range(args.servers)]
            for _, _, port in targets:
                servers.append(start_server(args.database_url, port, ROOT / "var" / f"benchmark-server-{port}.log"))
        phases = [run_phase(args, targets, project.pk, tokens, float(t)) for t in args.think_ms.split(",")]
    finally:
        for server in servers:
            stop_server(server)

    written = label_counts(project) - before
    text = report(args, phases, written, overfilled(project), server_version)
    print(f"{SECTION}\n\n{text}")
    if not args.no_results:
        write_section(SECTION, text)
        print("\nwritten to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
