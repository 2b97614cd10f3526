"""Quantization-aware and object-detection samples for build.py (issue 15, items 6 and 7).

- qat_frozen.pb: a frozen TF1 graph as tf.contrib.quantize / QAT leaves it: FakeQuantWithMinMaxVars
  on activations (per tensor) and on the dense weights, FakeQuantWithMinMaxVarsPerChannel on the
  conv weights (narrow range, as QAT quantizes weights).
- ssd_tiny/: a TF Object Detection API-style SSD, as a frozen graph (`frozen_inference_graph.pb`,
  TF1 while loops) and a TF2 SavedModel (`saved_model/`), with the `pipeline.config` the OD API
  exports beside them: uint8 `image_tensor` [-1,-1,-1,3], resized to 32x32 in a map_fn (a while
  loop), a two-conv feature extractor, 64 anchors, box decoding, NonMaxSuppressionV5 per image in
  a second map_fn, and the OD API's outputs detection_boxes/scores/classes and num_detections.

Each builder takes the output directory and returns manifest entries, like build.py's own.
"""
import os

import numpy as np

OUTPUTS = ["qat_frozen.pb", "ssd_tiny"]
IMAGE_SIZE, GRID, CLASSES, MAX_DETECTIONS = 32, 8, 2, 10
BIAS = 4.0  # on the class logits: keeps most anchors below the score threshold
PIPELINE_CONFIG = f"""model {{
  ssd {{
    num_classes: {CLASSES}
    image_resizer {{
      fixed_shape_resizer {{
        height: {IMAGE_SIZE}
        width: {IMAGE_SIZE}
      }}
    }}
    post_processing {{
      batch_non_max_suppression {{
        score_threshold: 0.3
        iou_threshold: 0.5
        max_detections_per_class: {MAX_DETECTIONS}
        max_total_detections: {MAX_DETECTIONS}
      }}
      score_converter: SIGMOID
    }}
  }}
}}
"""
TESTS = "tests/test_qat_detection.py"  # converts these with their own expectations (not test_convert's 1e-4)
DETECTION_OUTPUTS = ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]


def _entry(path, fmt, inputs, outputs, notes, **extra):
    return {"path": path, "format": fmt, "inputs": inputs, "outputs": [{"name": n} for n in outputs],
            **extra, "notes": notes}


def _io(name, shape, dtype="float32", **extra):
    return {"name": name, "dtype": dtype, "shape": [-1 if d is None else d for d in shape], **extra}


def qat_frozen(out):
    import tensorflow as tf
    v1 = tf.compat.v1
    rng = np.random.default_rng(15)
    fq, fq_channel = tf.quantization.fake_quant_with_min_max_vars, tf.quantization.fake_quant_with_min_max_vars_per_channel
    with tf.Graph().as_default() as g, v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        # Ranges are variables in a QAT graph (learned EMA min/max); freezing folds them into Consts.
        var = lambda name, value: v1.get_variable(name, initializer=np.asarray(value, np.float32))
        xq = fq(x, var("input/min", 0.0), var("input/max", 1.0), name="input/act_quant")
        w = var("conv/weights", rng.normal(0, 0.3, (3, 3, 3, 4)))
        w_range = np.abs(rng.normal(0, 0.3, (3, 3, 3, 4))).max(axis=(0, 1, 2)) + 0.4
        wq = fq_channel(w, var("conv/weights/min", -w_range), var("conv/weights/max", w_range), narrow_range=True,
                        name="conv/weights_quant")
        conv = tf.nn.relu6(tf.nn.bias_add(tf.nn.conv2d(xq, wq, 1, "SAME"), var("conv/biases", rng.normal(0, 0.1, 4))))
        convq = fq(conv, var("conv/act_min", 0.0), var("conv/act_max", 6.0), name="conv/act_quant")
        pooled = tf.reduce_mean(convq, axis=[1, 2])
        d = var("fc/weights", rng.normal(0, 0.5, (4, 5)))
        dq = fq(d, var("fc/weights/min", -1.5), var("fc/weights/max", 1.5), narrow_range=True, name="fc/weights_quant")
        logits = tf.nn.bias_add(tf.matmul(pooled, dq), var("fc/biases", rng.normal(0, 0.1, 5)))
        fq(logits, var("fc/act_min", -4.0), var("fc/act_max", 4.0), name="output")
        sess.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["output"])
    tf.io.write_graph(frozen, out, "qat_frozen.pb", as_text=False)
    ops = {n.op for n in frozen.node}
    assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel"} <= ops, ops
    return [_entry("qat_frozen.pb", "graphdef", [_io("input", [None, 8, 8, 3])], ["output"],
                   "QAT-style frozen graph: FakeQuantWithMinMaxVars on the input, activations and dense weights "
                   "(per tensor), FakeQuantWithMinMaxVarsPerChannel on the conv weights; conv/relu6/mean/matmul; "
                   "output 'output' [-1,5] is fake-quantized to [-4,4].", tested_in=TESTS)]


