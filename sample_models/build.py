#!/usr/bin/env python
"""Build tiny sample models in every input form tfwizard supports.

    python sample_models/build.py [--out DIR] [--verbose]

One small function per model: build it, check its interface with TensorFlow itself, return
its manifest entries. manifest.json holds the builder's intent, for tests of the inspector.
"""
import argparse, contextlib, json, os, re, shutil, sys, tempfile, time, zipfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # must be set before TensorFlow is imported

OUTPUTS = [  # everything this script writes; removed before each rebuild
    "keras_functional.keras", "keras3_functional.h5", "keras_sequential.keras", "keras2_functional.h5",
    "keras2_sequential.h5", "keras_weights_only.weights.h5", "keras2_weights_only.h5", "frozen_graph.pb",
    "frozen_graph.pbtxt", "slim_checkpoint", "tf1_checkpoint_v2", "metagraph", "saved_model_tf1",
    "saved_model_tf2", "image_classifier", "image_classifier.keras", "dynamic_shapes", "keras_lambda.keras",
    "keras2_lambda.h5", "realworld", "manifest.json"]
import recurrent  # issue 13's recurrent, text and odd-file samples (sample_models/recurrent.py)
import custom  # issue 15's Keras custom layers and their code (sample_models/custom.py)
import qat_detection  # issue 15's quantization-aware and object-detection samples (sample_models/qat_detection.py)
import formats  # issue 15's TF Hub module and TF.js layers model (sample_models/formats.py)

OUTPUTS += recurrent.OUTPUTS + custom.OUTPUTS + qat_detection.OUTPUTS + formats.OUTPUTS
OTHER_MACHINE = "/home/alice/train"  # absolute paths baked into `checkpoint` state files


@contextlib.contextmanager
def quiet_stderr():
    """Some C++ logs (cuDNN/XLA registration) ignore TF_CPP_MIN_LOG_LEVEL, so capture fd 2
    itself (Python warnings included) and replay it only if the build fails."""
    log, saved = tempfile.TemporaryFile(mode="w+"), os.dup(2)
    sys.stderr.flush(); os.dup2(log.fileno(), 2)
    try:
        yield
    except BaseException:
        sys.stderr.flush(); os.dup2(saved, 2); log.seek(0); sys.stderr.write(log.read())
        raise
    finally:
        sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)


def io(name, shape, dtype="float32", **extra):
    """One manifest input: -1 for an unknown dim, shape None (null) for unknown rank."""
    return {"name": name, "dtype": dtype, "shape": None if shape is None else [d or -1 for d in shape], **extra}


def entry(path, fmt, inputs, outputs, notes, **extra):
    return {"path": path, "format": fmt, "inputs": inputs, "outputs": [{"name": n} for n in outputs],
            **extra, "notes": notes}


def shape_of(t):  # TensorSpec / tf.Tensor / KerasTensor -> manifest shape
    s = tf.TensorShape(t.shape)
    return None if s.rank is None else [-1 if d is None else d for d in s.as_list()]


def check(cond, what):
    if not cond:
        raise AssertionError(f"manifest check failed: {what}")


# ------------------------------------------------------------------ verification with TF
def verify_graph(graph_def, e, training_only=()):
    """Import the GraphDef; placeholders (name, dtype, shape, optional) and outputs must match."""
    g = tf.Graph()
    with g.as_default():
        v1.import_graph_def(graph_def, name="")
    ph = {op.name: op for op in g.get_operations()  # the Saver's save/filename, save/Const aren't inputs
          if op.type.startswith("Placeholder") and not op.name.startswith("save/")}
    check(set(ph) == {i["name"] for i in e["inputs"]} | set(training_only), f"{e['path']}: {sorted(ph)}")
    for i in e["inputs"]:
        op = ph[i["name"]]
        check(op.outputs[0].dtype.name == i["dtype"] and shape_of(op.outputs[0]) == i["shape"], f"{e['path']} {i}")
        check((op.type == "PlaceholderWithDefault") == i.get("optional", False), f"{e['path']} {i}")
    for o in e["outputs"]:
        g.get_operation_by_name(o["name"])  # raises if missing
    return g


def verify_checkpoint(g, prefix):
    """Every variable of the graph is in the checkpoint (read with TF's checkpoint reader)."""
    variables = {op.name for op in g.get_operations() if op.type in ("VariableV2", "VarHandleOp")}
    saved = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    check(variables and variables <= saved, f"{prefix}: missing {variables - saved}")


