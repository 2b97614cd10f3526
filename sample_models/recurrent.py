"""Recurrent, text and odd-file samples for build.py (issue 13): tiny, a few units each.

Each builder takes the output directory and returns manifest entries, like build.py's own.
TensorFlow, Keras and tf_keras are imported inside, after build.py has set up logging.
"""
import os
import shutil

OUTPUTS = ["keras2_lstm.h5", "keras2_bigru.h5", "keras3_lstm.keras", "keras3_gru_dropout.keras", "tf1_gru_frozen.pb",
           "tf1_time_major_rnn.pb", "tf1_lstm_metagraph", "metagraph_empty_stem", "keras2_dense.model",
           "keras2_dense.hdf5", "text_lookup_tf1", "keras3_gelu_attention.keras"]
STEPS, FEATURES = 5, 3  # sequence length and features of every recurrent sample


def _entry(path, fmt, inputs, outputs, notes, **extra):
    return {"path": path, "format": fmt, "inputs": inputs, "outputs": [{"name": n} for n in outputs],
            **extra, "notes": notes}


def _io(name, shape, dtype="float32", **extra):
    return {"name": name, "dtype": dtype, "shape": [-1 if d is None else d for d in shape], **extra}


def _rnn(v1, tf, x, units, cell):
    """A TF1 while loop over time, as dynamic_rnn builds it: TensorArray in, state through the loop.

    cell(x_t, state) -> state; state is a tuple of [batch, units] tensors. Returns the last state."""
    xs = v1.TensorArray(tf.float32, STEPS).unstack(tf.transpose(x, [1, 0, 2]))
    zeros = tf.zeros([tf.shape(x)[0], units])
    init = (zeros,) * cell.state_size
    result = v1.while_loop(lambda t, *s: t < STEPS, lambda t, *s: (t + 1, *cell(xs.read(t), s)),
                           (tf.constant(0), *init), name="rnn")
    return tuple(result[1:])


def _weights(v1, name, shape):
    return v1.get_variable(name, shape, initializer=v1.glorot_uniform_initializer(seed=len(name)))


def _dense(v1, tf, x, units, name):
    return tf.matmul(x, _weights(v1, f"{name}/kernel", [x.shape[-1], units])) + _weights(v1, f"{name}/bias", [units])


class _GRUCell:
    state_size = 1

    def __init__(self, v1, tf, units):
        self.v1, self.tf, self.units = v1, tf, units
        self.w = _weights(v1, "gru/kernel", [FEATURES + units, 3 * units])

    def __call__(self, x, state):
        tf, (h,) = self.tf, state
        z, r, n = tf.split(tf.matmul(tf.concat([x, h], 1), self.w), 3, axis=1)
        z, r = tf.sigmoid(z), tf.sigmoid(r)
        n = tf.tanh(n * r)
        return ((1 - z) * n + z * h,)


