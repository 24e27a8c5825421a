#!/usr/bin/env node
// Reference outputs of the two passive-liveness TF.js graph models (antispoof, liveness from
// @vladmandic/human@3.3.6), computed by TF.js itself on its pure-JS CPU backend. The Rust
// converter (models/setup/src/tfjs) is tested against these numbers in
// models/setup/tests/tfjs_equivalence.rs, so the ONNX graphs are checked against the
// implementation the models were published for, not against our own reading of TF semantics.
//
// Inputs are stored in the fixture as 8-bit RGB pixels (base64, NHWC row-major) and fed as
// byte / 255 in float32, so the Rust test rebuilds exactly the same tensors without image code.
// Face crops are cut from public-domain photos in ../shared/faces with tf.image.cropAndResize
// (bilinear, as Human does) at hand-picked square boxes; synthetic patterns need no photo.
//
// Usage (from the repository root):
//   cd scripts/dev/tfjs_reference && npm ci && node reference.js [MODELS_DIR] [FACES_DIR] [OUT_JSON]
// Defaults: models/.cache/vladmandic-human-3.3.6/package/models (falling back to
// /tmp/dl/extract/package/models), ../shared/faces, models/tests/fixtures/tfjs_reference.json.
// With PREVIEW_DIR set, every crop is also written there as a PNG for a visual check.

'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const tf = require('@tensorflow/tfjs');
const jpeg = require('jpeg-js');
const { PNG } = require('pngjs');

const REPO = path.resolve(__dirname, '..', '..', '..');

// Square face boxes [x, y, size] in source-image pixels, picked by eye from the photos.
const FACES = [
  { name: 'obama_1', file: 'facerec-A/Barack_Obama/1.jpg', box: [345, 105, 300] },
  { name: 'obama_2', file: 'facerec-A/Barack_Obama/2.jpg', box: [186, 240, 300] },
  { name: 'obama_3', file: 'facerec-A/Barack_Obama/3.jpg', box: [600, 260, 310] },
  { name: 'obama_4', file: 'facerec-A/Barack_Obama/4.jpg', box: [450, 135, 450] },
  { name: 'eileen_collins', file: 'misc_skimage-A/face_public_domain_Eileen_Collins/1.png', box: [168, 62, 115] },
];

// Which faces go into the fixture per model: 128x128 inputs are 48 KB each, so antispoof
// keeps three; liveness inputs are 3 KB, so it keeps all.
const MODELS = [
  { name: 'antispoof', shape: [128, 128], output: 'real', faces: ['obama_1', 'obama_4', 'eileen_collins'], synthetic: ['gradient', 'constant'] },
  { name: 'liveness', shape: [32, 32], output: 'scores', faces: FACES.map((f) => f.name), synthetic: ['gradient', 'constant', 'noise'] },
];