def verify_saved_model(out, e, tags=None):
    """Reload; the signature list and serving_default's keys, dtypes and shapes must match."""
    sigs = tf.saved_model.load(os.path.join(out, e["path"]), tags=tags).signatures
    check(sorted(sigs) == sorted(e["signatures"]), f"{e['path']} signatures {list(sigs)}")
    fn = sigs["serving_default"]
    specs, outputs = fn.structured_input_signature[1], fn.structured_outputs  # ((), {key: TensorSpec}), {key: ...}
    check(sorted(specs) == sorted(i["name"] for i in e["inputs"]), f"{e['path']} inputs {list(specs)}")
    for i in e["inputs"]:
        spec = specs[i["name"]]
        check(spec.dtype.name == i["dtype"] and shape_of(spec) == i["shape"], f"{e['path']} {i}")
    check(sorted(outputs) == sorted(o["name"] for o in e["outputs"]), f"{e['path']} outputs {list(outputs)}")


def verify_keras(out, e, load_model):
    """Names from the stored config (what a file inspector reads); dtypes/shapes from the loaded model."""
    path = os.path.join(out, e["path"])
    if path.endswith(".keras"):
        cfg = json.loads(zipfile.ZipFile(path).read("config.json"))
    else:
        with h5py.File(path, "r") as f:
            cfg = json.loads(f.attrs["model_config"])
    c = cfg["config"]
    if cfg["class_name"] == "Sequential":
        names = [c["layers"][0]["config"]["name"]], [c["layers"][-1]["config"]["name"]]
    else:  # Keras 3 stores a single input as ["image", 0, 0], Keras 2 always as [["a", 0, 0], ...]
        flat = lambda v: [v[0]] if isinstance(v[0], str) else [x[0] for x in v]
        names = flat(c["input_layers"]), flat(c["output_layers"])
    check(names == ([i["name"] for i in e["inputs"]], [o["name"] for o in e["outputs"]]), f"{e['path']} {names}")
    model = load_model(path, compile=False)
    check([(t.dtype if isinstance(t.dtype, str) else t.dtype.name, shape_of(t)) for t in model.inputs]
          == [(i["dtype"], i["shape"]) for i in e["inputs"]], f"{e['path']} input specs")