class _LSTMCell:
    state_size = 2

    def __init__(self, v1, tf, units):
        self.tf = tf
        self.w = _weights(v1, "lstm/kernel", [FEATURES + units, 4 * units])

    def __call__(self, x, state):
        tf, (c, h) = self.tf, state
        i, f, g, o = tf.split(tf.matmul(tf.concat([x, h], 1), self.w), 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return c, tf.sigmoid(o) * tf.tanh(c)


def keras2_recurrent(out):
    """Keras 2 (tf_keras) LSTM and bidirectional GRU saved to HDF5, as older Keras 2 code did."""
    import tf_keras

    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((STEPS, FEATURES), name="sequence")
    tf_keras.Model(x, L.Dense(2, name="scores")(L.LSTM(4, name="lstm")(x))).save(os.path.join(out, "keras2_lstm.h5"))
    x = tf_keras.Input((STEPS, FEATURES), name="sequence")
    y = L.Bidirectional(L.GRU(3, name="gru"), name="bigru")(x)
    tf_keras.Model(x, L.Dense(2, name="scores")(y)).save(os.path.join(out, "keras2_bigru.h5"))
    seq = [_io("sequence", [None, STEPS, FEATURES])]
    return [_entry("keras2_lstm.h5", "keras_h5", seq, ["scores"],
                   f"Keras 2 (tf_keras) LSTM(4) over ({STEPS},{FEATURES}) -> Dense(2) 'scores'. Its tf.function "
                   "has a While loop over TensorLists: lowered to TF1 control flow, tf2onnx cannot convert it."),
            _entry("keras2_bigru.h5", "keras_h5", seq, ["scores"],
                   "Keras 2 (tf_keras) Bidirectional(GRU(3)) -> Dense(2) 'scores': two While loops.")]


def keras3_lstm(out):
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((STEPS, FEATURES), name="sequence")
    y = keras.layers.Dense(2, name="scores")(keras.layers.LSTM(4, name="lstm")(x))
    keras.Model(x, y).save(os.path.join(out, "keras3_lstm.keras"))
    return [_entry("keras3_lstm.keras", "keras_v3", [_io("sequence", [None, STEPS, FEATURES])], ["scores"],
                   "Keras 3 LSTM(4) -> Dense(2) 'scores' (.keras zip).")]


def keras3_gru_dropout(out):
    """Keras 3 GRU with dropout and recurrent_dropout, as in the zoo's ao-compensation-model GRUs.

    Keras 3 RNNs draw their dropout masks on every call, training=False included (the masks go
    unused), so the traced function advances the layer's SeedGenerator: a write to a variable that
    freezing turns into a constant."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((STEPS, FEATURES), name="sequence")
    h = keras.layers.GRU(4, dropout=0.2, recurrent_dropout=0.1, name="gru")(x)
    keras.Model(x, keras.layers.Dense(2, name="scores")(h)).save(os.path.join(out, "keras3_gru_dropout.keras"))
    return [_entry("keras3_gru_dropout.keras", "keras_v3", [_io("sequence", [None, STEPS, FEATURES])], ["scores"],
                   "Keras 3 GRU(4, dropout=0.2, recurrent_dropout=0.1) -> Dense(2) 'scores' (.keras zip): its "
                   "inference function still writes the dropout SeedGenerator's state.")]


def _frozen_tf1(build, output: str):
    """build(v1, tf) makes a TF1 graph, with v1 loops as TF 1.x wrote them; → it frozen to `output`."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    v1 = tf.compat.v1
    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False  # graphs from TF 1.x have v1 loops
    try:
        with tf.Graph().as_default() as g, v1.Session() as sess:
            v1.set_random_seed(0)
            build(v1, tf)
            sess.run(v1.global_variables_initializer())
            return v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), [output])
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved


def tf1_gru_frozen(out):
    """A TF1 frozen graph with a TF1 while loop (Enter/Exit/NextIteration), as dynamic_rnn wrote it."""
    import tensorflow as tf

    def build(v1, tf):
        x = v1.placeholder(tf.float32, [None, STEPS, FEATURES], name="sequence")
        (h,) = _rnn(v1, tf, x, 4, _GRUCell(v1, tf, 4))
        tf.identity(_dense(v1, tf, h, 2, "dense"), name="scores")

    frozen = _frozen_tf1(build, "scores")
    ops = {n.op for n in frozen.node}
    assert {"Enter", "Exit", "NextIteration", "TensorArrayV3"} <= ops, sorted(ops)
    tf.io.write_graph(frozen, out, "tf1_gru_frozen.pb", as_text=False)
    return [_entry("tf1_gru_frozen.pb", "graphdef", [_io("sequence", [None, STEPS, FEATURES])], ["scores"],
                   "TF1 frozen graph: a hand-written GRU(4) loop (TF1 while loop: Enter/Exit/NextIteration, "
                   "TensorArrayV3) -> dense 'scores'.")]


