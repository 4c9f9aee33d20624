"""Telemetry ingestion: N simulated devices sending batches over HTTP to gunicorn on PostgreSQL.

    .venv/bin/python benchmarks/telemetry_ingest.py \\
        --database-url postgres://postgres@127.0.0.1:5432/concord_bench_fieldcore

What it does, all on this machine (loopback only):

1. creates the database if it is missing and migrates it; creates (or reuses) an image project with
   10 classes, a promoted model with a ready export published on `stable`, and --devices devices
   (fresh tokens each run); the labeling benchmark's text project (benchmarks/labeling_throughput.py,
   --items items) for the labelers;
2. starts gunicorn (--workers sync workers, DEBUG off, persistent connections) with the device
   rate limit lifted (DEPLOYMENT_BATCHES_PER_MINUTE) so the devices can go flat out;
3. phase "labeling alone": --labelers labelers at a person's pace (1.5 s between items), next-item
   latency measured;
4. phase "ingestion alone": each device thread sends gzip'd batches of --batch records (encoded
   before the phase starts, so the clients' JSON work is not on the clock) back to back on a
   kept-alive connection; records/s (accepted by the server) and batch latency;
5. phase "ingestion + labeling": both at once;
6. the table's size (pg_total_relation_size, indexes and TOAST included) per million records;
7. prints the figures and writes them to benchmarks/RESULTS.md under "## Telemetry ingestion".

Clients and server share the machine's 2 cores: the server's own figures would be better.
"""

import argparse
import gzip
import hashlib
import http.client
import json
import os
import platform
import random
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import labeling_throughput as lt  # benchmarks/, beside this script
from results import write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Telemetry ingestion"
SLUG = "bench-field"
CLASSES = [f"digit-{k}" for k in range(10)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/concord_bench_fieldcore")
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--device-workers",
        type=int,
        default=0,
        help="if > 0: the devices talk to a second gunicorn of this many workers (port + 1), as a deployment "
        "that serves /api/v1/device/ from its own pool does; 0: one server for people and devices",
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="records/s of all devices together in the mixed phase; 0: flat out"
    )
    parser.add_argument("--labelers", type=int, default=10)
    parser.add_argument("--items", type=int, default=20_000, help="items of the labelers' project")
    parser.add_argument("--port", type=int, default=8871)
    parser.add_argument("--media-root", default=str(ROOT / "var" / "bench-field-media"))
    parser.add_argument("--no-results", action="store_true")
    return parser.parse_args(argv)


def prepare_field(n_devices, media_root):
    """The field project, its published export and fresh device tokens."""
    from django.conf import settings

    settings.MEDIA_ROOT = Path(media_root)
    from annotation.models import Project
    from annotation.services.projects import create_project
    from deployment import channels, devices
    from deployment.models import Device
    from training import registry, services
    from training.models import ModelExport, ModelVersion

    project = Project.objects.filter(slug=SLUG).first() or create_project(
        slug=SLUG, name="Benchmark field", data_kind="image", classes=CLASSES
    )
    export = ModelExport.objects.filter(model_version__project=project, status="ready").first()
    if export is None:
        version = ModelVersion.objects.create(
            project=project, trainer="keras_cnn", snapshot=services.build_snapshot(project), status="ready",
            artifact="bench/none.keras",
        )  # fmt: skip
        registry.promote(version)
        content = b"benchmark bundle"
        path = services.artifact_root() / "exports" / "bench.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        export = ModelExport.objects.create(
            model_version=version, format="int8", status="ready", bundle="exports/bench.zip",
            sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content),
        )  # fmt: skip
    stable = channels.channels_of(project)["stable"]
    channels.publish(stable, export)
    channels.update_settings(stable, sample_rate=0.0, confidence_threshold=0.0)  # no inputs: records only
    Device.objects.filter(project=project).update(revoked_at=datetime.now(UTC))
    tokens = [
        devices.create_device(project, name=f"bench-{n}", device_uid=f"bench-{time.time_ns()}-{n}").secret
        for n in range(n_devices)
    ]
    return project, export, tokens


def make_batches(export, n_batches, batch, seed):
    rng = random.Random(seed)
    out = []
    now = datetime.now(UTC).isoformat()
    seq = 0
    for _ in range(n_batches):
        records = []
        for _ in range(batch):
            scores = sorted((rng.random() for _ in range(3)), reverse=True)
            total = sum(scores) * 1.2
            names = rng.sample(CLASSES, 3)
            top = {name: round(s / total, 4) for name, s in zip(names, scores, strict=True)}
            records.append({
                "seq": seq, "predicted_at": now, "bundle_sha256": export.sha256, "predicted_class": names[0],
                "top_scores": top, "latency_ms": round(rng.uniform(2, 20), 2),
            })  # fmt: skip
            seq += 1
        out.append(gzip.compress(json.dumps({"records": records}).encode(), compresslevel=5))
    return out