# ------------------------------------------------------------------ Keras
def keras3_conv():
    """Conv2D -> pooling -> Dense(10, softmax) "probs" on 32x32 RGB "image" (Keras 3)."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.MaxPooling2D(name="maxpool")(x))
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(x), name="functional")


def keras3_functional(out):
    model = keras3_conv()
    model.save(os.path.join(out, "keras_functional.keras"))
    model.save(os.path.join(out, "keras3_functional.h5"))  # legacy HDF5, but with Keras 3's config schema
    es = [entry("keras_functional.keras", "keras_v3", [io("image", [None, 32, 32, 3])], ["probs"],
                "Keras 3 functional model: .keras zip (config.json, metadata.json, model.weights.h5)."),
          entry("keras3_functional.h5", "keras_h5", [io("image", [None, 32, 32, 3])], ["probs"],
                "Same model saved by Keras 3 to HDF5; model_config uses the Keras 3 schema (batch_shape, "
                "module/registered_name, input_layers = [\"image\", 0, 0] unnested).")]
    for e in es:
        verify_keras(out, e, keras.saving.load_model)
    return es


def keras3_sequential(out):
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((8,), name="features"), keras.layers.Dense(16, activation="relu", name="hidden"),
                      keras.layers.Dense(3, activation="softmax", name="scores")]).save(
        os.path.join(out, "keras_sequential.keras"))
    e = entry("keras_sequential.keras", "keras_v3", [io("features", [None, 8])], ["scores"],
              "Keras 3 Sequential; the InputLayer 'features' is the first entry of config.layers.")
    verify_keras(out, e, keras.saving.load_model)
    return [e]


def keras2_models(out):
    """Keras 2 (tf_keras) writes batch_input_shape and [[name, 0, 0]] lists in its config."""
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    a, b = tf_keras.Input((4,), name="a"), tf_keras.Input((4,), name="b")
    h = L.Dense(8, activation="relu", name="hidden")(L.Concatenate(name="concat")([a, b]))
    tf_keras.Model([a, b], L.Dense(2, name="out")(h)).save(os.path.join(out, "keras2_functional.h5"))
    seq = tf_keras.Sequential([tf_keras.Input((8,), name="features"), L.Dense(16, activation="relu", name="hidden"),
                               L.Dense(3, activation="softmax", name="scores")])
    seq.save(os.path.join(out, "keras2_sequential.h5"))
    # tf_keras 2.19 picks the weights layout from the file name: *.weights.h5 gets the new
    # (Keras 3 style) layout, any other .h5 the classic Keras 2 one. Keep one of each.
    seq.save_weights(os.path.join(out, "keras_weights_only.weights.h5"))
    seq.save_weights(os.path.join(out, "keras2_weights_only.h5"))
    es = [entry("keras2_functional.h5", "keras_h5", [io("a", [None, 4]), io("b", [None, 4])], ["out"],
                "Keras 2 (tf_keras) functional model: two inputs -> Concatenate -> Dense -> Dense 'out'."),
          entry("keras2_sequential.h5", "keras_h5", [io("features", [None, 8])], ["scores"],
                "Keras 2 (tf_keras) Sequential with input shape (8,)."),
          entry("keras_weights_only.weights.h5", "keras_weights_only", [], [],
                "tf_keras save_weights to a *.weights.h5 name: new layout (layers/dense/vars/0, "
                "layers/dense_1/vars/0 ...: groups named by class, not layer name), no model_config, no "
                "architecture so no inputs/outputs. Fits keras2_sequential.h5."),
          entry("keras2_weights_only.h5", "keras_weights_only", [], [],
                "tf_keras save_weights to a plain .h5 name: classic Keras 2 layout (root attrs layer_names, "
                "backend, keras_version; hidden/hidden/kernel:0 ...), no model_config. Same weights as "
                "keras_weights_only.weights.h5.")]
    for e in es[:2]:
        verify_keras(out, e, tf_keras.models.load_model)
    for e in es[2:]:  # no architecture inside, and the weights load back into the Sequential
        with h5py.File(os.path.join(out, e["path"]), "r") as f:
            check("model_config" not in f.attrs, e["path"])
        seq.load_weights(os.path.join(out, e["path"]))
    return es


# ------------------------------------------------------------------ TF1 graphs and checkpoints
def dense(x, units, name):
    """Hand-rolled TF1 dense layer, so node names are scope/MatMul, scope/BiasAdd as in classic graphs."""
    with v1.variable_scope(name):
        w = v1.get_variable("weights", [x.shape[-1], units])
        return tf.nn.bias_add(tf.matmul(x, w), v1.get_variable("biases", [units], initializer=tf.zeros_initializer()))


def frozen_graph(out):
    with tf.Graph().as_default() as g, v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 8], name="input")
        tf.nn.softmax(dense(tf.nn.relu(dense(x, 16, "fc1")), 4, "fc2"), name="output")
        sess.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["output"])
    tf.io.write_graph(frozen, out, "frozen_graph.pb", as_text=False)
    tf.io.write_graph(frozen, out, "frozen_graph.pbtxt", as_text=True)
    es = [entry("frozen_graph.pb", "graphdef", [io("input", [None, 8])], ["output"],
                "TF1 frozen GraphDef: variables folded into Const; MatMul/BiasAdd/Relu/MatMul/BiasAdd/Softmax."),
          entry("frozen_graph.pbtxt", "graphdef_text", [io("input", [None, 8])], ["output"],
                "Same frozen graph as frozen_graph.pb, in protobuf text format.")]
    verify_graph(frozen, es[0])
    with open(os.path.join(out, "frozen_graph.pbtxt")) as f:
        verify_graph(text_format.Parse(f.read(), v1.GraphDef()), es[1])
    return es


def slim_checkpoint(out):
    """Mimic TF-Slim: export_inference_graph (non-frozen, VariableV2) + a V1 training checkpoint."""
    d = os.path.join(out, "slim_checkpoint"); os.makedirs(d)
    with tf.Graph().as_default() as g, v1.Session() as sess:
        v1.set_random_seed(0)
        net = v1.placeholder(tf.float32, [None, 32, 32, 3], name="input")
        with v1.variable_scope("InceptionV1"):
            for i, ch in enumerate([8, 16]):
                with v1.variable_scope(f"Conv2d_{i + 1}a_3x3"):
                    w = v1.get_variable("weights", [3, 3, net.shape[-1], ch], use_resource=False)
                    net = tf.nn.relu(tf.nn.conv2d(net, w, 2, "SAME"), name="Relu")
            with v1.variable_scope("Logits"):
                net = tf.reduce_mean(net, [1, 2], keepdims=True, name="AvgPool")
                w = v1.get_variable("Conv2d_0c_1x1/weights", [1, 1, 16, 10], use_resource=False)
                logits = tf.squeeze(tf.nn.conv2d(net, w, 1, "VALID"), [1, 2], name="SpatialSqueeze")
                with tf.name_scope("Predictions"):  # slim's softmax: Reshape -> Softmax -> Reshape_1
                    flat = tf.reshape(logits, [-1, 10], name="Reshape")
                    tf.reshape(tf.nn.softmax(flat, name="Softmax"), tf.shape(logits), name="Reshape_1")
        inference_graph = g.as_graph_def()  # taken before the Saver adds save/ ops
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(write_version=v1.train.SaverDef.V1).save(
            sess, os.path.join(d, "inception_v1.ckpt"), write_meta_graph=False, write_state=False)
    tf.io.write_graph(inference_graph, d, "inception_v1_inference_graph.pb", as_text=False)
    e = entry("slim_checkpoint/inception_v1_inference_graph.pb", "checkpoint", [io("input", [None, 32, 32, 3])],
              ["InceptionV1/Logits/Predictions/Reshape_1"],
              "TF-Slim style: non-frozen inference graph (VariableV2 ops with Assign initializers, no save/ "
              "ops) + V1-format checkpoint inception_v1.ckpt (one file, no .index). No 'checkpoint' file.",
              checkpoint="slim_checkpoint/inception_v1.ckpt", checkpoint_version="V1")
    verify_checkpoint(verify_graph(inference_graph, e), os.path.join(d, "inception_v1.ckpt"))
    check(sorted(os.listdir(d)) == ["inception_v1.ckpt", "inception_v1_inference_graph.pb"], "slim files")
    return [e]


def write_state_file(d, prefix):
    """A `checkpoint` state file as written on another machine: absolute paths that don't exist here."""
    with open(os.path.join(d, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{OTHER_MACHINE}/{prefix}"\n'
                f'all_model_checkpoint_paths: "{OTHER_MACHINE}/{prefix}"\n')


def tf1_checkpoint_v2(out):
    d = os.path.join(out, "tf1_checkpoint_v2"); os.makedirs(d)
    with tf.Graph().as_default() as g, v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 16], name="input")
        tf.nn.softmax(dense(tf.nn.relu(dense(x, 32, "fc1")), 5, "fc2"), name="scores")
        graph_def = g.as_graph_def()
        sess.run(v1.global_variables_initializer())
        v1.train.Saver().save(sess, os.path.join(d, "model.ckpt"), write_meta_graph=False, write_state=False)
    tf.io.write_graph(graph_def, d, "inference_graph.pb", as_text=False)
    write_state_file(d, "model.ckpt")
    e = entry("tf1_checkpoint_v2/inference_graph.pb", "checkpoint", [io("input", [None, 16])], ["scores"],
              "Non-frozen graph with resource variables (VarHandleOp) + V2 checkpoint model.ckpt.{index,data-*}. "
              f"The 'checkpoint' state file points at {OTHER_MACHINE}/model.ckpt (another machine): look "
              "beside the graph.", checkpoint="tf1_checkpoint_v2/model.ckpt", checkpoint_version="V2")
    verify_checkpoint(verify_graph(graph_def, e), os.path.join(d, "model.ckpt"))
    return [e]