def tf1_time_major_rnn(out):
    """A TF1 frozen graph as dynamic_rnn(time_major=True) with dropout wrote it (the zoo's cutkum):
    inputs [time, batch, features], a [batch] of sequence lengths, and a keep_prob placeholder
    without a shape driving RandomUniform dropout. Random feeds of the usual [batch, ...] layout
    don't fit it; cutkum's own code feeds keep_prob 1.0."""
    import tensorflow as tf

    def build(v1, tf):
        x = v1.placeholder(tf.float32, [None, None, FEATURES], name="inputs")
        lengths = v1.placeholder(tf.int32, [None], name="seq_lengths")
        keep_prob = v1.placeholder(tf.float32, None, name="keep_prob")
        x = v1.nn.dropout(x, keep_prob=keep_prob)
        steps = tf.shape(x)[0]
        xs = v1.TensorArray(tf.float32, steps).unstack(x)
        cell = _GRUCell(v1, tf, 4)

        def step(t, h):  # past its length, a sequence keeps its state (Select on a [batch] condition)
            (new,) = cell(xs.read(t), (h,))
            return t + 1, v1.where(t < lengths, new, h)

        _, h = v1.while_loop(lambda t, h: t < steps, step, (tf.constant(0), tf.zeros([tf.shape(x)[1], 4])),
                             name="rnn")
        tf.identity(_dense(v1, tf, h, 2, "dense"), name="scores")

    frozen = _frozen_tf1(build, "scores")
    ops = {n.op for n in frozen.node}
    assert {"Enter", "RandomUniform", "Select"} <= ops, sorted(ops)
    tf.io.write_graph(frozen, out, "tf1_time_major_rnn.pb", as_text=False)
    return [_entry("tf1_time_major_rnn.pb", "graphdef",
                   [_io("inputs", [None, None, FEATURES]), _io("seq_lengths", [None], "int32"),
                    {"name": "keep_prob", "dtype": "float32", "shape": None}], ["scores"],
                   "TF1 frozen graph, time-major as dynamic_rnn(time_major=True) writes it: inputs [time, batch, 3], "
                   "seq_lengths [batch], a keep_prob placeholder without a shape driving RandomUniform dropout, a "
                   "GRU(4) while loop -> dense 'scores'. Verified on ONNX and TFLite (tests/test_zoo_regressions.py); "
                   "TF.js can't run TF1 Select on a [batch] condition and OpenVINO has no rule for a dynamic "
                   "TensorArrayV3, as upstream.", failure_class=2)]


def tf1_lstm_metagraph(out):
    """A TF1 MetaGraph + V2 checkpoint of a dynamic_rnn LSTM, TF1 while loop and all."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    v1 = tf.compat.v1
    d = os.path.join(out, "tf1_lstm_metagraph")
    os.makedirs(d)
    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    try:
        with tf.Graph().as_default(), v1.Session() as sess:
            v1.set_random_seed(0)
            x = v1.placeholder(tf.float32, [None, STEPS, FEATURES], name="sequence")
            c, h = _rnn(v1, tf, x, 4, _LSTMCell(v1, tf, 4))  # both states used: no dangling loop Exit
            tf.identity(_dense(v1, tf, tf.concat([c, h], 1), 2, "dense"), name="scores")
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, os.path.join(d, "model"), write_state=False)
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved
    return [_entry("tf1_lstm_metagraph/model.meta", "metagraph", [_io("sequence", [None, STEPS, FEATURES])],
                   ["scores"], "TF1 MetaGraph + V2 checkpoint 'model': a hand-written LSTM(4) loop "
                   "(TF1 while loop) -> dense 'scores'.", checkpoint="tf1_lstm_metagraph/model")]


def metagraph_empty_stem(out):
    """The same kind of MetaGraph saved under the prefix '' : files '.meta', '.index', '.data-…'."""
    import tensorflow as tf

    v1 = tf.compat.v1
    d = os.path.join(out, "metagraph_empty_stem")
    os.makedirs(d)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        tf.nn.softmax(_dense(v1, tf, x, 3, "dense"), name="probs")
        sess.run(v1.global_variables_initializer())
        v1.train.Saver().save(sess, d + os.sep, write_state=False)  # prefix "<dir>/": empty file stem
    assert sorted(os.listdir(d)) == [".data-00000-of-00001", ".index", ".meta"], os.listdir(d)
    return [_entry("metagraph_empty_stem/.meta", "metagraph", [_io("x", [None, 4])], ["probs"],
                   "MetaGraph saved with the prefix 'dir/': files .meta, .index, .data-00000-of-00001 (empty stem).",
                   checkpoint="metagraph_empty_stem/")]


def keras2_odd_suffixes(out):
    """Keras 2 HDF5 models under the names older tutorials used: model.model, model.hdf5."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((4,), name="x")
    model = tf_keras.Model(x, tf_keras.layers.Dense(2, name="out")(x))
    model.save(os.path.join(out, "keras2_dense.h5"))
    for suffix in (".model", ".hdf5"):
        shutil.copyfile(os.path.join(out, "keras2_dense.h5"), os.path.join(out, f"keras2_dense{suffix}"))
    os.remove(os.path.join(out, "keras2_dense.h5"))
    notes = "Keras 2 (tf_keras) HDF5 Dense(2) 'out' on x (-1,4), saved under a {} suffix."
    return [_entry(f"keras2_dense{s}", "keras_h5", [_io("x", [None, 4])], ["out"], notes.format(s))
            for s in (".model", ".hdf5")]