class DeviceClient(threading.Thread):
    def __init__(self, port, token, bodies, deadline, interval=0.0):
        super().__init__(daemon=True)
        self.port, self.token, self.bodies, self.deadline = port, token, bodies, deadline
        self.interval = interval  # seconds between batch starts; 0: back to back
        self.latencies, self.accepted, self.errors = [], 0, []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}  # fmt: skip
        try:
            next_at = time.monotonic()
            for body in self.bodies:
                if self.interval:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += self.interval
                if time.monotonic() >= self.deadline:
                    return
                started = time.perf_counter()
                conn.request("POST", "/api/v1/device/telemetry", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.latencies.append((time.perf_counter() - started) * 1000)
                if response.status == 200:
                    self.accepted += json.loads(data)["accepted"]
                else:
                    self.errors.append((response.status, data[:200]))
        except Exception as exc:  # reported with the results
            self.errors.append((0, repr(exc).encode()))
        finally:
            conn.close()


def ingest(port, tokens, bodies_per_device, seconds, rate=0.0, batch=500):
    deadline = time.monotonic() + seconds
    interval = batch * len(tokens) / rate if rate else 0.0
    clients = [
        DeviceClient(port, token, bodies, deadline, interval)
        for token, bodies in zip(tokens, bodies_per_device, strict=True)
    ]
    started = time.perf_counter()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.perf_counter() - started
    accepted = sum(c.accepted for c in clients)
    latencies = [ms for c in clients for ms in c.latencies]
    errors = [e for c in clients for e in c.errors]
    return {"records_per_s": accepted / elapsed, "accepted": accepted, "seconds": elapsed,
            "batch_ms": lt.percentiles(latencies), "errors": errors[:5], "n_errors": len(errors)}  # fmt: skip


def label(port, project_id, tokens, seconds):
    deadline = time.monotonic() + seconds
    budget = lt.Budget(10**9)
    labelers = [
        lt.Labeler(("http", "127.0.0.1", port), project_id, token, deadline, budget, 1.5, n, time.monotonic() + 2)
        for n, token in enumerate(tokens)
    ]
    for one in labelers:
        one.start()
    for one in labelers:
        one.join()
    return lt.percentiles([ms for one in labelers for ms in one.next_ms]), sum(len(one.errors) for one in labelers)


def table_size():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deployment_telemetryrecord")
        cursor.execute(
            "SELECT pg_total_relation_size('deployment_telemetryrecord'), count(*) FROM deployment_telemetryrecord"
        )
        size, rows = cursor.fetchone()
    return size, rows


def main(argv=None):
    args = parse_args(argv)
    lt.ensure_database(args.database_url)
    lt.setup_django(args.database_url)
    os.environ["MEDIA_ROOT"] = args.media_root
    text_project, label_tokens = lt.prepare_project(args.items, args.labelers, keep_labels=False)
    _, export, device_tokens = prepare_field(args.devices, args.media_root)
    # Enough batches for each device to go flat out for a phase (at most ~3x the 5,000/s target).
    per_device = max(4, int(15_000 * args.seconds / args.batch / args.devices) + 1)
    print(f"encoding {per_device * args.devices * 2} batches of {args.batch} records...")
    phase_bodies = [
        [make_batches(export, per_device, args.batch, seed=phase * 1000 + n) for n in range(args.devices)]
        for phase in range(2)
    ]
    # Each phase uses its own devices' seq ranges: phase 1 sends seqs above phase 0's.
    offset = per_device * args.batch
    phase_bodies[1] = [[_shift(body, offset) for body in bodies] for bodies in phase_bodies[1]]

    os.environ["DEPLOYMENT_BATCHES_PER_MINUTE"] = "1000000"
    log_path = ROOT / "var" / "bench-telemetry-server.log"
    log_path.parent.mkdir(exist_ok=True)
    server = lt.start_server(args.database_url, args.port, log_path, kind="gunicorn", workers=args.workers)
    device_port, device_server = args.port, None
    if args.device_workers:
        device_port = args.port + 1
        device_server = lt.start_server(
            args.database_url, device_port, log_path.with_suffix(".devices.log"), kind="gunicorn",
            workers=args.device_workers,
        )  # fmt: skip
    try:
        alone_next, e0 = label(args.port, text_project.pk, label_tokens, args.seconds)
        print(f"labeling alone: next-item {fmt(alone_next)} ({e0} errors)")
        alone = ingest(device_port, device_tokens, phase_bodies[0], args.seconds)
        print(f"ingestion alone: {alone['records_per_s']:,.0f} records/s, batch {fmt(alone['batch_ms'])}, "
              f"{alone['n_errors']} errors {alone['errors']}")  # fmt: skip
        both = {}
        labeling_thread = threading.Thread(
            target=lambda: both.setdefault("next", label(args.port, text_project.pk, label_tokens, args.seconds))
        )
        labeling_thread.start()
        mixed = ingest(device_port, device_tokens, phase_bodies[1], args.seconds, rate=args.rate, batch=args.batch)
        labeling_thread.join()
        mixed_next, e1 = both["next"]
        print(f"ingestion + labeling: {mixed['records_per_s']:,.0f} records/s, batch {fmt(mixed['batch_ms'])}, "
              f"next-item {fmt(mixed_next)} ({e1} labeler errors, {mixed['n_errors']} device errors)")  # fmt: skip
    finally:
        lt.stop_server(server)
        if device_server is not None:
            lt.stop_server(device_server)
    size, rows = table_size()
    per_million = size / max(rows, 1) * 1_000_000 / 2**20
    print(f"table: {rows:,} records in {size / 2**20:.1f} MiB = {per_million:,.0f} MiB per million records")
    if not args.no_results:
        write_section(SECTION, report(args, alone_next, alone, mixed, mixed_next, rows, size, per_million))


def _shift(body, offset):
    data = json.loads(gzip.decompress(body))
    for record in data["records"]:
        record["seq"] += offset
    return gzip.compress(json.dumps(data).encode(), compresslevel=5)


def fmt(p):
    if not p.get("n"):
        return "no requests"
    return f"p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms (n={p['n']})"


def report(args, alone_next, alone, mixed, mixed_next, rows, size, per_million):
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout  # noqa: S607
    pg = re.search(r"\d+\.\d+", version).group(0) if re.search(r"\d+\.\d+", version) else "?"
    slowest = min(alone["records_per_s"], mixed["records_per_s"])

    def row(name, ingest_figures, next_item):
        cells = [name]
        if ingest_figures:
            batch = ingest_figures["batch_ms"]
            cells += [
                f"{ingest_figures['records_per_s']:,.0f}",
                f"{batch.get('p50', 0):.0f}",
                f"{batch.get('p95', 0):.0f}",
            ]
        else:
            cells += ["—"] * 3
        cells += [f"{next_item.get('p50', 0):.0f}", f"{next_item.get('p95', 0):.0f}"] if next_item else ["—"] * 2
        return "| " + " | ".join(cells) + " |"

    lines = [
        SECTION,
        "",
        f"`benchmarks/telemetry_ingest.py`, 2026-12-02, 2 cores (shared), {platform.machine()}, "
        f"Python {platform.python_version()}, PostgreSQL {pg}. gunicorn with {args.workers} sync workers (DEBUG off)"
        + (f" and the devices on a second gunicorn of {args.device_workers}, " if args.device_workers else ", ")
        + f"{args.devices} device threads each sending gzip'd JSON batches of {args.batch} records back to back on a "
        f"kept-alive connection (batches encoded before the clock starts), {args.labelers} labelers at a person's pace "
        f"(1.5 s between items) on a {args.items:,}-item text project; {args.seconds:.0f} s per phase. No inputs "
        "(images) in the batches: records only.",
        "",
        "| phase | records/s | batch p50 ms | batch p95 ms | next-item p50 ms | next-item p95 ms |",
        "|---|---:|---:|---:|---:|---:|",
        row("labeling alone", None, alone_next),
        row("ingestion alone", alone, None),
        row(f"ingestion ({f'paced at {args.rate:,.0f}/s' if args.rate else 'flat out'}) + labeling", mixed, mixed_next),
        "",
        f"Database: {rows:,} raw records take {size / 2**20:.1f} MiB (`pg_total_relation_size` of "
        f"deployment_telemetryrecord, indexes and TOAST included): **{per_million:,.0f} MiB per million records**. "
        f"Device errors: {alone['n_errors']} alone, {mixed['n_errors']} with labeling. Load average at the end: "
        f"{load} (1/5/15 min).",
        "",
        "Target (issue #15): at least 5,000 records/s through the HTTP API: "
        f"**{'met' if slowest >= 5000 else 'MISSED'}** (the lower of the two ingestion phases: {slowest:,.0f}/s).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