function firstExisting(candidates, what) {
  for (const c of candidates) if (fs.existsSync(c)) return c;
  throw new Error(`${what} not found (looked in ${candidates.join(', ')}); run scripts/setup-models.sh`);
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function decodeImage(file) {
  const buf = fs.readFileSync(file);
  let img;
  if (file.endsWith('.png')) {
    const png = PNG.sync.read(buf);
    img = { width: png.width, height: png.height, data: png.data };
  } else {
    img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
  }
  const rgb = new Uint8Array(img.width * img.height * 3);
  for (let i = 0, j = 0; i < img.width * img.height; i++) {
    rgb[j++] = img.data[i * 4];
    rgb[j++] = img.data[i * 4 + 1];
    rgb[j++] = img.data[i * 4 + 2];
  }
  return { width: img.width, height: img.height, rgb };
}

// Crop + bilinear resize with TF.js, then round to bytes so the fixture can store bytes.
function faceCrop(img, box, size) {
  return tf.tidy(() => {
    const t = tf.tensor4d(img.rgb, [1, img.height, img.width, 3], 'float32');
    const [x, y, s] = box;
    // cropAndResize takes normalised [y1, x1, y2, x2] with the far edge at (size - 1).
    const nb = [[y / (img.height - 1), x / (img.width - 1), (y + s - 1) / (img.height - 1), (x + s - 1) / (img.width - 1)]];
    const crop = tf.image.cropAndResize(t, nb, [0], [size, size], 'bilinear');
    return Uint8Array.from(crop.round().clipByValue(0, 255).dataSync());
  });
}

function synthetic(kind, h, w) {
  const px = new Uint8Array(h * w * 3);
  let seed = 12345;
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      const i = (yy * w + xx) * 3;
      if (kind === 'gradient') {
        px[i] = Math.round((xx * 255) / (w - 1));
        px[i + 1] = Math.round((yy * 255) / (h - 1));
        px[i + 2] = 128;
      } else if (kind === 'constant') {
        px[i] = px[i + 1] = px[i + 2] = 128;
      } else if (kind === 'white') {
        px[i] = px[i + 1] = px[i + 2] = 255;
      } else if (kind === 'noise') {
        for (let c = 0; c < 3; c++) {
          // 32-bit LCG (Numerical Recipes): deterministic and trivial to re-create anywhere.
          seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
          px[i + c] = seed >>> 24;
        }
      } else {
        throw new Error(`unknown pattern ${kind}`);
      }
    }
  }
  return px;
}

