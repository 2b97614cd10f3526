"""Keras target: the input's Keras model saved again as an HDF5 `.h5` (default) or a Keras v3
`.keras` file. It exists for TF.js layers models (tensorflowjs_converter --output_format keras):
the model tensorflowjs' loader rebuilds is saved as a Keras file; it also turns a .keras into an
.h5 and back. Only Keras-shaped inputs have layers to save: check() refuses the rest.

Verified like the others: the saved file is loaded again and run on the feeds TensorFlow's
frozen graph was run on.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import Backend, ConversionFailed

FILES = {"h5": "model.h5", "keras": "model.keras"}


class KerasBackend(Backend):
    name = "keras"
    title = "Keras"
    note = "the Keras model again, as .h5 (from a TF.js layers model, or .keras to .h5)"
    runtime = "Keras"  # what --benchmark times (engine.benchmark)
    main_file = FILES["h5"]
    modules = ("keras", "tf_keras")  # in the base install: Keras files are saved with what loaded them
    formats = {"h5": "model.h5: HDF5, loads in Keras 2 and 3", "keras": "model.keras: the Keras v3 format"}
    preflight_knows_ops = True  # no op can stop it: the layers are saved, not converted
    upstream_creates_output_dir = False  # tensorflowjs_converter writes the file, not its directory

    def main_file_for(self, options) -> str:
        return FILES[options.keras_format]

    def check_options(self, options) -> None:
        if options.keras_format not in FILES:
            raise UserError(f"--keras-format {options.keras_format}: choose {' or '.join(FILES)}")
        if options.has_preprocessing or options.outputs:
            raise UserError("--to keras saves the Keras model as it is and cannot add mean/scale/reverse-channels or cut "
                            "outputs; drop those options or drop keras from --to")

    def check(self, options, info) -> None:
        if info.op_kind != "keras_layer":
            raise UserError(f"--to keras needs a Keras model (.h5, .keras) or a TF.js layers model; a {info.format_title} "
                            "has no Keras layers to save: drop keras from --to")

    def upstream_command(self, options, info) -> list[str] | None:
        # tensorflowjs_converter writes .h5 from a layers model; its keras_keras output fails on a
        # Functional model (KeyError "Cannot find the module path for Functional class", measured).
        if info.format != "tfjs_layers" or options.keras_format != "h5":
            return None  # Keras to Keras is a load and a save: no upstream CLI for it
        out = str(Path(options.output_dir, self.name, self.main_file))
        return ["tensorflowjs_converter", "--input_format=tfjs_layers_model", "--output_format=keras", info.path, out]

    def convert(self, prepared, options, outdir: Path, log) -> None:
        from ..detect import detect
        from ..prepare import _load_keras

        if options.inputs or options.batch:
            log("note: a Keras model keeps its own input shapes; --input/--batch overrides are not applied")
        # The model the freeze loaded (engine.prepare keeps it), in the Keras that loaded it.
        model = _load_keras(detect(options.model), options)
        path = outdir / self.main_file_for(options)
        log(f"saving the Keras model as {path.name}")
        model.save(str(path))
        log(f"wrote {path.name}, {path.stat().st_size:,} bytes")

    def load(self, outdir: Path, prepared, threads: int | None = None):
        from ..detect import detect

        path = next(p for p in (Path(outdir) / f for f in FILES.values()) if p.exists())
        version = detect(path).parsed.get("keras_version") or ""
        if version.startswith("2."):
            import tf_keras as keras
        else:
            import keras
        legacy = path.suffix == ".h5" and not version.startswith("2.")

        def failed(e: Exception) -> ConversionFailed:  # Keras 3 into legacy HDF5: not every layer survives it
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            return ConversionFailed(f"Keras could not run the .h5 it wrote ({why}); legacy HDF5 does not keep every "
                                    "Keras 3 model as it was; --keras-format keras writes a .keras instead")

        # Our own file, of a model plan() let through: it has no code risks, or the user trusts it.
        try:
            model = keras.models.load_model(str(path), compile=False, safe_mode=False)
        except Exception as e:
            if legacy:
                raise failed(e) from None
            raise
        names = [i.name for i in prepared.inputs]

        def run(feeds: dict) -> dict:
            args = [feeds[n] for n in names]
            try:
                result = model(args if len(args) > 1 else args[0], training=False)
            except Exception as e:
                if legacy:
                    raise failed(e) from None
                raise
            result = result if isinstance(result, (list, tuple)) else [result]
            return {o: r.numpy() if hasattr(r, "numpy") else r for o, r in zip(prepared.outputs, result)}
        return run

    def snippet(self, path: str, inputs, options, strategy=None) -> str:
        """Python: Keras loads the file and runs it on zeros (tf_keras for an .h5: Keras 2 wrote it)."""
        from ..detect import detect
        from . import numpy_zeros, quoted

        # Saved by the Keras that loaded the input (engine.prepare): tf_keras for Keras 2 files.
        keras2 = detect(options.model).parsed.get("keras_major") == "2"
        module = "tf_keras" if keras2 and not str(path).endswith(".keras") else "keras"
        if len(inputs) == 1:  # one input as it is: Keras 3 warns about a dict for a single input
            feeds, note = numpy_zeros(inputs[0]), f"  # {quoted(inputs[0].name)}"
        else:  # several, by their Input layers' names
            feeds, note = "{" + ", ".join(f"{quoted(i.name)}: {numpy_zeros(i)}" for i in inputs) + "}", ""
        return (f"import numpy as np\nimport {'keras' if module == 'keras' else module + ' as keras'}\n"
                f"model = keras.models.load_model({quoted(path)}, compile=False)\n"
                f"outputs = model.predict({feeds}, verbose=0){note}\n"
                "print([o.shape for o in (outputs if isinstance(outputs, list) else [outputs])])")


BACKEND = KerasBackend()