def metagraph(out):
    """A MetaGraph with training left in: Adam slots, loss on 'labels', global_step, save/ and init ops."""
    d = os.path.join(out, "metagraph"); os.makedirs(d)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        labels = v1.placeholder(tf.int64, [None], name="labels")
        is_training = v1.placeholder_with_default(False, [], name="is_training")
        h = tf.nn.relu(dense(x, 16, "hidden"))
        h = tf.cond(is_training, lambda: tf.nn.dropout(h, rate=0.5, seed=1), lambda: h, name="dropout")
        logits = dense(h, 3, "logits")
        tf.nn.softmax(logits, name="probs")  # the inference output: nothing consumes it
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=v1.train.get_or_create_global_step())
        saver = v1.train.Saver()
        sess.run(v1.global_variables_initializer())
        sess.run(train, {x: np.random.RandomState(0).rand(4, 8), labels: [0, 1, 2, 0], is_training: True})
        saver.save(sess, os.path.join(d, "model"), write_state=False)  # model.meta, .index, .data-00000-of-00001
    write_state_file(d, "model")
    e = entry("metagraph/model.meta", "metagraph",
              [io("x", [None, 8]), io("is_training", [], "bool", optional=True, default=False)], ["probs"],
              "Training MetaGraph + V2 checkpoint 'model'. is_training is an optional PlaceholderWithDefault "
              "(default False; True enables dropout through tf.cond, an If op with function-library "
              "branches). 'labels' (int64 [-1]) is a training-only placeholder feeding the loss. Also Adam "
              "slots, global_step, init ops and save/ ops (save/filename, save/Const are PlaceholderWithDefault "
              f"too, not inputs). The 'checkpoint' state file points at {OTHER_MACHINE}/model (another machine).",
              checkpoint="metagraph/model", training_only_inputs=["labels"])
    with tf.Graph().as_default(), v1.Session() as sess:  # read the .meta back and restore
        v1.train.import_meta_graph(os.path.join(d, "model.meta")).restore(sess, os.path.join(d, "model"))
        graph_def = sess.graph.as_graph_def()
    check(not [n for n in graph_def.node if any(i.split(":")[0] == "probs" for i in n.input)], "probs is consumed")
    verify_checkpoint(verify_graph(graph_def, e, training_only=["labels"]), os.path.join(d, "model"))
    return [e]


