#!/usr/bin/env python3
"""Classify image files with a Concord TFLite bundle — the reference runner for device teams.

Needs only ``ai-edge-litert``, NumPy and Pillow (no TensorFlow, no Django)::

    python classify.py BUNDLE.zip IMAGE [IMAGE ...]

prints one line per image: ``PATH<TAB>CLASS<TAB>SCORE``. A bundle that is missing, not a zip,
or incomplete, or an image that cannot be read, gives a one-line message on stderr and exit
code 2.

Reporting mode (a device in the field; standard-library ``urllib`` only)::

    python classify.py report --server URL --token=TOKEN --buffer FILE [IMAGE ...]

fetches the bundle of the device's channel (cached on disk beside FILE; the ETag makes an
unchanged bundle a 304), classifies the images, appends one record per image to FILE (an
append-only JSON-lines buffer that survives a restart), then sends the buffer in batches. A batch
leaves the buffer only after the server answered 2xx; when the server cannot be reached the
records stay and go with the next run. Exit code 0 (also when records were kept for later), 2 for
a bad bundle, image or argument, 3 when the server refuses the token. See :class:`Reporter`.

The bundle's metadata.json says how to prepare an image (``preprocessing``: grayscale, resize,
resample, scale) and how the model's input and output are quantized (``input``/``output``:
dtype, scale, zero_point); this script applies exactly that.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Bundle", "BundleError", "Reporter", "ReporterError", "main"]


class BundleError(Exception):
    """The bundle or an image cannot be used; the message says why."""


class Bundle:
    """A loaded bundle: ``labels``, ``metadata`` and ``classify(paths)``."""

    def __init__(self, path, num_threads: int | None = None):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                missing = sorted({"model.tflite", "labels.txt", "metadata.json"} - names)
                if missing:
                    raise BundleError(f"{path}: not a Concord bundle (missing {', '.join(missing)})")
                model = archive.read("model.tflite")
                self.labels = archive.read("labels.txt").decode("utf-8").splitlines()
                self.metadata = json.loads(archive.read("metadata.json").decode("utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise BundleError(f"{path}: is a folder, not a bundle") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise BundleError(f"{path}: not a readable zip bundle ({exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: unreadable labels or metadata ({exc})") from None
        try:
            prep = self.metadata["preprocessing"]
            self.size = (int(prep["resize"][0]), int(prep["resize"][1]))
            self.grayscale = bool(prep.get("grayscale", True))
            self.scale = float(prep["scale"])
            self.input_quant = self.metadata["input"]
            self.output_quant = self.metadata["output"]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BundleError(f"{path}: metadata.json lacks the preprocessing or quantization ({exc})") from None
        try:
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{path}: model.tflite cannot be loaded ({exc})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        if int(self.output["shape"][-1]) != len(self.labels):
            n = int(self.output["shape"][-1])
            raise BundleError(f"{path}: labels.txt has {len(self.labels)} classes, the model {n}")

    def pixels(self, path) -> np.ndarray:
        """The float input of one image: (H, W, 1) in [0, 1] as the bundle prescribes."""
        try:
            with Image.open(path) as im:
                im.draft("L", (256, 256))
                im = im.convert("L" if self.grayscale else "RGB").resize(self.size, Image.Resampling.BILINEAR)
                x = np.asarray(im, dtype=np.float32) * np.float32(self.scale)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BundleError(f"{path}: not a readable image ({exc})") from None
        return x[..., None] if x.ndim == 2 else x

    def scores(self, path) -> np.ndarray:
        """Class scores (K,) of one image, dequantized."""
        x = self.pixels(path)[None]
        if self.input["dtype"] == np.int8:
            scale, zero = self.input["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"], copy=False))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])[0]
        if self.output["dtype"] == np.int8:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.asarray(y, dtype=np.float32)

    def classify(self, paths):
        """(path, class name, score) per image."""
        out = []
        for path in paths:
            s = self.scores(path)
            k = int(np.argmax(s))
            out.append((str(path), self.labels[k], float(s[k])))
        return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: classify.py BUNDLE.zip IMAGE [IMAGE ...]", file=sys.stderr)
        return 2
    try:
        bundle = Bundle(argv[0])
        for path in argv[1:]:
            _, name, score = bundle.classify([path])[0]
            print(f"{path}\t{name}\t{score:.4f}", flush=True)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------------------------
# Reporting mode: bundle from the server, telemetry back to it
# --------------------------------------------------------------------------------------------


class ReporterError(Exception):
    """The server refused this device (revoked or wrong token), or answered what we cannot use."""


class Unreachable(Exception):
    """The server cannot be reached or is failing (5xx, 429): try again later, keep the records."""


TOP_SCORES = 3


class Reporter:
    """One device's link to the server: its bundle (cached), its buffer of unsent records.

    Files, all beside ``buffer`` (so one folder is the device's whole state):

    - ``buffer``: JSON lines, one record each, appended and fsynced as predictions are made; a
      record leaves only when a batch holding it got a 2xx (the file is rewritten to a temporary
      name and renamed over, so a crash leaves the old or the new file, never half of one);
    - ``<buffer>.state``: the next sequence number, reserved (written and fsynced) before the record
      that uses it, so a restart never reuses one (the server keeps the first record of a seq);
    - ``<buffer>.bundle.zip`` / ``.meta.json``: the last bundle and its metadata; its SHA-256 is sent
      as ``If-None-Match`` and an unchanged bundle costs a 304.

    Inputs: a prediction less confident than the channel's threshold goes with its image (the server
    always wants those); for the others the server answers ``inputs_wanted`` and the reporter queues
    those records again with their image, for the next batch. A record keeps the image's local path
    (``_input_path``, never sent), read when the batch is built.

    ``classifier``: a callable ``(path) -> scores (K,)`` in the bundle's class order; by default the
    bundle's TFLite interpreter. ``opener`` is ``urllib.request.urlopen`` or a stand-in.
    """

    def __init__(self, server, token, buffer, *, classifier=None, batch_size=None, timeout=15.0, opener=None):
        self.server = server.rstrip("/")
        self.token = token
        self.buffer = Path(buffer)
        self.classifier = classifier
        self.batch_size = batch_size
        self.timeout = timeout
        self.opener = opener or urllib.request.urlopen
        self.meta = None
        self.bundle = None
        if not self.server.startswith(("http://", "https://")):
            raise ReporterError(f"--server {server!r}: give an http:// or https:// address")
        names = ("state", "bundle.zip", "meta.json")
        self._files = {k: self.buffer.with_name(f"{self.buffer.name}.{k}") for k in names}

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, path, *, body=None, headers=None):
        """(status, headers, body bytes); raises Unreachable or ReporterError."""
        method = "POST" if body is not None else "GET"
        request = urllib.request.Request(self.server + path, data=body, method=method)  # noqa: S310 - http(s) only
        request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self.opener(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if exc.code == 304:
                return 304, exc.headers, b""
            if exc.code == 401:
                raise ReporterError(f"the server refused the device token (401): {_detail(payload)}") from None
            if exc.code == 429 or exc.code >= 500:
                raise Unreachable(f"server answered {exc.code}") from None
            return exc.code, exc.headers, payload
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.server}: {exc}") from None

    # -- bundle -----------------------------------------------------------------------------

    def sync_bundle(self) -> dict:
        """The channel's metadata, with the bundle on disk up to date. Offline: the cached pair."""
        try:
            status, _, body = self._request("/api/v1/device/bundle/meta")
            if status != 200:
                raise ReporterError(f"bundle metadata: {status} {_detail(body)}")
            meta = json.loads(body)
            cached = self._files["bundle.zip"]
            etag = f'"{self.meta_cached().get("sha256")}"' if cached.exists() else None
            status, _, body = self._request("/api/v1/device/bundle", headers={"If-None-Match": etag} if etag else {})
            if status == 200:
                if hashlib.sha256(body).hexdigest() != meta["sha256"]:
                    raise Unreachable("the bundle changed while it was fetched")  # fetch again next time
                _replace(cached, body)
                _replace(self._files["meta.json"], json.dumps(meta).encode())
            elif status == 304:
                _replace(self._files["meta.json"], json.dumps(meta).encode())
            else:
                raise ReporterError(f"bundle: {status} {_detail(body)}")
        except Unreachable:
            if not self._files["bundle.zip"].exists():
                raise
        self.meta = self.meta_cached()
        return self.meta

    def meta_cached(self) -> dict:
        path = self._files["meta.json"]
        return json.loads(path.read_text()) if path.exists() else {}

    def _scores(self, path):
        if self.classifier is not None:
            return self.classifier(path)
        if self.bundle is None:
            self.bundle = Bundle(self._files["bundle.zip"])
        return self.bundle.scores(path)

    # -- buffer -----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        path = self._files["state"]
        seq = json.loads(path.read_text())["next_seq"] if path.exists() else 0
        _replace(path, json.dumps({"next_seq": seq + 1}).encode())
        return seq

    def _append(self, records):
        with open(self.buffer, "a", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def pending(self) -> list:
        """The records not yet sent (a torn last line from a crash is skipped)."""
        if not self.buffer.exists():
            return []
        records = []
        for line in self.buffer.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def classify(self, paths) -> list:
        """Classify images with the current bundle and buffer one record each; (path, class, score)."""
        meta = self.meta or self.sync_bundle()
        labels, threshold = meta["classes"], meta["confidence_threshold"]
        out = []
        for path in paths:
            start = time.perf_counter()
            scores = [min(1.0, max(0.0, float(s))) for s in self._scores(path)]
            latency = (time.perf_counter() - start) * 1000
            best = max(range(len(scores)), key=scores.__getitem__)
            top = sorted(range(len(scores)), key=lambda k: -scores[k])[:TOP_SCORES]
            record = {
                "seq": self._next_seq(),
                "predicted_at": datetime.now(UTC).isoformat(),
                "bundle_sha256": meta["sha256"],
                "predicted_class": labels[best],
                "top_scores": {labels[k]: round(scores[k], 6) for k in top},
                "latency_ms": round(latency, 3),
                "_input_path": str(Path(path).resolve()),
            }
            if scores[best] < threshold:
                record["_send_input"] = True
            self._append([record])
            out.append((str(path), labels[best], scores[best]))
        return out

    def _wire(self, record, max_input):
        sent = {k: v for k, v in record.items() if not k.startswith("_")}
        if record.get("_send_input"):
            data = _input_bytes(record.get("_input_path"), max_input)
            if data is not None:
                sent["input"] = base64.b64encode(data).decode("ascii")
        return sent

    def flush(self) -> dict:
        """Send the buffer in batches until it is empty or the server is out of reach.

        {"sent": records the server took, "dropped": records it refused for good (listed on stderr),
        "kept": records still buffered, "error": why sending stopped, or None}."""
        meta = self.meta or self.meta_cached()
        size = self.batch_size or meta.get("max_batch", 500)
        max_input = meta.get("max_input_bytes", 1024 * 1024)
        sent = dropped = 0
        error = None
        while True:
            records = self.pending()
            if not records:
                break
            batch = records[:size]
            body = gzip.compress(json.dumps({"records": [self._wire(r, max_input) for r in batch]}).encode())
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            try:
                status, _, payload = self._request("/api/v1/device/telemetry", body=body, headers=headers)
            except Unreachable as exc:
                error = str(exc)
                break
            if status == 413 and size > 1:
                size = max(1, size // 2)  # too big for the server's caps: smaller batches
                continue
            answer = _json(payload)
            if status >= 300 and not (status == 400 and "rejected" in answer):
                error = f"server answered {status}: {_detail(payload)}"
                break
            for bad in answer.get("rejected", []):
                print(f"dropped record seq {bad.get('seq')}: {bad.get('field')} {bad.get('reason')}", file=sys.stderr)
            dropped += len(answer.get("rejected", []))
            sent += answer.get("accepted", 0)
            wanted = set(answer.get("inputs_wanted", []))
            again = [{**r, "_send_input": True} for r in batch if r["seq"] in wanted and not r.get("_send_input")]
            self._rewrite(records[len(batch) :] + again)
        return {"sent": sent, "dropped": dropped, "kept": len(self.pending()), "error": error}

    def _rewrite(self, records):
        _replace(self.buffer, "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))


def _replace(path, data: bytes):
    """Write `data` to `path` atomically: a temporary file, fsynced, renamed over."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _json(payload):
    try:
        value = json.loads(payload or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _detail(payload):
    answer = _json(payload)
    return str(answer.get("detail", answer) if answer else payload[:200])


def _input_bytes(path, max_bytes):
    """The image as PNG or JPEG bytes within `max_bytes` (re-encoded as PNG if need be), or None."""
    try:
        data = Path(path).read_bytes()
        if (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff")) and len(data) <= max_bytes:
            return data
        with Image.open(io.BytesIO(data)) as image:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return buffer.getvalue() if len(buffer.getvalue()) <= max_bytes else None


def report_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="classify.py report", description="Classify and report to Concord.")
    parser.add_argument("--server", required=True, help="e.g. https://concord.example.org")
    parser.add_argument("--token", required=True, help="this device's token")
    parser.add_argument("--buffer", required=True, help="the unsent-records file (its folder holds the cache)")
    parser.add_argument("--batch", type=int, default=None, help="records per batch (default: the server's max)")
    parser.add_argument("images", nargs="*", help="images to classify (none: only send what is buffered)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    try:
        reporter = Reporter(args.server, args.token, args.buffer, batch_size=args.batch)
    except ReporterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.images:
            try:
                reporter.sync_bundle()
            except Unreachable as exc:
                print(f"error: no bundle yet and the server is out of reach ({exc})", file=sys.stderr)
                return 2
            for path, name, score in reporter.classify(args.images):
                print(f"{path}\t{name}\t{score:.4f}", flush=True)
        result = reporter.flush()
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ReporterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    note = f"; kept for later: {result['error']}" if result["error"] else ""
    print(f"sent {result['sent']}, dropped {result['dropped']}, buffered {result['kept']}{note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