def text_lookup_tf1(out):
    """A TF1 SavedModel that takes strings, looks words up in a HashTable and scores them."""
    import tensorflow as tf

    v1 = tf.compat.v1
    d = os.path.join(out, "text_lookup_tf1")
    builder = v1.saved_model.Builder(d)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(0)
        words = v1.placeholder(tf.string, [None], name="words")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["the", "cat", "sat", "on", "mat"], tf.constant([1, 2, 3, 4, 5], tf.int64)),
            default_value=0)
        ids = table.lookup(words)
        embedding = v1.get_variable("embedding", [6, 3])
        scores = tf.nn.softmax(tf.reduce_mean(tf.gather(embedding, ids), axis=0, keepdims=True), name="scores")
        sess.run([v1.global_variables_initializer(), v1.tables_initializer()])
        sig = v1.saved_model.predict_signature_def({"words": words}, {"scores": scores})
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig},
                                             main_op=v1.tables_initializer())
    builder.save()
    return [_entry("text_lookup_tf1", "saved_model", [_io("words", [None], "string")], ["scores"],
                   "TF1 SavedModel: string 'words' [-1] -> HashTable lookup (initialised by the main op) -> "
                   "embedding mean -> softmax 'scores' [1,3].", tags=["serve"], signatures=["serving_default"],
                   # No upstream converts it; tfwizard does for TF.js and TFLite. Elsewhere: one line naming the op.
                   fails_on={"onnx": "LookupTableImportV2", "openvino": "HashTableV2"})]


def keras3_gelu_attention(out):
    """A Keras 3 transformer block: exact gelu (Keras' default) computes erfc, which tf2onnx and TF.js lack."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((STEPS, 8), name="tokens_embedded")
    h = keras.layers.LayerNormalization(name="norm")(x + keras.layers.MultiHeadAttention(2, 4, name="attention")(x, x))
    h = keras.layers.Dense(8, name="ff_out")(keras.layers.Dense(16, activation="gelu", name="ff")(h))
    y = keras.layers.Dense(2, name="scores")(keras.layers.GlobalAveragePooling1D(name="pool")(h))
    keras.Model(x, y).save(os.path.join(out, "keras3_gelu_attention.keras"))
    return [_entry("keras3_gelu_attention.keras", "keras_v3", [_io("tokens_embedded", [None, STEPS, 8])], ["scores"],
                   "Keras 3 MultiHeadAttention + Dense(gelu) -> Dense(2) 'scores': exact gelu freezes to Erfc.")]


BUILDERS = [keras2_recurrent, keras3_lstm, keras3_gru_dropout, tf1_gru_frozen, tf1_time_major_rnn, tf1_lstm_metagraph, metagraph_empty_stem,
            keras2_odd_suffixes, text_lookup_tf1, keras3_gelu_attention]
