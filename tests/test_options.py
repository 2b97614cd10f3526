"""The options object renders the exact command that parses back to it; bad values get one line."""

import shlex

import pytest

from conftest import SAMPLES, assert_clean_error, run_cli
from engine.cli import build_parser, options_from_args
from engine.errors import UserError
from engine.options import ConversionOptions, parse_input


def roundtrip(options: ConversionOptions) -> ConversionOptions:
    argv = shlex.split(options.command())
    assert argv[0] == "tfwizard"
    return options_from_args(build_parser().parse_args(argv[1:]))


@pytest.mark.parametrize("options", [
    ConversionOptions(model="m.pb", targets=("onnx",), output_dir="out"),
    ConversionOptions(
        model="my models/ünï code.pb", targets=("onnx", "tfjs", "openvino", "tflite"), output_dir="out dir",
        inputs=(("input", (1, 224, 224, -1)),), outputs=("a/b", "c"), batch=4, tag="serve,gpu", signature="s",
        checkpoint="ck pt", mean_values=(103.94, 116.78, 123.68), scale_values=(58.4,), reverse_input_channels=True,
        preset="resnet", quantize={"tfjs": ("uint8", ("conv*", "dense*")), "onnx": "int8", "tflite": "float16", "openvino": "fp16"},
        opset=17, inputs_as_nchw=("input",), weight_shard_size_bytes=1024, split_weights_by_layer=True,
        strip_debug_ops=False, control_flow_v2=True, use_structured_outputs_names=True, metadata=("k:v.json",),
        trust_model=True, custom_objects=("my layers/l.py", "pkg.mod:OBJECTS"), op_libraries=("ops dir/z.so",),
        verify=False, force=True, report="r.json", progress="json",
    ),
    ConversionOptions(model="m.pb", targets=("onnx",), output_dir="out", benchmark=True, benchmark_runs=7,
                      sample_inputs=(("image", "cat 1.png"), ("", "rows.npz"), ("", "dir/x=1.npy"))),
])
def test_command_parses_back_to_the_same_options(options):
    assert roundtrip(options) == options


def test_input_spec_forms():
    assert parse_input("input:0[1,224,224,3]") == ("input", (1, 224, 224, 3))
    assert parse_input("x[?, 16]") == ("x", (-1, 16))
    for bad in ("x", "x[0,3]", "x[-2]", "x[a]"):
        with pytest.raises(UserError):
            parse_input(bad)


def test_preset_resolves_and_explicit_values_win():
    o = ConversionOptions(model="m", targets=("onnx",), output_dir="o", preset="mobilenet")
    assert o.mean_scale == ((127.5,) * 3, (127.5,) * 3)
    assert o.replace(mean_values=(1.0,)).mean_scale == ((1.0,), (127.5,) * 3)


@pytest.mark.parametrize("args, needle", [
    (["--to", "caffe"], "unknown target"),
    (["--to", "onnx", "--input", "image[0,32,32,3]"], "positive integer"),
    (["--to", "onnx", "--input", "nope[1,32,32,3]"], "no such input"),
    (["--to", "onnx", "--input", "image[1,32,32]"], "rank"),
    (["--to", "onnx", "--output", "nope"], "no such output"),
    (["--to", "onnx", "--quantize", "onnx:uint3"], "--quantize"),
    (["--to", "onnx", "--quantize", "onnx:int8", "--quantize", "onnx:float16"], "2 times for onnx"),
    (["--to", "onnx", "--quantize", "tflite:dynamic"], "tflite is not converted"),
    (["--to", "tfjs,onnx", "--opset", "19", "--dryrun"], "--opset 19"),  # checked in plan: --dryrun refuses it too
    (["--to", "onnx", "--scale-values", "[1,0,1]"], "divide by zero"),
    (["--to", "onnx", "--batch", "0"], "--batch"),
    (["--to", "onnx", "--tag", "serve"], "SavedModels only"),
    (["--to", "tfjs", "--tfjs-format", "layers", "--preset", "mobilenet"], "cannot add mean/scale"),
    (["--to", "tfjs", "--tfjs-format", "layers", "--output", "dense"], "cannot add mean/scale/reverse-channels or cut outputs"),
    (["--to", "onnx", "--benchmark", "--no-verify"], "--benchmark needs the check"),
    (["--to", "onnx", "--benchmark-runs", "0"], "--benchmark-runs 0"),
])
def test_bad_convert_arguments(args, needle, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "keras_functional.keras", "-o", out, *args)
    assert_clean_error(proc, needle)
    assert not out.exists()


@pytest.mark.parametrize("changes, flags", [
    ({"batch": 0}, ["--batch", "0"]),
    ({"opset": 19}, ["--opset", "19"]),
    ({"quantize": {"tflite": "dynamic"}}, ["--quantize", "tflite:dynamic"]),
    ({"quantize": {"onnx": ("int8", ("conv*",))}}, ["--quantize", "onnx:int8:conv*"]),
    ({"targets": ("tfjs",), "tfjs_format": "layers", "preset": "mobilenet"},
     ["--to", "tfjs", "--tfjs-format", "layers", "--preset", "mobilenet"]),
])
def test_the_options_object_is_the_gate_the_cli_goes_through(changes, flags):
    """Built in code (as the wizard builds it) or parsed from the command line: the same refusal, word for word."""
    with pytest.raises(UserError) as built:
        ConversionOptions(**{"model": "m.keras", "targets": ("onnx",), "output_dir": "o", **changes})
    argv = ["convert", "m.keras", "-o", "o"] + (["--to", "onnx"] if "--to" not in flags else []) + flags
    with pytest.raises(UserError) as parsed:
        options_from_args(build_parser().parse_args(argv))
    assert str(built.value) == str(parsed.value)


def test_quantize_is_parsed_once_into_target_mode_and_nodes():
    o = options_from_args(build_parser().parse_args(
        ["convert", "m.pb", "-o", "o", "--to", "tfjs,onnx", "--quantize", "tfjs:uint8:conv*,dense*", "--quantize", "onnx:int8"]))
    assert o.quantize == {"tfjs": ("uint8", ("conv*", "dense*")), "onnx": ("int8", ())}
    assert (o.quantization("tfjs"), o.quantize_nodes("tfjs"), o.quantization("tflite")) == ("uint8", ["conv*", "dense*"], None)
    assert ConversionOptions(model="m.pb", targets=("onnx",), output_dir="o", quantize={"onnx": "int8"}) == o.replace(
        targets=("onnx",), quantize={"onnx": ("int8", ())})
