"""--sample-input: the user's own inputs for verification instead of random ones.

`.npy` and `.npz` files are used as they are (an .npz names its inputs by its keys); PNG/JPEG
images are decoded and resized to the input's H×W in the worker (engine.images). Which file goes to
which input is decided by plan() without TensorFlow (resolve), so a bad file is refused before the
worker starts; the arrays are read in the worker (load).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError
from .images import decode_image, is_image

ARRAY_SUFFIXES = (".npy", ".npz")


def resolve(sample_inputs, inputs) -> list[tuple[str, str]]:
    """(input name, file) per --sample-input (options.sample_inputs), names filled in; no TensorFlow.
    Raises UserError. plan() and the wizard's question check with it."""
    by_name = {i.name: i for i in inputs}
    resolved = []
    for name, path in sample_inputs:
        flag = f"--sample-input {f'{name}={path}' if name else path}"
        file = Path(path)
        if not file.is_file():
            raise UserError(f"{flag}: {'is a directory' if file.is_dir() else 'no such file'}; give a .npy, .npz, .png or .jpg file")
        suffix = file.suffix.lower()
        if suffix not in ARRAY_SUFFIXES and not is_image(path):
            raise UserError(f"{flag}: {suffix or 'no suffix'} is not a sample input; give a .npy, .npz, .png or .jpg file")
        if suffix == ".npy":
            with open(file, "rb") as f:
                _check_header(f, flag)
        if suffix == ".npz":
            for key in _npz_keys(file, flag):
                if key not in by_name:
                    raise UserError(f"{flag}: array {key!r} names no input; the model's inputs are {', '.join(by_name)}")
                resolved.append((key, path))
            continue
        if not name:
            images = [i.name for i in inputs if _image_like(i)] if is_image(path) else []
            candidates = images or [i.name for i in inputs]
            if len(candidates) != 1:
                raise UserError(f"{flag}: say which input it is for with NAME={path}; the model's inputs are "
                                f"{', '.join(by_name) or 'none'}")
            name = candidates[0]
        if name not in by_name:
            raise UserError(f"{flag}: no input {name!r}; the model's inputs are {', '.join(by_name) or 'none'}")
        if is_image(path) and not _image_like(by_name[name]):
            i = by_name[name]
            raise UserError(f"{flag}: input {name!r} ({i.dtype} {i.shape}) does not take an image (needs [batch, height, "
                            "width, 1, 3 or 4 channels]); give its values as .npy")
        resolved.append((name, path))
    return resolved


def load(tf, options, inputs) -> dict[str, np.ndarray]:
    """The sample inputs as feeds (raw: before any preprocessing), one batch per input: files given
    for the same input are stacked along the batch. Runs in the worker (images need TensorFlow)."""
    by_name = {i.name: i for i in inputs}
    parts: dict[str, list[np.ndarray]] = {}
    for name, path in resolve(options.sample_inputs, inputs):
        i = by_name[name]
        if is_image(path):
            h, w, c = (d if d > 0 else None for d in i.shape[1:4])
            value = decode_image(tf, path, h, w, c or 3)[None]
        else:
            value = _array(path, name)
        parts.setdefault(name, []).append(_fit(value, i, path))
    feeds = {}
    for name, values in parts.items():
        shapes = {v.shape[1:] for v in values}
        if len(shapes) > 1:
            raise UserError(f"--sample-input: the files for input {name!r} have different shapes "
                            f"({', '.join(str(list(s)) for s in sorted(shapes))}); give one size, or one file")
        feeds[name] = np.concatenate(values)
        batch = (by_name[name].shape or [0])[0]
        if batch > 0 and len(feeds[name]) != batch:
            raise UserError(f"--sample-input: input {name!r} takes a batch of {batch}, the files give "
                            f"{len(feeds[name])}; give {batch} sample(s), or make the batch dynamic with --input NAME[-1,...]")
    batches = {len(v) for v in feeds.values()}
    if len(batches) > 1:
        raise UserError(f"--sample-input: the inputs get different batch sizes ({', '.join(map(str, sorted(batches)))}); "
                        "give each input as many samples")
    return feeds


def _array(path: str, name: str) -> np.ndarray:
    """An array from .npy or .npz, never unpickling (a pickle in a data file runs code)."""
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return np.asarray(data[name])
        return np.asarray(data)
    except ValueError as e:
        raise UserError(f"--sample-input {path}: cannot read it without unpickling ({str(e)[:120]}); save plain "
                        "numeric arrays with numpy.save") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"--sample-input {path}: not a numpy file ({type(e).__name__}: {str(e)[:120]}); write it with "
                        "numpy.save/savez") from None


def _fit(value: np.ndarray, i, path: str) -> np.ndarray:
    """The array in the input's dtype and rank (a missing batch axis added); static dims must match."""
    where = f"--sample-input {path}: input {i.name!r}"
    if i.dtype == "string":
        if value.dtype.kind not in "SU":
            raise UserError(f"{where} takes strings, the file holds {value.dtype}; save an array of str")
        value = np.vectorize(lambda s: s.encode() if isinstance(s, str) else s, otypes=[object])(value)
    else:
        if value.dtype.kind not in "biuf":
            raise UserError(f"{where} takes {i.dtype}, the file holds {value.dtype}; save numbers")
        value = value.astype(np.dtype(i.dtype))
    if i.shape is not None:
        if value.ndim == len(i.shape) - 1:
            value = value[None]  # one sample without its batch axis
        if value.ndim != len(i.shape) or any(d > 0 and d != v for d, v in zip(i.shape, value.shape)):
            raise UserError(f"{where} has shape {list(i.shape)}, the file's array {list(value.shape)}; save an array of "
                            "that shape (-1 dims may be any size)")
    return value


def _npz_keys(file: Path, flag: str) -> list[str]:
    try:
        with zipfile.ZipFile(file) as z:
            for member in z.namelist():
                with z.open(member) as f:
                    _check_header(f, f"{flag} ({member})")
            return [n.removesuffix(".npy") for n in z.namelist()]
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{flag}: not a .npz archive ({e}); write it with numpy.savez") from None


def _check_header(f, flag: str) -> None:
    """Refuse, from the header alone, a file that is not .npy or that holds Python objects (a pickle)."""
    try:
        version = np.lib.format.read_magic(f)
        _, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
    except ValueError as e:
        raise UserError(f"{flag}: not a numpy file ({str(e)[:120]}); write it with numpy.save/savez") from None
    if dtype.hasobject:
        raise UserError(f"{flag}: holds Python objects, which only unpickling could read (and that runs code); save "
                        "plain numeric or string arrays with numpy.save")


def _image_like(i) -> bool:
    return bool(i.shape) and len(i.shape) == 4 and i.shape[-1] in (1, 3, 4) and (i.dtype or "").startswith(("float", "uint8"))


def with_batch(feeds: dict, batch: int, inputs) -> dict:
    """Random feeds for the inputs no file was given for, repeated or cut to the samples' batch
    where their batch dim is dynamic."""
    dynamic = {i.name for i in inputs if i.shape and i.shape[0] <= 0}
    return {k: np.take(v, np.arange(batch) % v.shape[0], axis=0) if k in dynamic and np.ndim(v) else v
            for k, v in feeds.items()}