def saved_model_tf1(out):
    """TF1 Builder with two MetaGraphs, tags [serve] and [serve, gpu], so the tag set must be chosen."""
    builder = v1.saved_model.Builder(os.path.join(out, "saved_model_tf1"))
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 8], name="input")
        y = tf.nn.softmax(dense(tf.nn.relu(dense(x, 16, "fc1")), 4, "fc2"), name="output")
        sess.run(v1.global_variables_initializer())
        sig = {"serving_default": v1.saved_model.predict_signature_def({"input": x}, {"output": y})}
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=sig)
        builder.add_meta_graph(["serve", "gpu"], signature_def_map=sig)
    builder.save()
    e = entry("saved_model_tf1", "saved_model", [io("input", [None, 8])], ["output"],
              "TF1 SavedModel (Builder) with two MetaGraphs, tags [serve] and [serve, gpu], same graph and "
              "serving_default in both; tf.saved_model.load refuses it without tags=.",
              tags=["serve"], tag_sets=[["serve"], ["serve", "gpu"]], signatures=["serving_default"])
    for tags in e["tag_sets"]:
        verify_saved_model(out, e, tags=tags)
    return [e]


# ------------------------------------------------------------------ TF2 SavedModels
def saved_model_tf2(out):
    m = tf.Module()  # signature input keys come from the Python argument names
    m.w = tf.Variable(tf.random.stateless_normal([4, 4], seed=[0, 0]), name="w")
    x = tf.TensorSpec([None, 4], tf.float32, name="x")
    m.serve = tf.function(lambda x: {"y": tf.matmul(x, m.w)}, input_signature=[x])
    m.scale = tf.function(lambda x, factor: {"scaled": tf.matmul(x, m.w) * factor},
                          input_signature=[x, tf.TensorSpec([], tf.float32, name="factor")])
    tf.saved_model.save(m, os.path.join(out, "saved_model_tf2"),
                        signatures={"serving_default": m.serve, "scale": m.scale})
    e = entry("saved_model_tf2", "saved_model", [io("x", [None, 4])], ["y"],
              "TF2 tf.Module with one variable and two signatures; 'scale' takes x float32 [-1, 4] and a "
              "scalar 'factor' float32 [] and returns 'scaled'.",
              tags=["serve"], signatures=["scale", "serving_default"])
    verify_saved_model(out, e)
    return [e]


def image_classifier(out):
    """Keras 3 classifier exported for serving; it expects pixels in [-1, 1] (mean 127.5, std 127.5)."""
    model = keras3_conv()
    model.save(os.path.join(out, "image_classifier.keras"))
    archive = keras.export.ExportArchive()  # like model.export(), but with a named output key
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {"probs": model(image, training=False)},
                         input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="image")])
    archive.write_out(os.path.join(out, "image_classifier"), verbose=False)
    notes = "10-class image classifier; expects pixels scaled to [-1, 1]: (x - 127.5) / 127.5."
    pre = {"mean": 127.5, "std": 127.5}  # what a user would pass as mean/scale preprocessing
    es = [entry("image_classifier", "saved_model", [io("image", [None, 32, 32, 3])], ["probs"],
                notes + " Exported from Keras 3 with keras.export.ExportArchive.",
                tags=["serve"], signatures=["serving_default"], preprocessing=pre),
          entry("image_classifier.keras", "keras_v3", [io("image", [None, 32, 32, 3])], ["probs"],
                notes + " Same model as image_classifier/, as a .keras file.", preprocessing=pre)]
    verify_saved_model(out, es[0])
    verify_keras(out, es[1], keras.saving.load_model)
    return es


