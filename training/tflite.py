"""TensorFlow Lite export of a Keras CNN: conversion, parity check and the bundle (worker-only).

- :func:`convert` turns a Keras model into a float32 ``.tflite`` or a full-integer int8 one
  (``TFLITE_BUILTINS_INT8`` only, int8 input and output, calibrated on a representative set);
- :func:`run_tflite` runs a ``.tflite`` with the LiteRT interpreter (``ai_edge_litert``) on
  preprocessed images, quantizing the input and dequantizing the output as the model says;
- :func:`parity` compares its dev accuracy with the Keras model's, overall and per slice;
- :func:`write_bundle` writes the zip (``model.tflite``, ``labels.txt``, ``metadata.json``)
  atomically and returns its SHA-256.

TensorFlow is imported only inside :func:`convert`; importing this module never imports it.
The device side of the same preprocessing is training/device/classify.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile

import numpy as np

from .trainers import atomic_write

BUNDLE_FORMAT = 1
MAX_SLICE_VALUES = 20  # metadata keys with more values than this are not sliced


def preprocessing(image_size: int) -> dict:
    """How keras_cnn turns an image file into its input (training.datasets.load_dataset/_pixels)."""
    return {
        "grayscale": True,  # PIL convert("L") after draft("L", (256, 256))
        "resize": [image_size, image_size],  # width, height
        "resample": "bilinear",
        "scale": 1.0 / 255.0,  # float input = pixel * scale, in [0, 1]
        "layout": "NHWC",
    }


def inference_model(keras_model):
    """The model without its augmentation layers (``Random*``: identity at prediction time, but
    traced as random ops that TFLite builtins lack), sharing the trained weights."""
    import keras

    kept = [layer for layer in keras_model.layers if not type(layer).__name__.startswith("Random")]
    if len(kept) == len(keras_model.layers):
        return keras_model
    return keras.Sequential([keras.Input(shape=keras_model.input_shape[1:]), *kept], name=keras_model.name)


def convert(keras_model, fmt: str, representative: np.ndarray | None = None) -> bytes:
    """The ``.tflite`` bytes of ``keras_model`` in ``fmt`` ("float32" or "int8"). ``representative``
    is a float32 array (N, S, S) of preprocessed train images, needed for int8."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if fmt not in ("float32", "int8"):
        raise ValueError(f"unknown export format {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="concord-savedmodel-") as folder:
        inference_model(keras_model).export(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if fmt == "int8":
            if representative is None or len(representative) == 0:
                raise ValueError("the representative set is empty: int8 quantization needs train images")
            rep = np.asarray(representative, dtype=np.float32)
            if rep.ndim == 3:
                rep = rep[..., None]

            def dataset():
                for x in rep:
                    yield [x[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return bytes(converter.convert())


def _interpreter(model_bytes: bytes, n_threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=n_threads or None)
    interpreter.allocate_tensors()
    return interpreter


def io_details(model_bytes: bytes) -> dict:
    """Shape, dtype and quantization (scale, zero point) of the input and the output."""
    interpreter = _interpreter(model_bytes)
    out = {}
    for key, detail in (("input", interpreter.get_input_details()[0]), ("output", interpreter.get_output_details()[0])):
        scale, zero_point = detail["quantization"]
        out[key] = {
            "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return out


def run_tflite(model_bytes: bytes, X: np.ndarray, n_threads: int | None = None) -> tuple[np.ndarray, float]:
    """Class scores (N, K) of ``X`` (float32 (N, S, S) in [0, 1]) one image at a time, as a device
    would, and the mean latency per image in milliseconds."""
    interpreter = _interpreter(model_bytes, n_threads)
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = outp["quantization"]
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 3:
        X = X[..., None]
    scores = np.zeros((len(X), int(outp["shape"][-1])), dtype=np.float64)
    elapsed = 0.0
    for i, x in enumerate(X):
        x = x[None]
        if inp["dtype"] == np.int8:
            x = np.clip(np.round(x / in_scale + in_zero), -128, 127).astype(np.int8)
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(outp["index"])[0]
        elapsed += time.perf_counter() - start
        if outp["dtype"] == np.int8:
            y = (y.astype(np.float64) - out_zero) * out_scale
        scores[i] = y
    return scores, (1000.0 * elapsed / len(X) if len(X) else 0.0)


def _slices(metadata: list) -> dict[str, np.ndarray]:
    """'key=value' -> row indices, for metadata keys with at most MAX_SLICE_VALUES values. Tags
    come in the metadata as "tag:<name>": "yes" (annotation.tag_slices.with_tags), so each tag is
    the slice "tag:<name>=yes"."""
    values: dict[str, dict[str, list[int]]] = {}
    for i, meta in enumerate(metadata):
        for key, value in (meta or {}).items():
            if isinstance(value, str | int | float | bool):
                values.setdefault(str(key), {}).setdefault(str(value), []).append(i)
    out = {}
    for key in sorted(values):
        if len(values[key]) <= MAX_SLICE_VALUES:
            for value in sorted(values[key]):
                out[f"{key}={value}"] = np.asarray(values[key][value], dtype=np.int64)
    return out


def parity(y: np.ndarray, keras_pred: np.ndarray, tflite_pred: np.ndarray, metadata: list) -> dict:
    """Dev accuracy of the Keras model and the TFLite model, their agreement, and per slice the
    delta (TFLite minus Keras accuracy). ``delta`` < 0 is a loss."""
    y = np.asarray(y)
    keras_pred, tflite_pred = np.asarray(keras_pred), np.asarray(tflite_pred)

    def acc(pred, rows=None):
        if rows is not None:
            return float(np.mean(pred[rows] == y[rows])) if len(rows) else None
        return float(np.mean(pred == y)) if y.size else None

    keras_acc, tflite_acc = acc(keras_pred), acc(tflite_pred)
    slices = []
    for name, rows in _slices(metadata).items():
        k, t = acc(keras_pred, rows), acc(tflite_pred, rows)
        slices.append({"slice": name, "n": len(rows), "keras_accuracy": k, "tflite_accuracy": t, "delta": t - k})
    return {
        "n": int(y.size),
        "keras_accuracy": keras_acc,
        "tflite_accuracy": tflite_acc,
        "delta": None if keras_acc is None else tflite_acc - keras_acc,
        "agreement": float(np.mean(keras_pred == tflite_pred)) if y.size else None,
        "slices": slices,
    }


def write_bundle(path, model_bytes: bytes, labels: list[str], metadata: dict) -> str:
    """Write the zip at ``path`` via a temporary file in the same folder (renamed over ``path``
    only once complete and synced) and return the SHA-256 of the whole zip."""
    digest = hashlib.sha256()

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr("model.tflite", model_bytes)
            bundle.writestr("labels.txt", "".join(f"{name}\n" for name in labels))
            bundle.writestr("metadata.json", json.dumps(metadata, indent=2, sort_keys=True))
        with open(tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)

    atomic_write(path, write)
    return digest.hexdigest()
