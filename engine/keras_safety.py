"""Which parts of a Keras model config run code when the model is loaded, read from the config alone.

A Lambda layer stores Python bytecode that Keras un-marshals and runs; a custom object makes
Keras import the module it names, or look up a class or function by name. tf_keras loads a
legacy .h5 Lambda without any safe mode, so we must decide before loading, without Keras
(and so without TensorFlow): anything whose class is not in Keras' built-in registry, or
whose module is not Keras itself, is flagged, and convert refuses it without --trust-model.

The rules that are data (TFOpLambda's allowlist, TFSMLayer, file-path keys, name patterns) live
in engine.safety with the graph rules. keras_builtins.txt lists the built-in class names of Keras 3 and tf_keras (regenerate with
`python -m engine.keras_safety` after upgrading Keras).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from . import safety

BUILTINS_FILE = Path(__file__).with_name("keras_builtins.txt")
LAMBDA_CLASSES = {"Lambda"}
# Serialized non-layer values that Keras decodes as data, not as code.
DATA_CLASSES = {"__tuple__", "__keras_tensor__", "__numpy__", "__tensor__", "__typespec__", "__ellipsis__",
                "__slice__", "__bytes__", "__tensorshape__", "__dtype__"}
MAX_REPORTED = 20
REGISTERED_NAME = re.compile(r"^[A-Za-z_][\w.]*>[A-Za-z_]\w*$")  # "package>Name", as register_keras_serializable makes


@functools.cache
def builtin_classes() -> frozenset[str]:
    return frozenset(line.strip() for line in BUILTINS_FILE.read_text().splitlines() if line.strip())


def code_risks(config) -> list[str]:
    """One line per thing in a Keras model config that can run code when loaded; [] when none."""
    risks: list[str] = []
    stack = [(config, "")]
    while stack and len(risks) < MAX_REPORTED:
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((item, where) for item in reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        risk = _risk(node, where)
        if risk:
            risks.append(risk)
            continue  # one line per object: what is inside it does not matter once it is flagged
        name, cls, inner = _name(node), node.get("class_name"), node.get("config")
        is_layer = isinstance(cls, str) and not (isinstance(inner, dict) and isinstance(inner.get("layers"), list))
        inner_where = f"{cls} {name!r}" if name and is_layer else where  # models: their layers speak for themselves
        stack.extend((value, inner_where) for value in reversed(list(node.values())))
    return risks


def custom_classes(config) -> list[str]:
    """The custom classes and functions a Keras config names, once each, in order: what Keras needs
    the code of (--custom-objects) to rebuild the model. A registered one is named as registered
    ("package>Name"), as Keras looks it up."""
    found: dict[str, None] = {}
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            name = _custom_name(node)
            if name:
                found[name] = None
            stack.extend(reversed(list(node.values())))
    return list(found)


def _custom_name(node: dict) -> str | None:
    cls, module, registered = node.get("class_name"), node.get("module"), node.get("registered_name")
    if not isinstance(cls, str) or cls in LAMBDA_CLASSES | DATA_CLASSES | {"__lambda__"} \
            or cls in safety.TFOP_LAMBDA_CLASSES | set(safety.RISKY_KERAS_CLASSES):
        return None
    registered = registered if isinstance(registered, str) and registered else None
    if cls == "function":
        function = node.get("config")  # its registered name ("package>name"); registered_name is "function"
        return function if isinstance(function, str) and not _keras_module(module) else None
    if registered and ">" in registered and registered.split(">")[0] != "keras":
        return registered
    if isinstance(module, str):
        return None if _keras_module(module) else cls
    return None if cls in builtin_classes() else cls


def _risk(node: dict, where: str) -> str | None:
    cls = node.get("class_name")
    if not isinstance(cls, str):
        return None
    name = _name(node)
    label = f"{cls} {name!r}" if name else cls
    inside = f" in {where}" if where else ""
    if cls in LAMBDA_CLASSES:
        return f"Lambda layer {name!r}: Python code stored in the file" if name else "Lambda layer: Python code stored in the file"
    if cls == "__lambda__":
        return f"Python lambda{inside}: code stored in the file"
    if cls in DATA_CLASSES:
        return None
    if REGISTERED_NAME.match(cls) and not cls.startswith("keras>"):  # Keras 3 .h5 files name registered classes so
        return f"custom object {cls}{inside}: its package's code runs when it is loaded"
    if not safety.KERAS_NAME.match(cls):
        return f"class name {cls!r}{inside} is not a Python name: a disguised custom object"
    inner = node.get("config") if isinstance(node.get("config"), dict) else {}
    if cls in safety.TFOP_LAMBDA_CLASSES and not safety.pure_tf_function(inner.get("function")):
        return f"{label} calls tf.{inner.get('function')}: not on the list of pure math functions, and tf_keras calls it on load"
    if cls in safety.RISKY_KERAS_CLASSES:
        return f"{label}: {safety.RISKY_KERAS_CLASSES[cls]}"
    paths = [k for k in sorted(safety.FILE_PATH_KEYS) if isinstance(inner.get(k), str) and inner.get(k)]
    if paths:
        return f"{label} reads the file {inner[paths[0]]!r} ({paths[0]}), outside the model"
    module, registered = node.get("module"), node.get("registered_name")
    if isinstance(registered, str) and ">" in registered and registered.split(">")[0] != "keras":
        return f"custom object {registered}{inside}: its package's code runs when it is loaded"
    if registered is not None and registered != cls and not (cls == "function" and registered == node.get("config")):
        return f"registered_name {registered!r} of {label}{inside} does not name its class: a disguised custom object"
    if cls == "function":
        what = node.get("config") if isinstance(node.get("config"), str) else "?"
        if not _keras_module(module):
            return f"custom function {what!r}{inside} (module {module!r}): looked up and called by name"
        return None
    if isinstance(module, str):
        if _keras_module(module):
            return None
        return f"custom {label}{inside} from module {module!r}: importing it runs that module's code"
    if cls not in builtin_classes():
        return f"custom {label}{inside}: not a built-in Keras class"
    return None


def _keras_module(module) -> bool:
    return isinstance(module, str) and bool(safety.KERAS_MODULE.match(module))


def _name(node: dict) -> str | None:
    inner = node.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    name = name if name is not None else node.get("name")
    return name if isinstance(name, str) else None


# --- regenerating keras_builtins.txt (needs keras and tf_keras, so TensorFlow) --------------------


def write_builtins_file(path: Path = BUILTINS_FILE) -> int:
    import inspect as pyinspect

    import keras
    import tf_keras
    from tf_keras.src.layers import serialization

    names = set(DATA_CLASSES) | {"Functional", "Sequential", "Model", "Policy", "DTypePolicy", "TFOpLambda",
                                 "SlicingOpLambda", "InstanceMethod", "InstanceProperty", "ClassMethod"}
    for lib in (keras, tf_keras):
        for sub in ("layers", "initializers", "regularizers", "constraints", "losses", "metrics", "optimizers",
                    "models", "dtype_policies", "mixed_precision", "activations", "optimizers.schedules"):
            module = lib
            for part in sub.split("."):
                module = getattr(module, part, None)
            if module is None:
                continue
            names |= {n for n, obj in vars(module).items() if pyinspect.isclass(obj) and not n.startswith("_")}
    serialization.populate_deserializable_objects()
    names |= set(serialization.LOCAL.ALL_OBJECTS)
    names -= LAMBDA_CLASSES  # built in, but it carries code
    path.write_text("\n".join(sorted(names)) + "\n")
    return len(names)


if __name__ == "__main__":
    print(f"wrote {write_builtins_file()} class names to {BUILTINS_FILE}")
