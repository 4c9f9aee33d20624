"""The field loop on the demo: how fast drift is caught, how often a stable stream alarms, how well
field accuracy is estimated, and what telemetry costs, with `simulate_field` against a real server.

    .venv/bin/python benchmarks/field_simulation.py \\
        --database-url postgres://postgres@127.0.0.1:5432/concord_bench_field

What it does, all on this machine (loopback only):

1. creates the PostgreSQL database if it is missing and migrates it; creates the demo project
   (1,797 digits, three simulated labelers) unless it is there;
2. trains a small Keras CNN on the demo's labels, exports it to int8 TFLite and publishes it to
   canary at 100 % (once; later runs reuse the newest published bundle);
3. starts gunicorn (DEBUG off, 2 workers) on the same database and media folder;
4. runs `deployment.monitoring_simulation.run` once per --seeds seed: --devices devices, a control
   stream with no drift of --stable + --drift predictions, then --stable stable and --drift
   drifting ones; the field items are labelled with their truth (a simulated labeler);
5. prints the figures per seed and writes them to benchmarks/RESULTS.md under
   "## Field loop (simulate_field)".

Client, server and PostgreSQL share this machine's CPUs, so latencies are upper bounds.
"""

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Field loop (simulate_field)"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/concord_bench_field")
    parser.add_argument("--media-root", default=str(Path(tempfile.gettempdir()) / "concord_bench_field_media"))
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--stable", type=int, default=2000)
    parser.add_argument("--drift", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--sample-rate", type=float, default=0.2)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--port", type=int, default=8761)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return parser.parse_args(argv)


def ensure_database(url):
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or parts.hostname not in LOOPBACK:
        sys.exit("the benchmark needs a PostgreSQL database on this machine (postgres://...@127.0.0.1/...)")
    import psycopg

    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=os.environ, check=True
    )


def prepare(window):
    """The demo project with a bundle on canary at 100 %; returns (project, export)."""
    from annotation.models import Project
    from annotation.services.demo import DEMO_SLUG, create_demo
    from deployment import channels
    from deployment.monitoring_models import MonitoringThresholds
    from training import exports, services
    from training.models import ModelVersion

    project = Project.objects.filter(slug=DEMO_SLUG).first()
    if project is None:
        project, _ = create_demo(simulate_labelers=3, log=print)
    MonitoringThresholds.objects.update_or_create(
        project=project, channel="", defaults={"window": window, "alpha": 0.001, "psi_warning": 0.25, "min_inputs": 20}
    )
    canary = channels.channels_of(project)["canary"]
    if canary.export_id is None:
        started = time.perf_counter()
        version = ModelVersion.objects.create(
            project=project,
            trainer="keras_cnn",
            hyperparameters=services.check_hyperparameters(
                "keras_cnn", {"epochs": 10, "image_size": 16, "filters": 16, "batch_size": 32, "augment": 0.0}
            ),
            policy=services.check_policy(None),
        )
        assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
        export = exports.start_export(ModelVersion.objects.get(pk=version.pk), "int8", queue_task=False)
        assert exports.run_export(export.pk) == "ready"
        export.refresh_from_db()
        channels.publish(canary, export, note="field benchmark")
        channels.set_share(channels.channels_of(project)["canary"], 100, note="field benchmark")
        print(f"trained and exported a bundle in {time.perf_counter() - started:.0f} s")
    return project, channels.channels_of(project)["canary"].export


def start_server(port, log_path):
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "false",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(  # noqa: S603 - a fixed command line
        [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server stopped at start; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/login/")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    sys.exit(f"the server did not answer within 60 s; see {log_path}")


def main(argv=None):
    args = parse_args(argv)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["MEDIA_ROOT"] = args.media_root
    os.environ["DEPLOYMENT_BATCHES_PER_MINUTE"] = "100000"  # simulated devices send far faster than real ones
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    ensure_database(args.database_url)
    import django

    django.setup()
    from deployment.monitoring_simulation import run

    project, export = prepare(args.window)
    server = start_server(args.port, Path(tempfile.gettempdir()) / "concord_bench_field_server.log")
    rows = []
    try:
        for seed in [int(s) for s in args.seeds.split(",")]:
            figures = run(
                project,
                url=f"http://127.0.0.1:{args.port}",
                n_devices=args.devices,
                stable=args.stable,
                drift=args.drift,
                batch=args.batch,
                sample_rate=args.sample_rate,
                seed=seed,
                label=True,
                log=lambda *a: None,
            )
            print(json.dumps(figures))
            rows.append(figures)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = report(args, rows, export)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


def report(args, rows, export):
    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    lines = [
        SECTION,
        "",
        f"`benchmarks/field_simulation.py`, {date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{platform.machine()}, Python {platform.python_version()}, PostgreSQL, gunicorn with 2 workers. The demo "
        f"project (1,797 digits); a Keras CNN (16 px) exported to int8 TFLite (dev parity accuracy "
        f"{pct((export.parity or {}).get('tflite_accuracy'))}), on canary at 100 %. Per seed: {args.devices} devices "
        f"running the runner's Bundle (LiteRT), a control stream of {args.stable + args.drift:,} predictions with no "
        f"drift, then {args.stable:,} stable and {args.drift:,} drifting ones (rotation up to 75 degrees, thinning, "
        f"noise, rising linearly); windows of {args.window} predictions, alpha 0.001 per window; inputs sampled at "
        f"{args.sample_rate:.0%} and labelled with their truth.",
        "",
        "| seed | false alarms: control windows | false alarms: stable windows | drift caught after (predictions) "
        "| by | field accuracy [95 % CI] | true accuracy | covers | records | batches | batch p50 / p95 ms "
        "| records/s in requests |",
        "|---:|---:|---:|---:|---|---|---:|---|---:|---:|---|---:|",
    ]
    for f in rows:
        ci = f.get("field_ci") or [None, None]
        lines.append(
            f"| {f['seed']} | {f['false_alarm_windows']} of {f['control_windows']} | "
            f"{f['stable_false_alarm_windows']} of {f['stable_windows']} | "
            f"{f['samples_to_alarm'] if f['detected'] else 'not caught'} | {', '.join(f['caught_by'])} | "
            f"{pct(f.get('field_accuracy'))} [{pct(ci[0])}, {pct(ci[1])}] | {pct(f['true_accuracy'])} | "
            f"{'yes' if f.get('covers_truth') else 'no'} | {f['records']:,} | {f['batches']} | "
            f"{f['batch_p50_ms']} / {f['batch_p95_ms']} | {f['records_per_second_in_requests']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