def dynamic_shapes(out):
    m = tf.Module()
    m.embedding = tf.Variable(tf.random.stateless_normal([100, 8], seed=[0, 1]), name="embedding")
    m.serve = tf.function(lambda tokens, signal: {
        "pooled": tf.reduce_mean(tf.nn.embedding_lookup(m.embedding, tf.clip_by_value(tokens, 0, 99)), axis=1),
        "energy": tf.reduce_sum(tf.square(signal))},
        input_signature=[tf.TensorSpec([None, 16], tf.int32, name="tokens"),
                         tf.TensorSpec(None, tf.float32, name="signal")])  # None: unknown rank
    tf.saved_model.save(m, os.path.join(out, "dynamic_shapes"), signatures=m.serve)
    e = entry("dynamic_shapes", "saved_model", [io("tokens", [None, 16], "int32"), io("signal", None)],
              ["energy", "pooled"], "TF2 SavedModel: 'tokens' has a dynamic batch, 'signal' has unknown rank "
              "(shape null). Outputs: pooled float32 [-1, 8], energy float32 [] (scalar).",
              tags=["serve"], signatures=["serving_default"])
    verify_saved_model(out, e)
    return [e]


def lambda_models(out):
    """A Lambda layer stores Python bytecode that Keras runs on load: the untrusted-model case.

    Harmless here (x * 2 + 1), but loading needs safe_mode=False (Keras 3), and tf_keras runs
    a legacy .h5 Lambda without asking: tfwizard refuses both unless given --trust-model.
    """
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((4,), name="x")
    x = keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(x)
    keras.Model(inp, keras.layers.Dense(2, name="out")(x)).save(os.path.join(out, "keras_lambda.keras"))
    tf_keras.utils.set_random_seed(0)
    a = tf_keras.Input((4,), name="x")
    y = tf_keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(a)
    tf_keras.Model(a, tf_keras.layers.Dense(2, name="out")(y)).save(os.path.join(out, "keras2_lambda.h5"))
    notes = ("x (-1,4) -> Lambda 'affine' (x * 2 + 1, as marshalled Python bytecode) -> Dense(2) 'out'. "
             "Loading runs the stored code: convert needs --trust-model.")
    es = [entry("keras_lambda.keras", "keras_v3", [io("x", [None, 4])], ["out"], "Keras 3 .keras: " + notes,
                trust_required=True),
          entry("keras2_lambda.h5", "keras_h5", [io("x", [None, 4])], ["out"], "Keras 2 (tf_keras) .h5: " + notes,
                trust_required=True)]
    verify_keras(out, es[0], lambda p, compile: keras.saving.load_model(p, compile=compile, safe_mode=False))
    verify_keras(out, es[1], tf_keras.models.load_model)
    return es


# ------------------------------------------------------------------ real-world failure classes
def write_frozen(g, sess, d, name, outputs):
    frozen = v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), outputs)
    tf.io.write_graph(frozen, d, name, as_text=False)
    return frozen