// A small hand-written graph model exercising what the two real models do not: SAME
// padding with stride 2 on even and odd sizes (TF puts the odd pixel at the end), MaxPool
// SAME, Relu6, a dilated convolution with EXPLICIT padding, a rank-4 constant broadcast,
// uint8-affine and float16 quantised weights, a non-square input and transpose_b.
function syntheticModel() {
  const b64 = (s) => Buffer.from(s).toString('base64');
  const ints = (a) => ({ list: { i: a.map(String) } });
  let seed = 987654321;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  const floats = (n, scale) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const specs = [];
  const parts = [];
  const addF32 = (name, shape, values) => {
    specs.push({ name, shape, dtype: 'float32' });
    parts.push(Buffer.from(values.buffer));
  };
  addF32('w1', [3, 3, 3, 4], floats(108, 3.0));
  // float16 bias: 0.25, -0.2, 0.1, -1.0 (bit patterns written directly).
  specs.push({ name: 'b1', shape: [4], dtype: 'float32', quantization: { dtype: 'float16', original_dtype: 'float32' } });
  parts.push(Buffer.from(Uint16Array.from([0x3400, 0xb266, 0x2e66, 0xbc00]).buffer));
  specs.push({ name: 'mul_c', shape: [4], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.01, min: -0.5, original_dtype: 'float32' } });
  parts.push(Buffer.from([10, 200, 77, 255]));
  addF32('add_c', [1, 1, 1, 4], floats(4, 0.5));
  addF32('w2', [2, 2, 4, 3], floats(48, 1.0));
  addF32('b2', [3], floats(3, 0.2));
  specs.push({ name: 'flat_shape', shape: [2], dtype: 'int32' });
  parts.push(Buffer.from(Int32Array.from([-1, 12]).buffer));
  addF32('w3', [5, 12], floats(60, 0.15));
  addF32('b3', [5], floats(5, 0.1));

  const konst = (name, dtype) => ({ name, op: 'Const', attr: { dtype: { type: dtype } } });
  const nodes = [
    ...['w1', 'b1', 'mul_c', 'add_c', 'w2', 'b2', 'w3', 'b3'].map((n) => konst(n, 'DT_FLOAT')),
    konst('flat_shape', 'DT_INT32'),
    {
      name: 'x',
      op: 'Placeholder',
      attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '10' }, { size: '9' }, { size: '3' }] } } },
    },
    {
      name: 'conv1',
      op: '_FusedConv2D',
      input: ['x', 'w1', 'b1'],
      attr: {
        T: { type: 'DT_FLOAT' }, padding: { s: b64('SAME') }, strides: ints([1, 2, 2, 1]), dilations: ints([1, 1, 1, 1]),
        data_format: { s: b64('NHWC') }, num_args: { i: '1' }, fused_ops: { list: { s: [b64('BiasAdd'), b64('Relu6')] } },
        explicit_paddings: { list: {} }, epsilon: { f: 0 },
      },
    },
    {
      name: 'pool',
      op: 'MaxPool',
      input: ['conv1'],
      attr: { T: { type: 'DT_FLOAT' }, ksize: ints([1, 2, 2, 1]), strides: ints([1, 2, 2, 1]), padding: { s: b64('SAME') }, data_format: { s: b64('NHWC') } },
    },
    { name: 'mul', op: 'Mul', input: ['pool', 'mul_c'], attr: { T: { type: 'DT_FLOAT' } } },
    { name: 'add', op: 'AddV2', input: ['add_c', 'mul'], attr: { T: { type: 'DT_FLOAT' } } },
    { name: 'relu', op: 'Relu', input: ['add'], attr: { T: { type: 'DT_FLOAT' } } },
    {
      name: 'conv2',
      op: '_FusedConv2D',
      input: ['relu', 'w2', 'b2'],
      attr: {
        T: { type: 'DT_FLOAT' }, padding: { s: b64('EXPLICIT') }, explicit_paddings: ints([0, 0, 1, 0, 0, 1, 0, 0]),
        strides: ints([1, 1, 1, 1]), dilations: ints([1, 2, 2, 1]), data_format: { s: b64('NHWC') },
        num_args: { i: '1' }, fused_ops: { list: { s: [b64('BiasAdd')] } }, epsilon: { f: 0 },
      },
    },
    { name: 'flat', op: 'Reshape', input: ['conv2', 'flat_shape'], attr: { T: { type: 'DT_FLOAT' }, Tshape: { type: 'DT_INT32' } } },
    {
      name: 'dense',
      op: '_FusedMatMul',
      input: ['flat', 'w3', 'b3'],
      attr: {
        T: { type: 'DT_FLOAT' }, transpose_a: { b: false }, transpose_b: { b: true }, num_args: { i: '1' },
        fused_ops: { list: { s: [b64('BiasAdd'), b64('Relu')] } }, epsilon: { f: 0 },
      },
    },
    { name: 'softmax', op: 'Softmax', input: ['dense'], attr: { T: { type: 'DT_FLOAT' } } },
    { name: 'Identity', op: 'Identity', input: ['softmax'], attr: { T: { type: 'DT_FLOAT' } } },
  ];
  const json = {
    format: 'graph-model',
    generatedBy: 'scripts/dev/tfjs_reference/reference.js',
    convertedBy: 'hand-written',
    signature: {
      inputs: { x: { name: 'x:0', dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: '10' }, { size: '9' }, { size: '3' }] } } },
      outputs: { out: { name: 'Identity:0', dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: '5' }] } } },
    },
    modelTopology: { node: nodes, library: {}, versions: {} },
    weightsManifest: [{ paths: ['synthetic.bin'], weights: specs }],
  };
  return { jsonBytes: Buffer.from(JSON.stringify(json)), binBytes: Buffer.concat(parts) };
}

