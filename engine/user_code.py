"""Code the user gives a conversion: Keras custom objects (--custom-objects) and TensorFlow op
libraries (--load-op-library).

Both are programs, so both need --trust-model (check(), which plan() calls, refuses them without
it, before anything runs), and both run only in the worker, after engine.sandbox has confined it
(sandbox_reads() lets it read them). TensorFlow is imported by the caller, never here.

A custom-objects file written for standalone Keras 2 (`import keras.backend as K`, `from
keras.layers import Layer`) meets a Keras 2 H5 file: while it is imported and the model loads,
`keras` resolves to tf_keras (keras_as_tf_keras()), and TF_USE_LEGACY_KERAS=1 makes `tf.keras`
tf_keras too (before_tensorflow()).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect as pyinspect
import os
import re
import sys
import traceback
import types
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .errors import UserError

IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")
# What a shared library starts with: ELF (Linux), Mach-O (macOS, both byte orders, and fat binaries).
LIBRARY_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
BUILD_HINT = "build it against this TensorFlow with tf.sysconfig.get_compile_flags() and get_link_flags()"


def is_file(spec: str) -> bool:
    """A --custom-objects value that names a file (PATH.py) rather than an import path (module:attr)."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def parse_custom_objects(text: str) -> str:
    """--custom-objects PATH.py | module | module:attr, checked for form only (check() looks for it)."""
    text = text.strip()
    if is_file(text) or IMPORT_PATH.match(text):
        return text
    raise UserError(f"--custom-objects {text!r}: neither a .py file nor a module:attr import path; "
                    "write e.g. custom_layers.py or mypackage.layers:CUSTOM_OBJECTS")


def check(options, info) -> None:
    """Refuse, without TensorFlow: user code without --trust-model, files that are not there, custom
    ops with no library to define them. plan() calls it, so --dryrun and the wizard refuse these too."""
    given = [f"--custom-objects {c}" for c in options.custom_objects]
    given += [f"--load-op-library {lib}" for lib in options.op_libraries]
    if given and not options.trust_model:
        raise UserError(f"{given[0]}: runs that code in the conversion (native code for an op library); "
                        "if you trust it, pass --trust-model as well")
    if options.custom_objects and info.op_kind != "keras_layer":
        raise UserError(f"--custom-objects applies to Keras models (.h5, .keras), and {info.path} is a "
                        f"{info.format_title}; drop it")
    for spec in options.custom_objects:
        if is_file(spec):
            if not Path(spec).is_file():
                raise UserError(f"--custom-objects {spec}: no such file; give the .py file that defines the model's "
                                "custom classes")
            continue
        top = spec.partition(":")[0].split(".")[0]
        # The worker runs with the working directory on sys.path (python -m); look there too, importing nothing.
        if importlib.machinery.PathFinder.find_spec(top, [os.getcwd(), *sys.path]) is None and top not in sys.modules:
            raise UserError(f"--custom-objects {spec}: no module {top!r} on the Python path; give the .py file "
                            "instead, or add its directory to PYTHONPATH")
    for lib in options.op_libraries:
        path = Path(lib)
        if not path.is_file():
            raise UserError(f"--load-op-library {lib}: no such file; give the .so that defines the op "
                            f"({BUILD_HINT})")
        with open(path, "rb") as f:
            if f.read(4) not in LIBRARY_MAGIC:
                raise UserError(f"--load-op-library {lib}: not a shared library (no ELF or Mach-O header); "
                                "give the .so file tf.load_op_library takes")
    needed = [op for op in info.custom_ops if op in info.ops] or info.custom_ops
    if needed and not options.op_libraries:
        raise UserError(f"{info.path}: the graph uses op types this TensorFlow does not have ({', '.join(needed)}): "
                        "custom ops, whose kernels are in a library; pass --load-op-library LIB.so (with "
                        "--trust-model) that registers them")


def sandbox_reads(options) -> list[Path]:
    """What the worker must be able to read for this code: a .py file's directory (for what it imports
    beside it) and each op library. Import paths (module:attr) are on sys.path, readable already."""
    reads = [Path(spec).resolve().parent for spec in options.custom_objects if is_file(spec)]
    return reads + [Path(lib).resolve() for lib in options.op_libraries]


# --- in the worker -------------------------------------------------------------------------------


def keras2_custom_objects(detection, options) -> bool:
    return bool(options.custom_objects) and isinstance(detection.parsed, dict) \
        and detection.parsed.get("keras_major") == "2"


def before_tensorflow(detection, options) -> None:
    """Keras 2 model with custom objects: `tf.keras` and `import tensorflow.keras` must mean tf_keras,
    which TensorFlow decides when it is imported (the worker imports it after this)."""
    if keras2_custom_objects(detection, options) and "tensorflow" not in sys.modules:  # the worker, not a library user
        os.environ["TF_USE_LEGACY_KERAS"] = "1"