def _ssd(tf, image_tensor, weights):
    """The OD API's SSD meta-architecture in miniature; `weights` maps names to tensors."""
    images = tf.cast(image_tensor, tf.float32)
    resized = tf.map_fn(lambda im: tf.image.resize(im, [IMAGE_SIZE, IMAGE_SIZE]), images,
                        fn_output_signature=tf.float32, name="Preprocessor/map")
    x = (resized - 127.5) / 127.5
    x = tf.nn.relu6(tf.nn.conv2d(x, weights["conv1"], 2, "SAME"))
    x = tf.nn.relu6(tf.nn.conv2d(x, weights["conv2"], 2, "SAME"))  # [B, 8, 8, 8]
    batch = tf.shape(x)[0]
    encodings = tf.reshape(tf.nn.conv2d(x, weights["box"], 1, "SAME"), [batch, GRID * GRID, 4]) * 0.2
    logits = tf.reshape(tf.nn.conv2d(x, weights["cls"], 1, "SAME"), [batch, GRID * GRID, CLASSES + 1])
    scores = tf.sigmoid(logits - BIAS)[:, :, 1:]  # column 0 is the background class; a bias keeps most anchors below the threshold
    centers = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    anchors = np.stack([cy.ravel(), cx.ravel(), np.full(GRID * GRID, 0.3), np.full(GRID * GRID, 0.3)], 1)
    anchors = tf.constant(anchors.astype(np.float32))  # [64, 4]: ycenter, xcenter, h, w
    ty, tx, th, tw = tf.unstack(encodings, axis=2)
    yc, xc = ty * anchors[:, 2] + anchors[:, 0], tx * anchors[:, 3] + anchors[:, 1]
    h, w = tf.exp(th) * anchors[:, 2], tf.exp(tw) * anchors[:, 3]
    boxes = tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=2)

    def postprocess(args):  # per image, as BatchMultiClassNonMaxSuppression runs in a map_fn
        b, s = args
        best = tf.reduce_max(s, axis=1)
        classes = tf.cast(tf.argmax(s, axis=1), tf.float32) + 1.0  # label map ids start at 1
        selected, selected_scores, valid = tf.raw_ops.NonMaxSuppressionV5(
            boxes=b, scores=best, max_output_size=MAX_DETECTIONS, iou_threshold=0.5, score_threshold=0.3,
            soft_nms_sigma=0.0, pad_to_max_output_size=True)
        keep = tf.cast(tf.range(MAX_DETECTIONS) < valid, tf.float32)  # padding is zeros, as in the OD API
        return (tf.gather(b, selected) * keep[:, None], selected_scores * keep, tf.gather(classes, selected) * keep,
                tf.cast(valid, tf.float32))

    det_boxes, det_scores, det_classes, num = tf.map_fn(
        postprocess, (boxes, scores), fn_output_signature=(tf.float32, tf.float32, tf.float32, tf.float32),
        name="Postprocessor/BatchMultiClassNonMaxSuppression/map")
    return {"detection_boxes": det_boxes, "detection_scores": det_scores, "detection_classes": det_classes,
            "num_detections": num}