function writePreview(dir, name, px, size) {
  const png = new PNG({ width: size, height: size });
  for (let i = 0; i < size * size; i++) {
    png.data[i * 4] = px[i * 3];
    png.data[i * 4 + 1] = px[i * 3 + 1];
    png.data[i * 4 + 2] = px[i * 3 + 2];
    png.data[i * 4 + 3] = 255;
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.png`), PNG.sync.write(png));
}

async function loadModel(dir, name) {
  return loadModelBytes(fs.readFileSync(path.join(dir, `${name}.json`)), fs.readFileSync(path.join(dir, `${name}.bin`)));
}

async function loadModelBytes(jsonBytes, binBytes) {
  const json = JSON.parse(jsonBytes.toString('utf8'));
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const weightData = binBytes.buffer.slice(binBytes.byteOffset, binBytes.byteOffset + binBytes.byteLength);
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs,
      weightData,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      signature: json.signature,
    }),
  );
  return { model, jsonSha: sha256(jsonBytes), binSha: sha256(binBytes) };
}

async function main() {
  const modelsDir =
    process.argv[2] ||
    firstExisting(
      [path.join(REPO, 'models/.cache/vladmandic-human-3.3.6/package/models'), '/tmp/dl/extract/package/models'],
      'the @vladmandic/human models',
    );
  const facesDir = process.argv[3] || path.resolve(REPO, '..', 'shared', 'faces');
  const outPath = process.argv[4] || path.join(REPO, 'models/tests/fixtures/tfjs_reference.json');
  const preview = process.env.PREVIEW_DIR;

  await tf.setBackend('cpu');
  await tf.ready();

  const images = new Map();
  for (const f of FACES) images.set(f.name, decodeImage(path.join(facesDir, f.file)));

  const out = {
    generator: 'scripts/dev/tfjs_reference/reference.js',
    tfjs_version: tf.version.tfjs,
    backend: tf.getBackend(),
    source_package: '@vladmandic/human@3.3.6',
    input_encoding:
      'pixels_b64: base64 of the input_shape (height x width x 3) bytes, RGB, row-major (NHWC with batch 1); the model input is byte / 255 as float32',
    models: {},
  };

  // One batched run per model: the Rust test checks batch 1 and batch N against these numbers.
  const run = (model, cases, [h, w], outputName, meta) => {
    const n = cases.length;
    const flat = new Float32Array(n * h * w * 3);
    cases.forEach((c, k) => {
      for (let i = 0; i < c.pixels.length; i++) flat[k * c.pixels.length + i] = c.pixels[i] / 255;
    });
    const x = tf.tensor4d(flat, [n, h, w, 3]);
    const y = model.execute(x);
    const data = Array.from(y.dataSync());
    const per = y.shape[1];
    x.dispose();
    y.dispose();
    return {
      ...meta,
      input_shape: [h, w, 3],
      output_name: outputName,
      output_width: per,
      cases: cases.map((c, k) => {
        const o = { name: c.name, source: c.source };
        if (c.box_xys) o.box_xys = c.box_xys;
        o.output = data.slice(k * per, (k + 1) * per);
        o.pixels_b64 = Buffer.from(c.pixels).toString('base64');
        return o;
      }),
    };
  };

  for (const m of MODELS) {
    const { model, jsonSha, binSha } = await loadModel(modelsDir, m.name);
    const [h, w] = m.shape;
    const cases = [];
    for (const fname of m.faces) {
      const f = FACES.find((x) => x.name === fname);
      cases.push({ name: f.name, source: f.file, box_xys: f.box, pixels: faceCrop(images.get(f.name), f.box, h) });
    }
    for (const s of m.synthetic) cases.push({ name: s, source: `synthetic:${s}`, pixels: synthetic(s, h, w) });
    if (preview) for (const c of cases) writePreview(path.join(preview, m.name), c.name, c.pixels, h);
    out.models[m.name] = run(model, cases, m.shape, m.output, { json_sha256: jsonSha, bin_sha256: binSha });
  }

  // The hand-written graph travels inside the fixture (it exists nowhere else).
  const syn = syntheticModel();
  const { model: synModel } = await loadModelBytes(syn.jsonBytes, syn.binBytes);
  const synCases = ['gradient', 'constant', 'white', 'noise'].map((s) => ({ name: s, source: `synthetic:${s}`, pixels: synthetic(s, 10, 9) }));
  out.models.synthetic = run(synModel, synCases, [10, 9], 'out', {
    model_json: syn.jsonBytes.toString('utf8'),
    weights_b64: syn.binBytes.toString('base64'),
  });

  for (const [name, m] of Object.entries(out.models)) {
    for (const c of m.cases) console.log(`${name} ${c.name}: ${c.output.map((v) => v.toFixed(6)).join(' ')}`);
  }

  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');
  console.log(`wrote ${outPath} (${fs.statSync(outPath).size} bytes)`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