def realworld_verification(out):
    """Graphs whose verification needs the right inputs and rule (issue 13, classes 2 and 3).

    Their manifest entries carry `failure_class`: tests/test_realworld.py converts them with the
    flags they need, so the every-sample tests leave them out."""
    d = os.path.join(out, "realworld"); os.makedirs(d, exist_ok=True)
    es = []
    with tf.Graph().as_default() as g, v1.Session() as sess:  # values ~1e5: float32 rounding ~1e-2 abs
        x = v1.placeholder(tf.float32, [None, 64], name="x")
        w = tf.constant(np.random.RandomState(0).uniform(-150, 150, (64, 256)).astype("float32"))
        h = tf.matmul(tf.exp(x * 4.0), w)
        tf.identity(tf.matmul(tf.tanh(h / 1000.0) * 100.0, w / 10.0, transpose_b=True), name="activations")
        frozen = write_frozen(g, sess, d, "wide_activations.pb", ["activations"])
    es.append(entry("realworld/wide_activations.pb", "graphdef", [io("x", [None, 64])], ["activations"],
                    "Outputs near 1e5 (an audio model's large activations): TF.js differs by ~2e-2 abs, "
                    "~2e-7 relative; an abs-only 1e-4 bound fails it, allclose passes.", failure_class=2))
    verify_graph(frozen, es[-1])
    with tf.Graph().as_default() as g, v1.Session() as sess:  # empty on short inputs
        x = v1.placeholder(tf.float32, [None, None], name="signal")
        tf.identity(x[:, 100:-100] * 2.0, name="cropped")
        frozen = write_frozen(g, sess, d, "crop.pb", ["cropped"])
    es.append(entry("realworld/crop.pb", "graphdef", [io("signal", [None, None])], ["cropped"],
                    "Crops 100 positions from each side: an input shorter than 201 gives an empty output.", failure_class=2))
    verify_graph(frozen, es[-1])
    with tf.Graph().as_default() as g, v1.Session() as sess:  # indices must stay below 5
        tokens = v1.placeholder(tf.int32, [None, 6], name="tokens")
        table = tf.constant(np.random.RandomState(1).rand(5, 4).astype("float32"), name="table")
        tf.reduce_mean(tf.gather(table, tokens), axis=1, name="pooled")
        frozen = write_frozen(g, sess, d, "embedding.pb", ["pooled"])
    es.append(entry("realworld/embedding.pb", "graphdef", [io("tokens", [None, 6], "int32")], ["pooled"],
                    "GatherV2 from a 5-row embedding table: token ids must be below 5.", failure_class=2))
    verify_graph(frozen, es[-1])
    with tf.Graph().as_default() as g, v1.Session() as sess:  # a TF1 dropout keep_prob scalar
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        keep_prob = v1.placeholder(tf.float32, [], name="keep_prob")
        tf.identity(v1.nn.dropout(tf.nn.relu(x - 0.5), keep_prob=keep_prob), name="features")
        frozen = write_frozen(g, sess, d, "dropout.pb", ["features"])
    es.append(entry("realworld/dropout.pb", "graphdef", [io("x", [None, 8]), io("keep_prob", [])], ["features"],
                    "TF1 dropout (RandomUniform) driven by a keep_prob scalar: random unless keep_prob=1.", failure_class=2))
    verify_graph(frozen, es[-1])
    with tf.Graph().as_default() as g, v1.Session() as sess:  # ov.convert_model reorders these
        x = v1.placeholder(tf.float32, [None, 6], name="image")
        tf.sigmoid(x, name="detection_scores")
        tf.floor(x * 10.0, name="detection_classes")
        tf.reduce_sum(tf.cast(x > 0.0, tf.float32), axis=1, keepdims=True, name="num_detections")
        frozen = write_frozen(g, sess, d, "detection.pb", ["detection_scores", "detection_classes", "num_detections"])
    es.append(entry("realworld/detection.pb", "graphdef", [io("image", [None, 6])],
                    ["detection_scores", "detection_classes", "num_detections"],
                    "Detection-style outputs (float32 [-1, 6], [-1, 6], [-1, 1]); ov.convert_model returns "
                    "classes before scores.", failure_class=3))
    verify_graph(frozen, es[-1])
    with tf.Graph().as_default() as g:  # a colocation hint naming a pruned node
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(x * 2.0, name="y")
        frozen = g.as_graph_def()
    next(n for n in frozen.node if n.name == "mul").attr["_class"].list.s.append(b"loc:@pruned_variable")
    tf.io.write_graph(frozen, d, "colocated.pb", as_text=False)
    es.append(entry("realworld/colocated.pb", "graphdef", [io("x", [None, 4])], ["y"],
                    "Node 'mul' is colocated with a node the graph no longer has (loc:@pruned_variable), as "
                    "graphs pruned by hand are; TensorFlow refuses to import it as it is.", failure_class=6))
    check([n.name for n in frozen.node] == ["x", "mul/y", "mul", "y"], "colocated.pb nodes")
    return es