def load_op_libraries(tf, options, needed) -> None:
    """tf.load_op_library each --load-op-library, then check that the ops the model needs exist."""
    for lib in options.op_libraries:
        try:
            tf.load_op_library(str(Path(lib).resolve()))
        except Exception as e:  # NotFoundError for a missing symbol or a library of another TensorFlow
            reason = " ".join(str(e).split())[:240] or type(e).__name__
            raise UserError(f"--load-op-library {lib}: TensorFlow {tf.__version__} cannot load it ({reason}); "
                            f"{BUILD_HINT}") from None
    from tensorflow.python.framework import op_def_registry

    missing = [op for op in needed if op_def_registry.get(op) is None]
    if missing:
        libs = ", ".join(options.op_libraries)
        raise UserError(f"--load-op-library {libs}: loaded, but no library registers {', '.join(missing)}, which the "
                        "model uses; give the library that defines it too")


_LOADED: dict[tuple, dict] = {}  # the ladder's later rungs load the model again: import the code once


def custom_objects(options, *, keras2: bool) -> dict:
    """name → class or function from every --custom-objects, for load_model(custom_objects=...)."""
    key = (options.custom_objects, keras2)
    if key not in _LOADED:
        objects: dict = {}
        with keras_as_tf_keras() if keras2 else nullcontext():
            for spec in options.custom_objects:
                objects.update(_objects_of(spec))
        _LOADED[key] = objects
    return _LOADED[key]


def _objects_of(spec: str) -> dict:
    if is_file(spec):
        found = _public(_import_file(Path(spec)))
        if not found:
            raise UserError(f"--custom-objects {spec}: defines no public class or function; give the file that "
                            "defines the model's custom classes")
        return found
    name, _, attr = spec.partition(":")
    module = _run(spec, lambda: importlib.import_module(name))
    if not attr:
        return _public(module)
    if not hasattr(module, attr):
        raise UserError(f"--custom-objects {spec}: module {name} has no {attr!r}")
    value = getattr(module, attr)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return dict(value)
    if isinstance(value, types.ModuleType):
        return _public(value)
    if pyinspect.isclass(value) or callable(value):
        return {getattr(value, "__name__", attr): value}
    raise UserError(f"--custom-objects {spec}: {attr} is a {type(value).__name__}, not a class, a function or a dict "
                    "of them")


def _public(module) -> dict:
    """The classes and functions a module defines itself (not what it imports), by name."""
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and (pyinspect.isclass(obj) or pyinspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module.__name__}


def _import_file(path: Path):
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else f"tfwizard_custom_{len(_LOADED)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # for what it imports from beside it
    try:
        _run(str(path), lambda: spec.loader.exec_module(module), path)
    except UserError:
        del sys.modules[name]
        raise
    return module


def _run(spec: str, do, path: Path | None = None):
    """do(), with an exception from the user's code as one line naming the file and line."""
    try:
        return do()
    except UserError:
        raise
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if path is None or Path(f.filename) == path]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames and path else ""
        if isinstance(e, SyntaxError) and e.lineno:
            where = f" at line {e.lineno}"
        text = " ".join(str(e).split())[:200]
        raise UserError(f"--custom-objects {spec}: importing it failed{where} ({type(e).__name__}: {text}); "
                        "fix the file, or install what it imports") from None


class _KerasAsTfKeras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`keras`, `keras.X` → tf_keras, tf_keras.X (or tf_keras.src.X: standalone Keras 2's
    keras.engine.base_layer, keras.utils.conv_utils, ... live under tf_keras.src). The modules are
    tf_keras's own objects, so a custom layer subclasses the very Layer that loads the model."""

    def __init__(self):
        self.specs = {}

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("keras."):
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        rest = spec.name[len("keras"):]
        for candidate in (f"tf_keras{rest}", f"tf_keras.src{rest}"):
            try:
                module = importlib.import_module(candidate)
            except ModuleNotFoundError as e:
                if e.name and (candidate == e.name or candidate.startswith(e.name + ".")):
                    continue  # not there: try the next place
                raise
            self.specs[spec.name] = module.__spec__
            return module
        raise ModuleNotFoundError(f"No module named {spec.name!r} (tf_keras has no {rest[1:]!r} where standalone "
                                  "Keras 2 had it)", name=spec.name)

    def exec_module(self, module):
        module.__spec__ = self.specs.get(module.__spec__.name, module.__spec__)  # the import set ours: undo it


@contextmanager
def keras_as_tf_keras():
    """While inside, `import keras...` gives tf_keras; the real keras modules come back after."""
    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if k == "keras" or k.startswith("keras.")]}
    finder = _KerasAsTfKeras()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == "keras" or k.startswith("keras.")]:
            del sys.modules[k]
        sys.modules.update(saved)
