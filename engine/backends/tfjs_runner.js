// Runs a converted TF.js model once, for tfwizard's verification (engine/backends/tfjs.py).
//
//   node tfjs_runner.js MODEL_DIR IN.json OUT.json
//
// IN.json:  {"inputs": {name: {dtype, shape, data}}, "outputs": [name, ...], "time": {runs, warmup}?}
// OUT.json: {name: {dtype, shape, data}}; data is base64 of the little-endian values
// (bool as one byte each), so float32 values cross the process boundary bit-exact.
// Graph models are fed by input name (placeholder or signature key) and fetched by the
// names listed; layers models are fed by input layer name and answer by output layer name.
// With "time", the same call is then made warmup + runs times more, and OUT.json.timings gets the
// runs' milliseconds (--benchmark: timed here, not across a process start per call).
// Results go to a file because @tensorflow/tfjs prints its "install tfjs-node" hint on stdout.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };

function decode({ dtype, shape, data, strings }) {
  if (dtype === "string") return tf.tensor(strings.map((s) => new Uint8Array(Buffer.from(s, "base64"))), shape, "string");
  const Typed = ARRAYS[dtype];
  if (!Typed) throw new Error(`input dtype ${dtype} is not supported by the TF.js runner`);
  const buf = Buffer.from(data, "base64");
  const bytes = new Uint8Array(buf.byteLength);
  bytes.set(buf);  // copy: Buffer views may be unaligned for Float32Array
  return tf.tensor(new Typed(bytes.buffer), shape, dtype);
}

function encode(t) {
  const values = t.dataSync();
  const bytes = t.dtype === "bool" ? Uint8Array.from(values) : values;
  return { dtype: t.dtype, shape: t.shape, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
}

async function loadModel(dir) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  // Shards are read in manifest order and concatenated, as tf.io.http would.
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const specs = [], files = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      for (const p of group.paths) files.push(path.join(dir, p));
    }
    // Read straight into one buffer: joining shards read one by one would hold the weights twice.
    const all = new Uint8Array(files.reduce((n, f) => n + fs.statSync(f).size, 0));
    let offset = 0;
    for (const f of files) {
      const fd = fs.openSync(f, "r");
      try {
        for (let n; (n = fs.readSync(fd, all, offset, Math.min(all.length - offset, 1 << 30), null)) > 0;) offset += n;
      } finally {
        fs.closeSync(fd);
      }
    }
    return [specs, all.buffer];
  });
  const handler = tf.io.fromMemory(artifacts);
  return modelJson.format === "layers-model"
    ? { layers: true, model: await tf.loadLayersModel(handler) }
    : { layers: false, model: await tf.loadGraphModel(handler) };
}

async function main() {
  const [dir, inPath, outPath] = process.argv.slice(2);
  const request = JSON.parse(fs.readFileSync(inPath, "utf8"));
  const { layers, model } = await loadModel(dir);
  const feeds = {};
  for (const [name, spec] of Object.entries(request.inputs)) feeds[name] = decode(spec);
  const result = {};
  let call;
  if (layers) {
    // Named by their layers (a Sequential model leaves inputNames/outputNames empty).
    const inputNames = model.inputs.map((t) => t.sourceLayer.name);
    const missing = inputNames.filter((n) => !(n in feeds));
    if (missing.length) throw new Error(`no value for layers-model inputs ${missing.join(", ")}`);
    call = async () => model.predict(inputNames.map((n) => feeds[n]));
  } else {
    // executeAsync also handles dynamic control flow, which execute() refuses.
    call = async () => model.executeAsync(feeds, request.outputs);
  }
  let outs = await call();
  outs = Array.isArray(outs) ? outs : [outs];
  if (layers) model.outputs.forEach((t, i) => { result[t.sourceLayer.name] = encode(outs[i]); });
  else request.outputs.forEach((n, i) => { result[n] = encode(outs[i]); });
  fs.writeFileSync(outPath, JSON.stringify(result));
  if (request.time) {
    const timings = [];
    for (let k = 0; k < request.time.warmup + request.time.runs; k++) {
      const t0 = process.hrtime.bigint();
      let got = await call();
      got = Array.isArray(got) ? got : [got];
      got.forEach((t) => t.dataSync());  // the values really computed
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      tf.dispose(got);
      if (k >= request.time.warmup) timings.push(ms);
    }
    fs.writeFileSync(`${outPath}.timings`, JSON.stringify(timings));
  }
}

main().catch((e) => {
  // One marked line for tfwizard's message, then the stack for whoever reads the log.
  process.stderr.write(`tfjs_runner error: ${String(e && e.message ? e.message : e).split("\n")[0]}\n`);
  process.stderr.write(`${e && e.stack ? e.stack : ""}\n`);
  process.exit(1);
});