def realworld_keras_embedding(out):
    """Keras 3 Embedding(5, 4): token ids of 5 or more make TensorFlow fail (issue 13, class 2)."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(5, 4, name="embedding")(tokens)
    keras.Model(tokens, keras.layers.GlobalAveragePooling1D(name="pooled")(x)).save(
        os.path.join(out, "realworld", "keras_embedding.keras"))
    e = entry("realworld/keras_embedding.keras", "keras_v3", [io("tokens", [None, 6], "int32")], ["pooled"],
              "Keras 3: int32 tokens (-1,6) -> Embedding(5, 4) -> GlobalAveragePooling1D 'pooled'; ids must be "
              "below 5.", failure_class=2)
    verify_keras(out, e, keras.saving.load_model)
    return [e]

def realworld_training_metagraph(out):
    """A MetaGraph from training code (issue 13, class 4): v1 tf.cond (Switch/Merge, switch_t/f
    consumed only by control edges), training under a scope ('train/gradients/...',
    'train/GradientDescent'), a learning-rate variable the checkpoint lacks, a string iterator
    handle feeding only the 'aux' output, and a PlaceholderWithDefault whose default is computed."""
    d = os.path.join(out, "realworld", "training"); os.makedirs(d)
    v1.disable_control_flow_v2()
    try:
        with tf.Graph().as_default(), v1.Session() as sess:
            v1.set_random_seed(0)
            x = v1.placeholder(tf.float32, [None, 8], name="x")
            labels = v1.placeholder(tf.int64, [None], name="labels")
            handle = v1.placeholder(tf.string, [], name="iterator_handle")
            is_training = v1.placeholder_with_default(False, [], name="is_training")
            scale = v1.placeholder_with_default(tf.reduce_max(x), [], name="scale")
            h = tf.nn.relu(dense(x / scale, 16, "hidden"))
            h = v1.cond(is_training, lambda: h * 0.5, lambda: h * 1.0, name="dropout")
            logits = dense(h, 3, "logits")
            tf.nn.softmax(logits, name="probs")
            tf.strings.length(handle, name="aux")
            with tf.name_scope("train"):
                lr = v1.get_variable("learning_rate", [], initializer=tf.constant_initializer(0.1), trainable=False)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
                step = v1.train.GradientDescentOptimizer(lr).minimize(loss)
            weights = [v for v in v1.global_variables() if "learning_rate" not in v.name]
            sess.run(v1.global_variables_initializer())
            sess.run(step, {x: np.random.RandomState(0).rand(4, 8), labels: [0, 1, 2, 0]})
            v1.train.Saver(weights).save(sess, os.path.join(d, "model"), write_state=False)
            graph_def = sess.graph.as_graph_def()
    finally:
        v1.enable_control_flow_v2()
    e = entry("realworld/training/model.meta", "metagraph",
              [io("x", [None, 8]), io("iterator_handle", [], "string"),
               io("is_training", [], "bool", optional=True), io("scale", [], optional=True)], ["probs", "aux"],
              "Training MetaGraph: v1 cond (dropout/switch_t, switch_f are consumed by control edges only), "
              "train/gradients/* and train/GradientDescent under a scope, 'labels' for the loss, "
              "'learning_rate' not in the checkpoint, 'aux' needs only the string iterator_handle, and "
              "'scale' defaults to a computed reduce_max(x).", checkpoint="realworld/training/model",
              training_only_inputs=["labels"], failure_class=4)
    verify_graph(graph_def, e, training_only=["labels"])
    names = {n.name for n in graph_def.node}
    check({"dropout/switch_t", "dropout/switch_f", "train/gradients/Shape"} <= names, "training graph names")
    return [e]


BUILDERS = [keras3_functional, keras3_sequential, keras2_models, frozen_graph, slim_checkpoint, tf1_checkpoint_v2,
            metagraph, saved_model_tf1, saved_model_tf2, image_classifier, dynamic_shapes, lambda_models,
            realworld_verification, realworld_keras_embedding, realworld_training_metagraph, *recurrent.BUILDERS,
            *custom.BUILDERS, *qat_detection.BUILDERS, *formats.BUILDERS]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="default: this script's dir")
    ap.add_argument("--verbose", action="store_true", help="show TensorFlow/Keras logs and warnings")
    args = ap.parse_args()
    out, start = os.path.abspath(args.out), time.time()
    os.makedirs(out, exist_ok=True)
    for name in OUTPUTS:  # remove only this script's own previous outputs
        p = os.path.join(out, name)
        shutil.rmtree(p) if os.path.isdir(p) else os.path.exists(p) and os.remove(p)
    global tf, v1, keras, tf_keras, h5py, np, text_format
    with contextlib.nullcontext() if args.verbose else quiet_stderr():
        import numpy as np, h5py, tensorflow as tf, keras, tf_keras
        from google.protobuf import text_format
        v1 = tf.compat.v1
        models = [e for build in BUILDERS for e in build(out)]
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": tf_keras.__version__}
    manifest = {"built_with": versions,
                "paths": "relative to this manifest's directory", "models": models}
    text = json.dumps(manifest, indent=2)  # then put number lists (shapes) on one line
    text = re.sub(r"\[[-\d,\s]*\]", lambda m: json.dumps(json.loads(m.group())), text)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(text + "\n")
    print(f"built {len(models)} models in {out} ({time.time() - start:.1f}s)")


if __name__ == "__main__":
    main()
