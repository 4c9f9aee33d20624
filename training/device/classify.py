#!/usr/bin/env python3
"""Classify image files with a Concord TFLite bundle — the reference runner for device teams.

Needs only ``ai-edge-litert``, NumPy and Pillow (no TensorFlow, no Django)::

    python classify.py BUNDLE.zip IMAGE [IMAGE ...]

prints one line per image: ``PATH<TAB>CLASS<TAB>SCORE``. A bundle that is missing, not a zip,
or incomplete, or an image that cannot be read, gives a one-line message on stderr and exit
code 2.

The bundle's metadata.json says how to prepare an image (``preprocessing``: grayscale, resize,
resample, scale) and how the model's input and output are quantized (``input``/``output``:
dtype, scale, zero_point); this script applies exactly that.
"""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
from PIL import Image

__all__ = ["Bundle", "BundleError", "main"]


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


if __name__ == "__main__":
    sys.exit(main())