def _ssd_weights():
    rng = np.random.default_rng(7)
    shapes = {"conv1": (3, 3, 3, 8), "conv2": (3, 3, 8, 8), "box": (3, 3, 8, 4), "cls": (3, 3, 8, CLASSES + 1)}
    return {k: rng.normal(0, 0.4, s).astype(np.float32) for k, s in shapes.items()}


def ssd_tiny(out):
    import tensorflow as tf
    v1 = tf.compat.v1
    d = os.path.join(out, "ssd_tiny")
    os.makedirs(d)
    with open(os.path.join(d, "pipeline.config"), "w") as f:
        f.write(PIPELINE_CONFIG)
    weights = _ssd_weights()
    v1.disable_control_flow_v2()  # the OD API's TF1 exports have while loops as Enter/Merge/Switch/Exit
    with tf.Graph().as_default() as g, v1.Session() as sess:
        image = v1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        outputs = _ssd(tf, image, {k: v1.get_variable(k, initializer=v) for k, v in weights.items()})
        for name, t in outputs.items():
            tf.identity(t, name=name)
        sess.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), DETECTION_OUTPUTS)
        feed = np.random.default_rng(20261121).integers(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)  # tfwizard's test image
        counts = sess.run(outputs["num_detections"], {image: feed})
    v1.enable_control_flow_v2()
    assert 0 < counts.min() and counts.max() < MAX_DETECTIONS, counts  # some detections, not all slots
    tf.io.write_graph(frozen, d, "frozen_inference_graph.pb", as_text=False)
    ops = {n.op for n in frozen.node}
    assert {"NonMaxSuppressionV5", "Enter", "Exit", "LoopCond"} <= ops, ops

    module = tf.Module()
    module.weights = {k: tf.Variable(v, name=k) for k, v in weights.items()}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def detect(input_tensor):
        return _ssd(tf, input_tensor, module.weights)

    tf.saved_model.save(module, os.path.join(d, "saved_model"), signatures={"serving_default": detect})
    loaded = tf.saved_model.load(os.path.join(d, "saved_model")).signatures["serving_default"]
    np.testing.assert_array_equal(loaded(input_tensor=tf.constant(feed))["num_detections"].numpy(), counts)
    # What inspect reports: the graph says [-1,-1,-1,3]; pipeline.config's resizer gives 32x32.
    graph_inputs = [_io("image_tensor", [None, IMAGE_SIZE, IMAGE_SIZE, 3], "uint8")]
    return [_entry("ssd_tiny/frozen_inference_graph.pb", "graphdef", graph_inputs, DETECTION_OUTPUTS,
                   "TF Object Detection API-style SSD, frozen TF1 graph: uint8 image_tensor -> map_fn resize to 32x32 "
                   "(while loop) -> 2 convs -> 64 anchors -> NonMaxSuppressionV5 per image in a map_fn -> "
                   "detection_boxes [-1,10,4], detection_scores/classes [-1,10], num_detections [-1]. "
                   "pipeline.config beside it: fixed_shape_resizer 32x32.", tested_in=TESTS),
            _entry("ssd_tiny/saved_model", "saved_model", [_io("input_tensor", [None, IMAGE_SIZE, IMAGE_SIZE, 3], "uint8")],
                   sorted(DETECTION_OUTPUTS), "The same SSD as a TF2 OD API SavedModel (functional While loops).",
                   tags=["serve"], signatures=["serving_default"], tested_in=TESTS)]


BUILDERS = [qat_frozen, ssd_tiny]
