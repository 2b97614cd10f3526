"""Image files as model inputs: decoded and resized by TensorFlow (no image library needed), and the
preprocessing formula in numpy, computed apart from the graph so verification can check the one
baked into the converted model against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def decode_image(tf, path: str, height: int | None, width: int | None, channels: int) -> np.ndarray:
    """The image at `path` as float32 pixels [H, W, channels] in [0, 255], resized to height×width
    (bilinear, antialiased) where those are known; its own size where the model's are dynamic."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except tf.errors.OpError as e:
        reason = (getattr(e, "message", "") or str(e)).strip().splitlines()[0][:160]
        raise UserError(f"--sample-input {path}: not a PNG or JPEG image TensorFlow can decode ({reason}); "
                        "give a .png/.jpg, or the array as .npy") from None
    pixels = tf.cast(image, tf.float32)
    size = [height or int(pixels.shape[0]), width or int(pixels.shape[1])]
    if size != list(pixels.shape[:2]):
        pixels = tf.clip_by_value(tf.image.resize(pixels, size, method="bilinear", antialias=True), 0.0, 255.0)
    return pixels.numpy()


def preprocess(x: np.ndarray, mean, scale, reverse: bool) -> np.ndarray:
    """((x[..., ::-1] if reverse) - mean) / scale, in x's dtype: what engine.prepare bakes into the graph."""
    if reverse:
        x = x[..., ::-1]
    if mean:
        x = x - np.asarray(mean, dtype=x.dtype)
    if scale:
        x = x / np.asarray(scale, dtype=x.dtype)
    return np.ascontiguousarray(x)
