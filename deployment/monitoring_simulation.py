"""The field simulator behind ``manage.py simulate_field``: simulated devices running the device
runner against a live server, a stable phase, then a drifting one, and what monitoring made of it.

What it does, in order (seeded: the same seed sends the same images in the same order):

1. Picks the images a device "sees": the project's dev and test items that have a ground truth
   (gold, else resolution, else the labels' majority: deployment/field_queue.py's rule), so the
   truth of every prediction is known and none was trained on.
2. Registers N devices whose ids put them on the chosen channel (the canary draw is a hash of
   the id), and sets the channel's sampling to ``sample_rate`` with no confidence threshold, so
   the inputs that come back are a uniform sample of the predictions (the field-accuracy
   estimate is then unbiased; the old settings are put back at the end).
3. **Control**: a stream with no drift, as long as the two phases together: every window that
   alarms is a false alarm.
4. **Stable, then drifting**: the same images, then more and more rotated, thinned and noised
   (severity rising linearly from 0 to 1 over the drifting phase). Detection delay = predictions
   of the drifting phase sent until the window that raised the alert.

Each device is the device runner's own reporting mode (:class:`training.device.classify.Reporter`:
bundle fetched by ETag, append-only buffer, gzip batches, the inputs the server asks for sent in
the same flush), classifying with the bundle's TFLite model. After every round of batches the
monitoring task's two steps run, in this process, as beat would run them. Stable-phase images keep
their pixels exactly but get a PNG text chunk with the device and image number, so
each is a new input (a byte-identical image would be the training item itself).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db.models import Max
from PIL import Image, ImageFilter, PngImagePlugin

from annotation.models import Item, LabelClass

from . import channels, devices, field_queue, keys, monitoring
from .field_inputs import FIELD_SOURCE
from .models import ChannelName, Device, TelemetryRecord
from .monitoring_models import DriftAlert, DriftWindow

MAX_ROTATION = 75.0  # degrees at full severity
MAX_NOISE = 60.0  # gray levels (standard deviation) at full severity


class SimulationError(Exception):
    """The project cannot be simulated (no bundle on the channel, no images with a truth...)."""


def drifted(image: Image.Image, severity: float, rng: np.random.Generator) -> Image.Image:
    """The image as a drifting device sees it: rotated by up to 75 degrees, strokes thinned from
    severity 0.5 on, and Gaussian noise; severity 0 returns the pixels unchanged."""
    if severity <= 0:
        return image
    gray = image.convert("L")
    angle = float(rng.choice([-1, 1])) * MAX_ROTATION * severity
    gray = gray.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
    if severity >= 0.5:
        gray = gray.filter(ImageFilter.MaxFilter(3))  # dark ink on light paper: thinner strokes
    noisy = np.asarray(gray, dtype=np.float64) + rng.normal(0.0, MAX_NOISE * severity, size=gray.size[::-1])
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")


def png_bytes(image: Image.Image, tag: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("concord-sim", tag)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


@dataclass
class SimDevice:
    """One simulated device: its token, its Reporter (the device runner's reporting mode, with the
    runner's own buffer, bundle cache and TFLite Bundle) and the truth of each of its predictions."""

    name: str
    token: str
    pk: int = 0
    reporter: object = None
    images: int = 0
    truth: dict = field(default_factory=dict)  # seq -> (true class name, predicted class name)


class Timer:
    """Wraps ``urllib.request.urlopen`` for the Reporter: times every telemetry POST, counts 429s."""

    def __init__(self):
        self.batch_seconds: list[float] = []
        self.throttled = 0

    def __call__(self, request, timeout=None):
        started = time.perf_counter()
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the operator's own server)
        except urllib.error.HTTPError as exc:
            self.throttled += exc.code == 429
            raise
        if request.full_url.endswith("/api/v1/device/telemetry"):
            self.batch_seconds.append(time.perf_counter() - started)
        return response


def _report(device: SimDevice, folder: Path, images: list[tuple[bytes, str]]) -> None:
    """Classify the images with the device's Reporter and send its buffer (the Reporter sends the
    inputs the server asks for in the same flush). A 429 (over the per-device rate) or an
    unreachable server keeps the records buffered: wait, then flush again, as a device would."""
    paths = []
    for data, _ in images:
        path = folder / f"{device.name}-{device.images:06d}.png"
        device.images += 1
        path.write_bytes(data)
        paths.append(path)
    device.reporter.classify(paths)
    by_path = {str(p.resolve()): truth for p, (_, truth) in zip(paths, images, strict=True)}
    for record in device.reporter.pending():
        if record.get("_input_path") in by_path and record["seq"] not in device.truth:
            device.truth[record["seq"]] = (by_path[record["_input_path"]], record["predicted_class"])
    for _attempt in range(10):
        result = device.reporter.flush()
        if result["kept"] == 0:
            return
        time.sleep(2.0)
    raise SimulationError(f"{device.name} could not send its telemetry: {result['error']}")


def _pool(project) -> tuple[list[str], list[str]]:
    """Image paths and true class names of the project's dev and test items with a truth, field
    items (inputs sent back by devices, of earlier runs too) left out."""
    from django.core.files.storage import default_storage

    rows = list(
        Item.objects.filter(project=project, split__in=["dev", "test"])
        .exclude(image="")
        .exclude(source_name=FIELD_SOURCE)  # inputs of earlier runs: drifted ones would leak into "stable"
        .order_by("pk")
        .values_list("pk", "image")
    )
    truth = field_queue._truth(project, [pk for pk, _ in rows])
    names = dict(LabelClass.objects.filter(project=project).values_list("pk", "name"))
    pool = [(default_storage.path(image), names[truth[pk]]) for pk, image in rows if pk in truth]
    if len(pool) < 10:
        raise SimulationError("the project needs at least 10 dev or test images with a ground truth to simulate")
    return [p for p, _ in pool], [t for _, t in pool]


def _devices(project, channel_name: str, n: int, seed: int, canary_share: int) -> list[SimDevice]:
    out, j = [], 0
    while len(out) < n:
        uid = f"sim-{seed}-{j}"
        j += 1
        on_canary = keys.on_canary(uid, canary_share)
        if (channel_name == ChannelName.CANARY) != on_canary:
            continue
        for earlier in Device.objects.filter(project=project, device_uid=uid, revoked_at__isnull=True):
            devices.revoke_device(earlier)  # a device of an earlier run with this seed: its token is gone
        issued = devices.create_device(project, name=uid, device_uid=uid)
        out.append(SimDevice(name=uid, token=issued.secret, pk=issued.obj.pk))
        if j > 100_000:
            raise SimulationError("no device id lands on that channel")
    return out


def _group_windows(project, channel, export_id):
    return DriftWindow.objects.filter(project=project, channel=channel, export_id=export_id, device__isnull=True)


def run(project, *, url, channel="canary", n_devices=4, stable=1000, drift=1000, batch=50, sample_rate=0.2, seed=0,
        label=False, control=True, log=print) -> dict:  # fmt: skip
    """Run the simulation (module docstring) and return its figures; ``control=False`` skips the
    no-drift control stream (no false-alarm figures then)."""
    chans = channels.channels_of(project)
    chan = chans[channel]
    if chan.export_id is None:
        raise SimulationError(f"no bundle is published on the {channel} channel")
    if channel == ChannelName.CANARY and chan.canary_share == 0:
        raise SimulationError("the canary share is 0 %: no device runs canary")
    export_id = chan.export_id
    paths, truths = _pool(project)
    rng = np.random.default_rng(seed)
    previous = {"sample_rate": chan.sample_rate, "confidence_threshold": chan.confidence_threshold}
    channels.update_settings(chan, sample_rate=sample_rate, confidence_threshold=0.0, note="simulate_field")
    timer = Timer()
    fleet = _devices(project, channel, n_devices, seed, chan.canary_share)
    figures = {"devices": n_devices, "channel": channel, "stable": stable, "drift": drift, "seed": seed}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            from training.device.classify import Reporter

            for device in fleet:
                device.reporter = Reporter(url, device.token, folder / f"{device.name}.jsonl", batch_size=batch,
                                           timeout=60.0, opener=timer)  # fmt: skip
                device.reporter.sync_bundle()

            def stream(total, severity_of, phase):
                sent = 0
                while sent < total:
                    for device in fleet:
                        take = min(batch, total - sent)
                        if take <= 0:
                            break
                        images = []
                        for _ in range(take):
                            k = int(rng.integers(len(paths)))
                            with Image.open(paths[k]) as im:
                                image = drifted(im.convert("L"), severity_of(sent), rng)
                            tag = f"{phase}:{device.name}:{device.images + len(images)}"
                            images.append((png_bytes(image, tag), truths[k]))
                            sent += 1
                        _report(device, folder, images)
                    # what beat's monitoring task does (deployment/monitoring_tasks.py), in this process
                    monitoring.monitor_project(project)
                    field_queue.queue_field_items(project)

            group = {"project": project, "channel": channel, "export_id": export_id}
            for alert in DriftAlert.objects.filter(**group, status="open"):
                monitoring.acknowledge(alert, None)  # left open by an earlier run: this run starts clean
            last = _group_windows(project, channel, export_id).aggregate(m=Max("last_record"))["m"] or 0
            # 1. control: no drift over the same length
            if control:
                stream(stable + drift, lambda i: 0.0, "control")
            control_windows = list(_group_windows(project, channel, export_id).filter(first_record__gt=last))
            false_alarms = sum(w.alarm for w in control_windows)
            open_alerts = DriftAlert.objects.filter(**group, status="open")
            control_alert = open_alerts.filter(device__isnull=True).exists()
            for alert in open_alerts:
                monitoring.acknowledge(alert, None)
            records = TelemetryRecord.objects.filter(**group)
            control_ids = [w.pk for w in control_windows]
            # 2. stable, then drifting
            stream(stable, lambda i: 0.0, "stable")
            drift_from = records.aggregate(m=Max("id"))["m"] or 0  # the last stable record
            stream(drift, lambda i: (i + 1) / drift, "drift")
            run_windows = _group_windows(project, channel, export_id).filter(first_record__gt=last)
            stable_windows = run_windows.filter(last_record__lte=drift_from).exclude(pk__in=control_ids)
            caught = run_windows.filter(alarm=True, last_record__gt=drift_from).order_by("first_record").first()
            alert = DriftAlert.objects.filter(**group, device__isnull=True, status="open").first()
            elapsed = time.perf_counter() - started
    finally:
        channels.update_settings(chan, **previous, note="simulate_field: settings restored")
    figures.update(
        control_windows=len(control_windows),
        false_alarm_windows=int(false_alarms),
        false_alarm_rate=false_alarms / len(control_windows) if control_windows else None,
        control_alert=control_alert,
        window=monitoring.thresholds(project, channel)["window"],
        alpha=monitoring.thresholds(project, channel)["alpha"],
        stable_windows=stable_windows.count(),
        stable_false_alarm_windows=stable_windows.filter(alarm=True).count(),
        detected=caught is not None,
        caught_by=caught.reasons if caught else [],
        # drifting predictions sent until the end of the first alarming window that holds some
        samples_to_alarm=records.filter(id__gt=drift_from, id__lte=caught.last_record).count() if caught else None,
        alert_open=alert is not None,
        windows_total=run_windows.count(),
        records=sum(len(device.truth) for device in fleet),
        seconds=round(elapsed, 2),
    )
    figures.update(_latency(timer, figures["records"]))
    figures.update(_accuracy(project, export_id, fleet, label))
    log(json.dumps(figures, indent=2))
    return figures


def _latency(timer: Timer, records: int) -> dict:
    s = np.asarray(timer.batch_seconds)
    spent = float(s.sum()) or math.nan
    return {
        "batches": int(s.size),
        "throttled": timer.throttled,
        "batch_p50_ms": round(float(np.percentile(s, 50)) * 1000, 1) if s.size else None,
        "batch_p95_ms": round(float(np.percentile(s, 95)) * 1000, 1) if s.size else None,
        "records_per_second_in_requests": round(records / spent, 1) if s.size else None,
    }


def _accuracy(project, export_id, fleet, label: bool) -> dict:
    """The bundle's true accuracy over every prediction of the run, and (with ``label``: a
    simulated labeler gives each field item its true class) the field-accuracy estimate."""
    pairs = [pair for device in fleet for pair in device.truth.values()]
    true_accuracy = float(np.mean([t == p for t, p in pairs])) if pairs else None
    out = {"true_accuracy": true_accuracy, "field_items": 0}
    if label:
        # this run's field items only (field_accuracy counts every run of the same bundle): each
        # item's first prediction against its truth, with field_queue's Wilson interval
        labelled, correct = _label_field_items(project, fleet)
        low, high = field_queue.wilson(correct, labelled)
        out.update(
            field_items=labelled,
            field_accuracy=correct / labelled if labelled else None,
            field_ci=[low, high],
            covers_truth=bool(labelled and low <= true_accuracy <= high),
        )
    return out


def _label_field_items(project, fleet) -> tuple[int, int]:
    """Label each field item of the run with its true class, as user ``simulated-field-labeler``
    (a labeler of the project, created on first use); returns (items, items predicted right)."""
    from django.contrib.auth import get_user_model

    from annotation.models import Annotation, AnnotationLabel, Membership, Role

    user, _ = get_user_model().objects.get_or_create(username="simulated-field-labeler")
    Membership.objects.get_or_create(user=user, project=project, defaults={"role": Role.LABELER})
    names = {n: pk for pk, n in LabelClass.objects.filter(project=project).values_list("pk", "name")}
    first = {}  # item id -> (truth, prediction) of the first record that brought it back
    for device in fleet:
        rows = TelemetryRecord.objects.filter(device_id=device.pk, item__isnull=False).order_by("seq")
        for seq, item_id in rows.values_list("seq", "item_id"):
            first.setdefault(item_id, device.truth[seq])
    labelled = set(Annotation.objects.filter(item_id__in=first, is_current=True).values_list("item_id", flat=True))
    todo = [(item_id, t) for item_id, (t, _) in first.items() if item_id not in labelled]
    annotations = Annotation.objects.bulk_create(Annotation(item_id=item_id, labeler=user) for item_id, _ in todo)
    AnnotationLabel.objects.bulk_create(
        AnnotationLabel(annotation=a, label_class_id=names[t]) for a, (_, t) in zip(annotations, todo, strict=True)
    )
    return len(first), sum(t == p for t, p in first.values())
