/**
 * Tests of the ONNX emitter (`src/codegen/onnx.ts`), from a user's side: a spec is compiled, exported, checked by
 * the official onnx checker (full_check) and run by ONNX Runtime, and what ORT computes is compared with
 *
 *   - an independent reference written here: plain loops over NCHW arrays in float64 that interpret the IR, one
 *     function per op (conv, transposed conv, pools, batch norm, activations, broadcasting, resize, pad, dense…);
 *   - ONNX's own conformance data (libonnx-testdata): the same op built from a spec, fed the case's inputs and
 *     weights, must give the case's expected outputs (and, for element-wise ops, what ORT gives on the case's model).
 *
 * Tolerance: |ort − reference| ≤ 1e-4 · max(1, |reference|).
 *
 * The checker needs an interpreter with the `onnx` package (Debian: python3-onnx). Without one, the checker
 * verdicts are skipped with a message saying so, except under CI (`$CI` set), where its absence fails the suite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManyOnnx, findPythonWithOnnx, type OnnxCheckResult } from '../../src/codegen/onnx-checker.js';
import { decodeModel, int64ToNumber, type DecodedModelProto } from '../../src/codegen/onnx-model.js';
import { emitOnnx, type EmitOnnxOptions } from '../../src/codegen/onnx.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { Graph, Node, NodeOf, Padding } from '../../src/ir/graph.js';
import { randomWeights, type WeightTensor, type Weights } from '../../src/ir/weights.js';
import { createMulberry32 } from '../../src/random.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { listCases, loadCase, testdataAvailable, type OnnxTestCase } from '../helpers/onnx-testdata.js';

const python = await findPythonWithOnnx();
const NO_CHECKER = 'skipped: no Python interpreter with the onnx package (install python3-onnx)';
if (python === null && process.env['CI']) throw new Error(`the official ONNX checker is required under CI: ${NO_CHECKER}`);

const workDir = mkdtempSync(join(tmpdir(), 'convspec-onnx-emit-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

// ===============================================================================================================
// Reference implementation: an interpreter over IR nodes with float64 loops (independent of the emitter)

interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

function zeros(shape: readonly number[]): Tensor {
  return { shape: [...shape], data: new Float64Array(product(shape)) };
}

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  return strides;
}

/** Calls `visit` with every multi-index of `dims` in row-major order (the array is reused). */
function forEachIndex(dims: readonly number[], visit: (index: readonly number[]) => void): void {
  const index = new Array<number>(dims.length).fill(0);
  const total = product(dims);
  for (let t = 0; t < total; t++) {
    visit(index);
    for (let axis = dims.length - 1; axis >= 0; axis--) {
      if (++index[axis]! < dims[axis]!) break;
      index[axis] = 0;
    }
  }
}

function offsetOf(strides: readonly number[], index: readonly number[]): number {
  let offset = 0;
  for (let i = 0; i < index.length; i++) offset += strides[i]! * index[i]!;
  return offset;
}

function staticShape(node: Node): number[] {
  return node.shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`reference: '${node.name}' has a symbolic size; elaborate with concrete input shapes`);
    return d;
  });
}

function explicitPadding(node: { name: string; padding: Padding | 'same-dynamic' }): Padding {
  if (node.padding === 'same-dynamic') throw new Error(`reference: '${node.name}' has run-time SAME padding`);
  return node.padding;
}

function weightOf(weights: Weights, name: string): Float32Array {
  const tensor = weights.get(name);
  if (!tensor) throw new Error(`reference: no weight '${name}'`);
  return tensor.data;
}

function referenceConv(x: Tensor, node: NodeOf<'conv'>, weights: Weights): Tensor {
  const out = zeros(staticShape(node));
  const w = weightOf(weights, `${node.name}.weight`);
  const bias = node.bias ? weightOf(weights, `${node.name}.bias`) : undefined;
  const pads = explicitPadding(node);
  const [batch, channels] = x.shape as [number, number];
  const inSpatial = x.shape.slice(2);
  const outSpatial = out.shape.slice(2);
  const inPerGroup = channels / node.groups;
  const outPerGroup = node.filters / node.groups;
  const xs = stridesOf(x.shape);
  const ws = stridesOf([node.filters, inPerGroup, ...node.kernel]);
  const os = stridesOf(out.shape);
  const rank = node.kernel.length;
  for (let n = 0; n < batch; n++) {
    for (let f = 0; f < node.filters; f++) {
      const group = Math.floor(f / outPerGroup);
      forEachIndex(outSpatial, (o) => {
        let sum = bias ? bias[f]! : 0;
        for (let c = 0; c < inPerGroup; c++) {
          forEachIndex(node.kernel, (k) => {
            let xOffset = n * xs[0]! + (group * inPerGroup + c) * xs[1]!;
            for (let a = 0; a < rank; a++) {
              const position = o[a]! * node.stride[a]! - pads.begin[a]! + k[a]! * node.dilation[a]!;
              if (position < 0 || position >= inSpatial[a]!) return;
              xOffset += position * xs[2 + a]!;
            }
            sum += x.data[xOffset]! * w[f * ws[0]! + c * ws[1]! + offsetOf(ws.slice(2), k)]!;
          });
        }
        out.data[n * os[0]! + f * os[1]! + offsetOf(os.slice(2), o)] = sum;
      });
    }
  }
  return out;
}

/** out[o] += x[i]·w[k] wherever o = i·s − b + k·d (ONNX ConvTranspose), W [in, out/groups, k…]. */
function referenceConvTranspose(x: Tensor, node: NodeOf<'conv_transpose'>, weights: Weights): Tensor {
  const out = zeros(staticShape(node));
  const w = weightOf(weights, `${node.name}.weight`);
  const bias = node.bias ? weightOf(weights, `${node.name}.bias`) : undefined;
  const [batch, channels] = x.shape as [number, number];
  const inSpatial = x.shape.slice(2);
  const outSpatial = out.shape.slice(2);
  const inPerGroup = channels / node.groups;
  const outPerGroup = node.filters / node.groups;
  const xs = stridesOf(x.shape);
  const ws = stridesOf([channels, outPerGroup, ...node.kernel]);
  const os = stridesOf(out.shape);
  const rank = node.kernel.length;
  if (bias) for (let n = 0; n < batch; n++) for (let f = 0; f < node.filters; f++) forEachIndex(outSpatial, (o) => (out.data[n * os[0]! + f * os[1]! + offsetOf(os.slice(2), o)] = bias[f]!));
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      const group = Math.floor(c / inPerGroup);
      forEachIndex(inSpatial, (i) => {
        const value = x.data[n * xs[0]! + c * xs[1]! + offsetOf(xs.slice(2), i)]!;
        forEachIndex(node.kernel, (k) => {
          let outOffset = n * os[0]!;
          for (let a = 0; a < rank; a++) {
            const position = i[a]! * node.stride[a]! - node.padding.begin[a]! + k[a]! * node.dilation[a]!;
            if (position < 0 || position >= outSpatial[a]!) return;
            outOffset += position * os[2 + a]!;
          }
          for (let m = 0; m < outPerGroup; m++) {
            out.data[outOffset + (group * outPerGroup + m) * os[1]!]! += value * w[c * ws[0]! + m * ws[1]! + offsetOf(ws.slice(2), k)]!;
          }
        });
      });
    }
  }
  return out;
}

/**
 * Windows start at o·s − b. Max and average read only real elements; with count_include_pad the divisor is the
 * window clipped to the padded extent, ∏ (min(start + k, in + e) − start), as ONNX Runtime and PyTorch divide.
 */
function referencePool(x: Tensor, node: NodeOf<'maxpool' | 'avgpool'>): Tensor {
  const out = zeros(staticShape(node));
  const pads = explicitPadding(node);
  const [batch, channels] = x.shape as [number, number];
  const inSpatial = x.shape.slice(2);
  const xs = stridesOf(x.shape);
  const os = stridesOf(out.shape);
  const rank = node.kernel.length;
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      forEachIndex(out.shape.slice(2), (o) => {
        const start = o.map((v, a) => v * node.stride[a]! - pads.begin[a]!);
        let max = -Infinity;
        let sum = 0;
        let count = 0;
        forEachIndex(node.kernel, (k) => {
          let offset = n * xs[0]! + c * xs[1]!;
          for (let a = 0; a < rank; a++) {
            const position = start[a]! + k[a]!;
            if (position < 0 || position >= inSpatial[a]!) return;
            offset += position * xs[2 + a]!;
          }
          const value = x.data[offset]!;
          max = Math.max(max, value);
          sum += value;
          count++;
        });
        let divisor = count;
        if (node.countIncludePad) divisor = product(start.map((s, a) => Math.min(s + node.kernel[a]!, inSpatial[a]! + pads.end[a]!) - s));
        out.data[n * os[0]! + c * os[1]! + offsetOf(os.slice(2), o)] = node.op === 'maxpool' ? max : sum / divisor;
      });
    }
  }
  return out;
}

function referenceGlobalPool(x: Tensor, node: NodeOf<'global_avgpool' | 'global_maxpool'>): Tensor {
  const out = zeros(staticShape(node));
  const area = product(x.shape.slice(2));
  for (let nc = 0; nc < x.shape[0]! * x.shape[1]!; nc++) {
    const values = x.data.subarray(nc * area, (nc + 1) * area);
    out.data[nc] = node.op === 'global_maxpool' ? Math.max(...values) : values.reduce((a, b) => a + b, 0) / area;
  }
  return out;
}

function referenceBatchNorm(x: Tensor, node: NodeOf<'batchnorm'>, weights: Weights): Tensor {
  const [gamma, beta, mean, variance] = (['weight', 'bias', 'running_mean', 'running_var'] as const).map((role) => weightOf(weights, `${node.name}.${role}`)) as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const area = product(x.shape.slice(2));
  const channels = x.shape[1]!;
  const out = zeros(x.shape);
  x.data.forEach((v, i) => {
    const c = Math.floor(i / area) % channels;
    out.data[i] = ((v - mean[c]!) / Math.sqrt(variance[c]! + node.epsilon)) * gamma[c]! + beta[c]!;
  });
  return out;
}

/** erf with |error| < 1.2e-7 (Numerical Recipes' erfc, Chebyshev fit). */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

function referenceActivation(x: Tensor, node: NodeOf<'activation'>): Tensor {
  const fn = node.fn;
  if (fn.kind === 'softmax') {
    const axis = fn.axis < 0 ? fn.axis + x.shape.length : fn.axis;
    const out = zeros(x.shape);
    const strides = stridesOf(x.shape);
    const length = x.shape[axis]!;
    forEachIndex(x.shape.map((d, a) => (a === axis ? 1 : d)), (index) => {
      const base = offsetOf(strides, index);
      let max = -Infinity;
      for (let i = 0; i < length; i++) max = Math.max(max, x.data[base + i * strides[axis]!]!);
      let total = 0;
      for (let i = 0; i < length; i++) total += Math.exp(x.data[base + i * strides[axis]!]! - max);
      for (let i = 0; i < length; i++) out.data[base + i * strides[axis]!] = Math.exp(x.data[base + i * strides[axis]!]! - max) / total;
    });
    return out;
  }
  const f: (v: number) => number = (() => {
    switch (fn.kind) {
      case 'relu':
        return (v: number) => Math.max(v, 0);
      case 'relu6':
        return (v: number) => Math.min(Math.max(v, 0), 6);
      case 'leaky_relu':
        return (v: number) => (v >= 0 ? v : fn.alpha * v);
      case 'elu':
        return (v: number) => (v >= 0 ? v : fn.alpha * (Math.exp(v) - 1));
      case 'sigmoid':
        return sigmoid;
      case 'hard_sigmoid':
        return (v: number) => Math.max(0, Math.min(1, fn.alpha * v + fn.beta));
      case 'tanh':
        return Math.tanh;
      case 'swish':
        return (v: number) => v * sigmoid(v);
      case 'hard_swish':
        return (v: number) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6;
      case 'gelu':
        return (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    }
  })();
  return { shape: x.shape, data: x.data.map(f) };
}

/** NumPy broadcasting of any number of inputs. */
function referenceElementwise(inputs: readonly Tensor[], node: NodeOf<'add' | 'mul'>): Tensor {
  const out = zeros(staticShape(node));
  const rank = out.shape.length;
  const aligned = inputs.map((t) => {
    const shape = [...new Array<number>(rank - t.shape.length).fill(1), ...t.shape];
    return { data: t.data, shape, strides: stridesOf(shape) };
  });
  let position = 0;
  forEachIndex(out.shape, (index) => {
    let value = node.op === 'add' ? 0 : 1;
    for (const t of aligned) {
      const v = t.data[offsetOf(t.strides, index.map((i, a) => (t.shape[a] === 1 ? 0 : i)))]!;
      value = node.op === 'add' ? value + v : value * v;
    }
    out.data[position++] = value;
  });
  return out;
}

function referenceConcat(inputs: readonly Tensor[], node: NodeOf<'concat'>): Tensor {
  const out = zeros(staticShape(node));
  const axis = node.axis < 0 ? node.axis + out.shape.length : node.axis;
  const outer = product(out.shape.slice(0, axis));
  let written = 0;
  for (let o = 0; o < outer; o++) {
    for (const t of inputs) {
      const block = product(t.shape.slice(axis));
      out.data.set(t.data.subarray(o * block, (o + 1) * block), written);
      written += block;
    }
  }
  return out;
}

/** nearest: in[⌊o/s⌋]; linear: src = (o + ½)/s − ½ clamped to [0, in − 1], interpolated on every spatial axis. */
function referenceUpsample(x: Tensor, node: NodeOf<'upsample'>): Tensor {
  const out = zeros(staticShape(node));
  const xs = stridesOf(x.shape);
  const inSpatial = x.shape.slice(2);
  const rank = node.scale.length;
  let position = 0;
  forEachIndex(out.shape, (index) => {
    const base = index[0]! * xs[0]! + index[1]! * xs[1]!;
    if (node.mode === 'nearest') {
      out.data[position++] = x.data[base + offsetOf(xs.slice(2), index.slice(2).map((o, a) => Math.floor(o / node.scale[a]!)))]!;
      return;
    }
    const taps = index.slice(2).map((o, a) => {
      const source = Math.min(Math.max((o + 0.5) / node.scale[a]! - 0.5, 0), inSpatial[a]! - 1);
      const low = Math.floor(source);
      return { low, high: Math.min(low + 1, inSpatial[a]! - 1), fraction: source - low };
    });
    let value = 0;
    for (let corner = 0; corner < 1 << rank; corner++) {
      let weight = 1;
      let offset = base;
      taps.forEach((tap, a) => {
        const high = (corner >> a) & 1;
        weight *= high ? tap.fraction : 1 - tap.fraction;
        offset += (high ? tap.high : tap.low) * xs[2 + a]!;
      });
      value += weight * x.data[offset]!;
    }
    out.data[position++] = value;
  });
  return out;
}

function referenceDense(x: Tensor, node: NodeOf<'dense'>, weights: Weights): Tensor {
  const w = weightOf(weights, `${node.name}.weight`);
  const bias = node.bias ? weightOf(weights, `${node.name}.bias`) : undefined;
  const [batch, features] = x.shape as [number, number];
  const out = zeros([batch, node.units]);
  for (let n = 0; n < batch; n++) {
    for (let u = 0; u < node.units; u++) {
      let sum = bias ? bias[u]! : 0;
      for (let i = 0; i < features; i++) sum += x.data[n * features + i]! * w[u * features + i]!;
      out.data[n * node.units + u] = sum;
    }
  }
  return out;
}

function referencePad(x: Tensor, node: NodeOf<'pad'>): Tensor {
  const out = zeros(staticShape(node));
  const xs = stridesOf(x.shape);
  let position = 0;
  forEachIndex(out.shape, (index) => {
    let offset = index[0]! * xs[0]! + index[1]! * xs[1]!;
    let outside = false;
    for (let a = 2; a < index.length; a++) {
      const size = x.shape[a]!;
      let i = index[a]! - node.padding.begin[a - 2]!;
      if (i < 0 || i >= size) {
        if (node.mode === 'constant') outside = true;
        else if (node.mode === 'edge') i = Math.min(Math.max(i, 0), size - 1);
        else i = i < 0 ? -i : 2 * (size - 1) - i;
      }
      offset += i * xs[a]!;
    }
    out.data[position++] = outside ? node.value : x.data[offset]!;
  });
  return out;
}

/** Runs the IR graph (concrete shapes) on the given inputs; returns every tensor by IR name. */
function runReference(graph: Graph, weights: Weights, feeds: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const values = new Map<string, Tensor>(feeds);
  for (const node of graph.nodes) {
    const inputs = node.inputs.map((name) => {
      const value = values.get(name);
      if (!value) throw new Error(`reference: '${name}' not computed`);
      return value;
    });
    const x = inputs[0]!;
    let result: Tensor;
    switch (node.op) {
      case 'conv':
        result = referenceConv(x, node, weights);
        break;
      case 'conv_transpose':
        result = referenceConvTranspose(x, node, weights);
        break;
      case 'maxpool':
      case 'avgpool':
        result = referencePool(x, node);
        break;
      case 'global_avgpool':
      case 'global_maxpool':
        result = referenceGlobalPool(x, node);
        break;
      case 'batchnorm':
        result = referenceBatchNorm(x, node, weights);
        break;
      case 'activation':
        result = referenceActivation(x, node);
        break;
      case 'dropout':
        result = x;
        break;
      case 'add':
      case 'mul':
        result = referenceElementwise(inputs, node);
        break;
      case 'concat':
        result = referenceConcat(inputs, node);
        break;
      case 'upsample':
        result = referenceUpsample(x, node);
        break;
      case 'flatten':
      case 'reshape':
        result = { shape: staticShape(node), data: x.data };
        break;
      case 'dense':
        result = referenceDense(x, node, weights);
        break;
      case 'pad':
        result = referencePad(x, node);
        break;
    }
    expect(result.shape, `reference shape of ${node.name}`).toEqual(staticShape(node));
    values.set(node.name, result);
  }
  return values;
}

// ===============================================================================================================
// Helpers

function compile(file: string, text: string, inputShapes?: Readonly<Record<string, ReadonlyArray<number | string>>>): Graph {
  const result = elaborate(file, inputShapes ? { text, inputShapes } : { text });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  expect(errors.map((d) => `${d.code} ${d.span?.line}:${d.span?.column} ${d.message}`), `${file} elaborates`).toEqual([]);
  return result.graph!;
}

/** Emits with value_info, so the official checker's strict shape inference confirms every inferred shape. */
function emit(graph: Graph, weights: Weights, options?: EmitOnnxOptions): Uint8Array {
  const { bytes, diagnostics } = emitOnnx(graph, weights, { valueInfo: true, ...options });
  expect(diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
  expect(bytes.length).toBeGreaterThan(0);
  return bytes;
}

function writeModel(file: string, bytes: Uint8Array): string {
  const path = join(workDir, file);
  writeFileSync(path, bytes);
  return path;
}

function randomTensor(shape: readonly number[], seed: number): Tensor {
  const random = createMulberry32(seed);
  return { shape: [...shape], data: Float64Array.from({ length: product(shape) }, () => random() * 2 - 1) };
}

async function runOrt(bytes: Uint8Array, feeds: ReadonlyMap<string, Tensor>, label: string): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const engine = await OrtEngine.create(bytes, { intraOpThreads: 1, label });
  try {
    const ortFeeds: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
    for (const [name, t] of feeds) ortFeeds[name] = { data: Float32Array.from(t.data), dims: t.shape };
    return await engine.run(ortFeeds);
  } finally {
    await engine.dispose();
  }
}

/** Largest violation of |actual − expected| ≤ 1e-4 · max(1, |expected|), as a ratio (≤ 1 passes). */
function worstError(actual: ArrayLike<number>, expected: ArrayLike<number>): { ratio: number; index: number } {
  let worst = { ratio: 0, index: -1 };
  for (let i = 0; i < expected.length; i++) {
    const ratio = Math.abs(actual[i]! - expected[i]!) / (1e-4 * Math.max(1, Math.abs(expected[i]!)));
    if (!(ratio <= worst.ratio)) worst = { ratio: Number.isNaN(ratio) ? Infinity : ratio, index: i };
  }
  return worst;
}

function expectClose(actual: { data: ArrayLike<number>; dims: readonly number[] }, expected: { data: ArrayLike<number>; shape: readonly number[] }, what: string): void {
  expect(actual.dims, `${what}: dims`).toEqual([...expected.shape]);
  const worst = worstError(actual.data, expected.data);
  expect(worst.ratio, `${what}: element ${worst.index} is ${actual.data[worst.index]} but the reference says ${expected.data[worst.index]}`).toBeLessThanOrEqual(1);
}

function verdictMessage(verdict: OnnxCheckResult | undefined): string {
  if (verdict === undefined) return 'no verdict';
  return verdict.ok === null ? verdict.reason : verdict.message;
}

/**
 * Compiles a spec, emits it, and returns what ORT and the reference need. For symbolic specs, `concrete` binds
 * the input shapes used to run them (the reference interprets a graph elaborated with those shapes).
 */
interface Compiled {
  readonly name: string;
  readonly graph: Graph;
  readonly referenceGraph: Graph;
  readonly weights: Weights;
  readonly bytes: Uint8Array;
  readonly feeds: Map<string, Tensor>;
}

function compileSpec(name: string, text: string, options: { concrete?: Record<string, number[]>; opset?: number; seed?: number } = {}): Compiled {
  const graph = compile(`${name}.cnn`, text);
  const referenceGraph = options.concrete ? compile(`${name}.cnn`, text, options.concrete) : graph;
  const weights = randomWeights(graph, options.seed ?? 7);
  const bytes = emit(graph, weights, options.opset === undefined ? {} : { opset: options.opset });
  const feeds = new Map<string, Tensor>();
  referenceGraph.inputs.forEach((input, i) => feeds.set(input.name, randomTensor(input.shape as number[], (options.seed ?? 7) * 101 + i)));
  return { name, graph, referenceGraph, weights, bytes, feeds };
}

async function expectOrtMatchesReference(compiled: Compiled): Promise<void> {
  const ort = await runOrt(compiled.bytes, compiled.feeds, compiled.name);
  const reference = runReference(compiled.referenceGraph, compiled.weights, compiled.feeds);
  expect(Object.keys(ort).sort()).toEqual(compiled.graph.outputs.map((o) => o.name).sort());
  for (const output of compiled.referenceGraph.outputs) {
    expectClose(ort[output.name]!, reference.get(output.value)!, `${compiled.name}: output '${output.name}'`);
  }
}

function decoded(bytes: Uint8Array): DecodedModelProto {
  return decodeModel(bytes);
}

const utf8 = new TextDecoder();

type NodeLike = DecodedModelProto['graph']['node'][number];
type AttributeLike = NonNullable<NodeLike['attribute']>[number];

function attributeValue(a: AttributeLike): number | number[] | string {
  switch (a.type) {
    case 1:
      return a.f ?? 0;
    case 2:
      return int64ToNumber(a.i);
    case 3:
      return utf8.decode(a.s ?? new Uint8Array(0));
    case 7:
      return (a.ints ?? []).map((v) => int64ToNumber(v));
    default:
      throw new Error(`attribute ${a.name} of type ${a.type}`);
  }
}

function attributesOf(node: NodeLike): Map<string, number | number[] | string> {
  return new Map((node.attribute ?? []).map((a) => [a.name ?? '', attributeValue(a)]));
}

// ===============================================================================================================
// (1) Specs covering every op and padding mode in 1D, 2D and 3D

const SPECS: Record<string, { text: string; concrete?: Record<string, number[]> }> = {
  vision2d: {
    text: `
model Vision2d {
  input image: f32[2, 3, 11, 12]
  a = image -> conv(8, 3, stride: 2, pad: [[0, 1], [1, 2]]) -> bn(momentum: 0.8, eps: 0.001) -> relu
  b = a -> conv(8, [3, 2], stride: [2, 1], pad: same, bias: false) -> leaky_relu(0.2)
  c = a -> dwconv(3, pad: same, multiplier: 2) -> elu(0.5)
  d = a -> sepconv(8, 3, dilation: 2, pad: same) -> sigmoid
  e = a -> conv(8, 3, groups: 4, pad: [1, 2], dilation: [1, 2], stride: [1, 2]) -> hard_sigmoid(alpha: 0.25, beta: 0.4) -> tanh
  f = a -> conv(8, 1) -> swish -> hard_swish -> gelu -> relu6
  se = f -> globalavgpool -> conv(2, 1) -> relu -> conv(8, 1) -> sigmoid
  g = add(mul(f, se), a, d) -> spatial_dropout(0.2)
  h = concat(c, mul(a, d, f)) -> maxpool(3, stride: 2, pad: 1, ceil: true)
  i = g -> avgpool(2, stride: 2, pad: 1, ceil: true, count_include_pad: true)
  j = g -> avgpool(3, stride: 2, pad: [[1, 0], [0, 1]], count_include_pad: false) -> upsample(2) -> upsample([1, 2], mode: linear)
  k = g -> maxpool(3, stride: 1, pad: same) -> pad([[1, 2], [0, 1]], mode: constant, value: 0.5) -> pad(2, mode: reflect) -> pad([1, [2, 0]], mode: edge)
  l = g -> deconv(4, 3, stride: 2, pad: 1, output_padding: 1) -> deconv(4, 4, stride: 2, pad: same, groups: 2, bias: false) -> deconv(3, 3, dilation: 2, pad: [[0, 1], [2, 0]])
  m = h -> reshape([4, -1]) -> softmax(axis: 1)
  n = h -> globalmaxpool -> flatten -> dropout(0.3) -> dense(5) -> dense(4, bias: false) -> softmax
  output b, e, i, j, k, l, m, n
  freeze a, b
  regularize l2(1e-4) on conv, dense
  regularize l1(1e-5) on e
  train {
    epochs: 3
    optimizer: adam(lr: 0.001)
  }
}`,
  },
  signal1d: {
    text: `
model Signal1d {
  input wave: f32[2, 4, 17]
  a = wave -> conv1d(6, 5, pad: causal, dilation: 2) -> bn -> relu
  b = a -> conv(6, 4, stride: 3, pad: same, groups: 2) -> avgpool(3, stride: 2, ceil: true) -> upsample(2, mode: linear)
  c = a -> sepconv(8, 3, stride: 2, pad: valid, multiplier: 2) -> maxpool(2, ceil: true) -> upsample(3)
  d = a -> deconv(3, 3, stride: 2, pad: [[1, 0]], output_padding: 1) -> pad([[2, 3]], mode: reflect) -> pad(1, mode: edge) -> pad([[0, 2]])
  e = a -> avgpool(4, stride: 2, pad: 1, count_include_pad: true) -> globalavgpool -> flatten -> dense(3) -> bn -> gelu
  output b, c, d, e
}`,
  },
  volume3d: {
    text: `
model Volume3d {
  input clip: f32[1, 2, 5, 6, 7]
  a = clip -> conv3d(4, 3, stride: [1, 2, 2], pad: same) -> bn -> relu6
  b = a -> conv(4, [1, 3, 3], pad: [0, [1, 3], [2, 0]], dilation: [1, 2, 1], groups: 2) -> swish
  c = a -> dwconv(2, pad: same, stride: 2) -> maxpool(2, stride: 2, ceil: true, pad: [0, 1, 1])
  d = b -> avgpool([2, 3, 3], stride: [1, 2, 2], pad: [1, 1, 1], count_include_pad: false, ceil: true) -> upsample([1, 2, 2], mode: linear) -> upsample(2)
  e = b -> deconv(3, [2, 3, 3], stride: [1, 2, 2], pad: [0, 1, [0, 1]], output_padding: [0, 1, 0]) -> pad([[1, 0], 1, [0, 2]], mode: edge) -> pad(1, mode: reflect)
  f = concat(b, a, axis: 1) -> globalmaxpool -> reshape([-1]) -> dense(2)
  output c, d, e, f
}`,
  },
  // SAME on symbolic sizes at stride > 1 stays SAME_UPPER; the batch and sizes are dim_params.
  symbolic: {
    text: `
model Symbolic {
  input image: f32[N, 3, H, W]
  a = image -> conv(6, 3, stride: 2, pad: same) -> relu
  b = a -> conv(6, 1, stride: 3, pad: same) -> maxpool(3, stride: 2, pad: same, ceil: true)
  c = a -> conv(6, 3, stride: 2, pad: same) -> avgpool(2, stride: 3, pad: same)
  d = a -> conv(4, 3, pad: same, dilation: 2) -> reshape([4, dim(a, 2) * dim(a, 3)])
  e = image -> maxpool(2, ceil: true) -> conv(4, 3, pad: 1)
  f = image -> conv(2, 3, stride: 5, pad: same) -> maxpool(1, stride: 2, pad: same)
  g = a -> conv(2, [1, 3], stride: [2, 1], dilation: 2, pad: same)
  output b, c, d, e, f, g
}`,
    concrete: { image: [2, 3, 10, 9] },
  },
  // Outputs through dropout, an output read by another layer, an output that is a graph input's dropout, a graph
  // input as an output, and an output named like a layer that another output renames.
  naming: {
    text: `
model Naming {
  input x: f32[N, 2, 4, 4]
  a = x -> conv(2, 1) -> dropout(0.1)
  b = a -> relu
  c = x -> dropout(0.5)
  d = x -> sigmoid as "e"
  e = x -> tanh
  output a, b, c, x, d, e
}`,
    concrete: { x: [3, 2, 4, 4] },
  },
  // Ceil-mode pools whose last window would start in the end padding, followed by layers whose load-time shape
  // inference depends on the size (flatten + dense, add with a floor-mode branch).
  ceilWindows: {
    text: `
model CeilWindows {
  input x: f32[N, 2, 5, 8]
  p = x -> maxpool(2, stride: 2, pad: 1, ceil: true)
  q = p -> conv(3, 1) -> avgpool(2, stride: 2, pad: 1, ceil: true, count_include_pad: true) -> flatten -> dense(4)
  r = x -> avgpool([1, 2], stride: 3, ceil: true, count_include_pad: true)
  s = add(r, x -> avgpool([1, 2], stride: 3, pad: [0, [0, 1]])) -> flatten -> dense(2)
  output p, q, s
}`,
    concrete: { x: [2, 2, 5, 8] },
  },
};

describe('emitOnnx: specs covering every op and padding mode (1D, 2D, 3D)', () => {
  const compiled = new Map<string, Compiled>();
  let verdicts = new Map<string, OnnxCheckResult>();

  beforeAll(async () => {
    for (const [name, spec] of Object.entries(SPECS)) {
      compiled.set(name, compileSpec(name, spec.text, spec.concrete ? { concrete: spec.concrete } : {}));
    }
    const paths = [...compiled.values()].map((c) => writeModel(`${c.name}.onnx`, c.bytes));
    const results = await checkManyOnnx(paths);
    verdicts = new Map([...compiled.keys()].map((name, i) => [name, results[i]!]));
  });

  for (const name of Object.keys(SPECS)) {
    it(`${name}: the official checker accepts it${python === null ? ` (${NO_CHECKER})` : ''}`, () => {
      const verdict = verdicts.get(name);
      if (verdict?.ok === null) return;
      expect(verdict?.ok, verdictMessage(verdict)).toBe(true);
    });
    it(`${name}: ONNX Runtime's outputs equal the reference implementation's`, async () => {
      await expectOrtMatchesReference(compiled.get(name)!);
    });
  }

  it('covers every IR op, every activation and every padding mode', () => {
    const graphs = [...compiled.values()].map((c) => c.graph);
    const nodes = graphs.flatMap((g) => g.nodes);
    const ops = new Set(nodes.map((n) => n.op));
    expect([...ops].sort()).toEqual(
      ['activation', 'add', 'avgpool', 'batchnorm', 'concat', 'conv', 'conv_transpose', 'dense', 'dropout', 'flatten', 'global_avgpool', 'global_maxpool', 'maxpool', 'mul', 'pad', 'reshape', 'upsample'].sort(),
    );
    const activations = new Set(nodes.flatMap((n) => (n.op === 'activation' ? [n.fn.kind] : [])));
    expect(activations.size).toBe(11);
    const padModes = new Set(nodes.flatMap((n) => ('padMode' in n ? [n.padMode] : [])));
    expect([...padModes].sort()).toEqual(['causal', 'explicit', 'same', 'valid']);
    expect(nodes.some((n) => (n.op === 'conv' || n.op === 'maxpool' || n.op === 'avgpool') && n.padding === 'same-dynamic')).toBe(true);
    expect(new Set(nodes.flatMap((n) => (n.op === 'pad' ? [n.mode] : []))).size).toBe(3);
    expect(new Set(nodes.flatMap((n) => (n.op === 'upsample' ? [n.mode] : []))).size).toBe(2);
    expect(new Set(nodes.flatMap((n) => ('kernel' in n ? [n.kernel.length] : []))).size).toBe(3);
  });

  it('maps ops without graph noise: no Transpose, Identity or stray Reshape; dropout leaves nothing behind', () => {
    const model = decoded(compiled.get('vision2d')!.bytes);
    const types = model.graph.node.map((n) => n.opType);
    expect(types).not.toContain('Transpose');
    expect(types).not.toContain('Identity');
    expect(types).not.toContain('Dropout');
    expect(types.filter((t) => t === 'Reshape')).toHaveLength(1); // the spec's reshape
    const conv = model.graph.node.find((n) => n.name === 'a.conv1')!;
    expect(attributesOf(conv).get('pads')).toEqual([0, 1, 1, 2]);
    expect(attributesOf(conv).has('auto_pad')).toBe(false);
    const gemm = model.graph.node.find((n) => n.name === 'n.dense1')!;
    expect(gemm.opType).toBe('Gemm');
    expect(attributesOf(gemm).get('transB')).toBe(1);
    expect(gemm.input?.[0]).toBe('n.flatten1'); // the dropout between them is gone
    const clip = model.graph.node.find((n) => n.name === 'f.relu61')!;
    expect(clip.opType).toBe('Clip');
    expect(clip.input).toHaveLength(3);
    const resize = model.graph.node.filter((n) => n.opType === 'Resize').map((n) => Object.fromEntries(attributesOf(n)));
    expect(resize).toEqual([
      { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
      { mode: 'linear', coordinate_transformation_mode: 'half_pixel' },
    ]);
    const symbolic = decoded(compiled.get('symbolic')!.bytes);
    const sameConv = symbolic.graph.node.find((n) => n.name === 'a.conv1')!;
    expect(attributesOf(sameConv).get('auto_pad')).toBe('SAME_UPPER');
    expect(attributesOf(sameConv).has('pads')).toBe(false);
  });

  it('names nodes, tensors and initializers after the IR and the outputs after the user', () => {
    const { graph, bytes } = compiled.get('vision2d')!;
    const model = decoded(bytes);
    const irNames = new Set(graph.nodes.filter((n) => n.op !== 'dropout').map((n) => n.name));
    for (const node of model.graph.node) {
      const owner = node.name!.split('/')[0]!;
      expect(irNames.has(owner), `node ${node.name}`).toBe(true);
      expect(node.docString, `doc string of ${node.name}`).toMatch(/^vision2d\.cnn:\d+:\d+$/);
    }
    const userOutputs = graph.outputs.map((o) => o.name);
    expect(model.graph.output.map((o) => o.name)).toEqual(userOutputs);
    const outputSources = new Set(graph.outputs.map((o) => o.value));
    for (const node of graph.nodes) {
      if (node.op === 'dropout' || outputSources.has(node.name)) continue;
      expect(model.graph.node.some((n) => n.output?.[0] === node.name), `tensor ${node.name}`).toBe(true);
    }
    const b = graph.outputs.find((o) => o.name === 'b')!;
    expect(model.graph.node.find((n) => n.name === b.value)!.output).toEqual(['b']);
    const params = [...compiled.get('vision2d')!.weights.keys()].sort();
    const initializers = model.graph.initializer.map((t) => t.name!);
    expect(initializers.filter((n) => !n.includes('/')).sort()).toEqual(params);
    expect(model.graph.input.map((i) => i.name)).toEqual(['image']);
  });

  it('writes symbolic dimensions as dim_params with their text', () => {
    const model = decoded(compiled.get('symbolic')!.bytes);
    const dims = (name: string, list: typeof model.graph.input) =>
      list.find((v) => v.name === name)!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || int64ToNumber(d.dimValue));
    expect(dims('image', model.graph.input)).toEqual(['N', 3, 'H', 'W']);
    const graph = compiled.get('symbolic')!.graph;
    const e = graph.nodes.find((n) => n.name === graph.outputs.find((o) => o.name === 'e')!.value)!;
    expect(dims('e', model.graph.output)).toEqual(e.shape.map((d) => (typeof d === 'number' ? d : d.key)));
    expect(dims('e', model.graph.output)[0]).toBe('N');
    expect(String(dims('e', model.graph.output)[2])).toMatch(/H/);
  });

  it('rewires around dropout and adds an Identity only where no renaming can work', () => {
    const model = decoded(compiled.get('naming')!.bytes);
    const nodes = model.graph.node.map((n) => `${n.opType} ${n.name}: ${(n.input ?? []).join(',')} -> ${(n.output ?? []).join(',')}`);
    expect(nodes).toEqual([
      'Conv a.conv1: x,a.conv1.weight,a.conv1.bias -> a',
      'Relu b.relu1: a -> b',
      'Sigmoid e: x -> d',
      'Tanh e.tanh1: x -> e',
      'Identity c/identity: x -> c',
    ]);
    expect(model.graph.output.map((o) => o.name)).toEqual(['a', 'b', 'c', 'x', 'd', 'e']);
  });

  it('trims the end pad of a ceil-mode pool whose last window would start in the padding', () => {
    const model = decoded(compiled.get('ceilWindows')!.bytes);
    const pool = (name: string) => Object.fromEntries(attributesOf(model.graph.node.find((n) => n.name === name)!));
    // in 5 (+1 +1), k 2, s 2: ONNX counts 4 windows, ORT keeps 3 (the 4th starts at 6 ≥ 5 + 1) → end pad 0
    expect(pool('p.maxpool1')).toMatchObject({ pads: [1, 1, 0, 1], ceil_mode: 1 });
    // stride 3 > kernel 2 on 8: floor mode with no end pad gives the same 3 windows (zero pads and floor mode are
    // the defaults, so neither attribute is written)
    expect(pool('r.avgpool1')).not.toHaveProperty('pads');
    expect(pool('r.avgpool1')).not.toHaveProperty('ceil_mode');
    expect(pool('r.avgpool1')).toMatchObject({ strides: [3, 3], count_include_pad: 1 });
  });
});

// ===============================================================================================================
// (2) Conformance with ONNX's test data: the same op written as a spec gives the case's expected outputs

/** Cases the language cannot state, with the reason. */
const UNSUPPORTED_CASES: Readonly<Record<string, string>> = {
  test_maxpool_2d_uint8: 'uint8 input: convspec models take f32 inputs',
  test_maxpool_2d_dilations: 'dilated pooling: the language has no pooling dilation',
  test_maxpool_with_argmax_2d_precomputed_pads: 'second output (argmax indices): the language has no indices output',
  test_maxpool_with_argmax_2d_precomputed_strides: 'indices output with storage_order=1: the language has neither',
  test_batchnorm_epsilon_training_mode: 'training-mode BatchNormalization (batch statistics, running-stat outputs): the export is the inference form',
  test_batchnorm_example_training_mode: 'training-mode BatchNormalization (batch statistics, running-stat outputs): the export is the inference form',
  test_convtranspose_kernel_shape: 'output_shape attribute: the language states pads and output_padding instead',
  test_convtranspose_output_shape: 'output_shape attribute: the language states pads and output_padding instead',
  test_convtranspose_with_kernel: 'output_shape attribute: the language states pads and output_padding instead',
};

const list = (values: readonly number[]) => `[${values.join(', ')}]`;

/** Explicit begin/end pads for an ONNX pads/auto_pad pair (SAME_LOWER puts the odd pixel first). */
function paddingArgument(attributes: Map<string, unknown>, spatial: readonly number[], kernel: readonly number[], stride: readonly number[], dilation: readonly number[]): string {
  const autoPad = (attributes.get('auto_pad') as string | undefined) ?? 'NOTSET';
  if (autoPad === 'SAME_UPPER') return 'same';
  if (autoPad === 'VALID') return 'valid';
  const rank = kernel.length;
  let pads = (attributes.get('pads') as number[] | undefined) ?? new Array<number>(2 * rank).fill(0);
  if (autoPad === 'SAME_LOWER') {
    pads = new Array<number>(2 * rank);
    spatial.forEach((size, i) => {
      const out = Math.ceil(size / stride[i]!);
      const total = Math.max((out - 1) * stride[i]! + dilation[i]! * (kernel[i]! - 1) + 1 - size, 0);
      pads[i] = total - Math.floor(total / 2);
      pads[i + rank] = Math.floor(total / 2);
    });
  }
  return `[${kernel.map((_, i) => `[${pads[i]}, ${pads[i + rank]}]`).join(', ')}]`;
}

interface CaseSpec {
  readonly text: string;
  readonly weights: Map<string, WeightTensor>;
}

/** Float elements, or integer elements as numbers (the pad cases use int32 data: padding copies values exactly). */
function numbers(data: unknown): Float64Array {
  if (data instanceof Float32Array || data instanceof Int32Array) return Float64Array.from(data);
  throw new Error('expected float32 or int32 data');
}

function float32(data: unknown): Float32Array {
  if (!(data instanceof Float32Array)) throw new Error('expected float32 data');
  return data;
}

/** Builds a spec (and weights) doing what the case's single node does. */
function specForWindowCase(testCase: OnnxTestCase): CaseSpec {
  const node = testCase.model.graph.node[0]!;
  const attributes = attributesOf(node);
  const x = testCase.inputs[0]!;
  const spatial = x.dims.slice(2);
  const rank = spatial.length;
  const ones = new Array<number>(rank).fill(1);
  const weights = new Map<string, WeightTensor>();
  const input = `input x: f32${list(x.dims)}`;
  const model = (body: string) => `model Case {\n  ${input}\n  y = x -> ${body}\n  output y\n}\n`;
  switch (node.opType) {
    case 'Conv':
    case 'ConvTranspose': {
      const w = testCase.inputs[1]!;
      const kernel = (attributes.get('kernel_shape') as number[] | undefined) ?? w.dims.slice(2);
      const stride = (attributes.get('strides') as number[] | undefined) ?? ones;
      const dilation = (attributes.get('dilations') as number[] | undefined) ?? ones;
      const groups = (attributes.get('group') as number | undefined) ?? 1;
      const bias = testCase.inputs[2];
      const transpose = node.opType === 'ConvTranspose';
      const filters = transpose ? w.dims[1]! * groups : w.dims[0]!;
      const op = transpose ? 'deconv' : 'conv';
      weights.set(`y.${op}1.weight`, { shape: w.dims, data: float32(w.data) });
      if (bias) weights.set(`y.${op}1.bias`, { shape: bias.dims, data: float32(bias.data) });
      const pad = paddingArgument(attributes, spatial, kernel, stride, dilation);
      const outputPadding = transpose ? `, output_padding: ${list((attributes.get('output_padding') as number[] | undefined) ?? new Array<number>(rank).fill(0))}` : '';
      return {
        text: model(`${op}(${filters}, ${list(kernel)}, stride: ${list(stride)}, pad: ${pad}, dilation: ${list(dilation)}, groups: ${groups}, bias: ${bias ? 'true' : 'false'}${outputPadding})`),
        weights,
      };
    }
    case 'MaxPool':
    case 'AveragePool': {
      const kernel = attributes.get('kernel_shape') as number[];
      const stride = (attributes.get('strides') as number[] | undefined) ?? ones;
      const pad = paddingArgument(attributes, spatial, kernel, stride, ones);
      const ceil = attributes.get('ceil_mode') === 1;
      const countIncludePad = node.opType === 'AveragePool' ? `, count_include_pad: ${attributes.get('count_include_pad') === 1}` : '';
      return { text: model(`${node.opType === 'MaxPool' ? 'maxpool' : 'avgpool'}(${list(kernel)}, stride: ${list(stride)}, pad: ${pad}, ceil: ${ceil}${countIncludePad})`), weights };
    }
    case 'BatchNormalization': {
      const epsilon = (attributes.get('epsilon') as number | undefined) ?? 1e-5;
      (['weight', 'bias', 'running_mean', 'running_var'] as const).forEach((role, i) => {
        const t = testCase.inputs[i + 1]!;
        weights.set(`y.bn1.${role}`, { shape: t.dims, data: float32(t.data) });
      });
      return { text: model(`bn(eps: ${epsilon})`), weights };
    }
    case 'GlobalAveragePool':
      return { text: model('globalavgpool'), weights };
    case 'GlobalMaxPool':
      return { text: model('globalmaxpool'), weights };
    default:
      throw new Error(`no spec for ${node.opType}`);
  }
}

/** Element-wise and layout ops of the language, each against the ONNX case that tests the same op. */
const OP_CASES: ReadonlyArray<{ readonly name: string; readonly spec: (testCase: OnnxTestCase) => CaseSpec }> = [
  ...(
    [
      ['test_relu', 'relu'],
      ['test_leakyrelu', 'leaky_relu(0.1)'],
      ['test_leakyrelu_default', 'leaky_relu'],
      ['test_elu', 'elu(2)'],
      ['test_elu_default', 'elu'],
      ['test_sigmoid', 'sigmoid'],
      ['test_hardsigmoid', 'hard_sigmoid(alpha: 0.5, beta: 0.6)'],
      ['test_hardsigmoid_default', 'hard_sigmoid'],
      ['test_hardswish', 'hard_swish'],
      ['test_tanh', 'tanh'],
      ['test_softmax_axis_0', 'softmax(axis: 0)'],
      ['test_softmax_axis_1', 'softmax(axis: 1)'],
      ['test_softmax_axis_2', 'softmax(axis: 2)'],
      ['test_flatten_axis1', 'flatten'],
      ['test_resize_upsample_scales_nearest', 'upsample([2, 3])'],
      ['test_resize_upsample_scales_linear', 'upsample(2, mode: linear)'],
      ['test_edge_pad', 'pad([[1, 1], [1, 1]], mode: edge)'],
      ['test_reflect_pad', 'pad([[1, 1], [1, 1]], mode: reflect)'],
      ['test_constant_pad', 'pad([[1, 2], [3, 4]], value: 1.2)'],
    ] as const
  ).map(([name, body]) => ({
    name,
    spec: (testCase: OnnxTestCase): CaseSpec => ({
      text: `model Case {\n  input x: f32${list(testCase.inputs[0]!.dims)}\n  y = x -> ${body}\n  output y\n}\n`,
      weights: new Map(),
    }),
  })),
  ...(['test_add', 'test_mul', 'test_concat_2d_axis_1', 'test_concat_3d_axis_0', 'test_concat_3d_axis_negative_1'] as const).map((name) => ({
    name,
    spec: (testCase: OnnxTestCase): CaseSpec => {
      const call = name === 'test_add' ? 'add(x, x2)' : name === 'test_mul' ? 'mul(x, x2)' : `concat(x, x2, axis: ${attributesOf(testCase.model.graph.node[0]!).get('axis')})`;
      return {
        text: `model Case {\n  input x: f32${list(testCase.inputs[0]!.dims)}\n  input x2: f32${list(testCase.inputs[1]!.dims)}\n  y = ${call}\n  output y\n}\n`,
        weights: new Map(),
      };
    },
  })),
  // Gemm with B as [in, out] (transposed into the IR's [out, in]) or [out, in] (transB = 1), bias [1, out] or none.
  ...(['test_gemm_default_vector_bias', 'test_gemm_transposeB', 'test_gemm_default_no_bias'] as const).map((name) => ({
    name,
    spec: (testCase: OnnxTestCase): CaseSpec => {
      const [a, b, c] = testCase.inputs as [OnnxTestCase['inputs'][0], OnnxTestCase['inputs'][0], OnnxTestCase['inputs'][0] | undefined];
      const transB = attributesOf(testCase.model.graph.node[0]!).get('transB') === 1;
      const [inFeatures, units] = transB ? [b.dims[1]!, b.dims[0]!] : [b.dims[0]!, b.dims[1]!];
      const source = float32(b.data);
      const weight = transB ? source : Float32Array.from({ length: source.length }, (_, i) => source[(i % inFeatures) * units + Math.floor(i / inFeatures)]!);
      const weights = new Map<string, WeightTensor>([['y.dense1.weight', { shape: [units, inFeatures], data: weight }]]);
      if (c) weights.set('y.dense1.bias', { shape: [units], data: float32(c.data) });
      return { text: `model Case {\n  input x: f32${list(a.dims)}\n  y = x -> dense(${units}, bias: ${c !== undefined})\n  output y\n}\n`, weights };
    },
  })),
];

describe.skipIf(!testdataAvailable())('emitOnnx: conformance with ONNX test data (libonnx-testdata)', () => {
  const windowCases = listCases(['test_conv_', 'test_basic_conv_', 'test_convtranspose', 'test_maxpool_', 'test_averagepool_', 'test_batchnorm_', 'test_globalaveragepool', 'test_globalmaxpool']);

  it('finds the cases and lists every skipped one with a reason', () => {
    expect(windowCases.length).toBeGreaterThanOrEqual(50);
    for (const name of Object.keys(UNSUPPORTED_CASES)) expect(windowCases, name).toContain(name);
  });

  /**
   * Emits the spec, runs it on the case's input(s), and compares with the case's expected output and with what ONNX
   * Runtime computes on the case's own model.
   */
  async function runCase(name: string, build: (testCase: OnnxTestCase) => CaseSpec): Promise<void> {
    const testCase = loadCase(name);
    const { text, weights } = build(testCase);
    const graph = compile(`${name}.cnn`, text);
    const bytes = emit(graph, weights);
    const feeds = new Map<string, Tensor>();
    graph.inputs.forEach((input, i) => {
      const data = testCase.inputs[i]!;
      feeds.set(input.name, { shape: data.dims, data: numbers(data.data) });
    });
    const ours = await runOrt(bytes, feeds, name);
    const expected = testCase.outputs[0]!;
    expectClose(ours['y']!, { shape: expected.dims, data: numbers(expected.data) }, `${name} vs its expected output`);
    const engine = await OrtEngine.create(testCase.modelBytes, { intraOpThreads: 1, label: name, logSeverity: 'error' });
    try {
      const caseFeeds = Object.fromEntries(
        testCase.inputs.map((t, i) => [
          testCase.model.graph.input[i]!.name!,
          { type: t.dataType as 'float32' | 'int32' | 'int64', data: t.data as Float32Array | Int32Array | BigInt64Array, dims: t.dims },
        ]),
      );
      const theirs = Object.values(await engine.runTensors(caseFeeds))[0]!;
      expectClose(ours['y']!, { shape: theirs.dims, data: numbers(theirs.data) }, `${name} vs ONNX Runtime on the case's model`);
    } finally {
      await engine.dispose();
    }
  }

  for (const name of windowCases) {
    const reason = UNSUPPORTED_CASES[name];
    if (reason !== undefined) {
      it.skip(`${name} (not in the language: ${reason})`, () => undefined);
      continue;
    }
    it(`${name}: the same op written as a spec gives the expected output and ONNX Runtime's on the case's model`, async () => {
      await runCase(name, specForWindowCase);
    });
  }

  for (const { name, spec } of OP_CASES) {
    it(`${name}: equals the expected output and ONNX Runtime on the case's own model`, async () => {
      await runCase(name, spec);
    });
  }
});

// ===============================================================================================================
// (3) Property: random conv stacks, emitted, checked and run, equal the reference

type PadChoice = { readonly kind: 'same' } | { readonly kind: 'valid' } | { readonly kind: 'pairs'; readonly pairs: ReadonlyArray<readonly [number, number]> };

type LayerChoice =
  | { readonly kind: 'conv'; readonly filters: number; readonly groups: number; readonly kernel: number[]; readonly stride: number[]; readonly dilation: number[]; readonly pad: PadChoice; readonly bias: boolean }
  | { readonly kind: 'dwconv'; readonly multiplier: number; readonly kernel: number[]; readonly stride: number[]; readonly dilation: number[]; readonly pad: PadChoice }
  | { readonly kind: 'deconv'; readonly filters: number; readonly groups: number; readonly kernel: number[]; readonly stride: number[]; readonly dilation: number[]; readonly pairs: ReadonlyArray<readonly [number, number]>; readonly outputPadding: number[] }
  | { readonly kind: 'pool'; readonly op: 'maxpool' | 'avgpool'; readonly kernel: number[]; readonly stride: number[]; readonly pad: PadChoice; readonly ceil: boolean; readonly countIncludePad: boolean };

interface StackChoice {
  readonly rank: number;
  readonly channels: number;
  readonly sizes: number[];
  readonly symbolic: boolean;
  readonly layers: LayerChoice[];
}

function stackArbitrary(): fc.Arbitrary<StackChoice> {
  return fc.integer({ min: 1, max: 3 }).chain((rank) => {
    const perAxis = (min: number, max: number) => fc.array(fc.integer({ min, max }), { minLength: rank, maxLength: rank });
    const pairs = (max: number) => fc.array(fc.tuple(fc.integer({ min: 0, max }), fc.integer({ min: 0, max })), { minLength: rank, maxLength: rank });
    const pad: fc.Arbitrary<PadChoice> = fc.oneof(
      fc.constant<PadChoice>({ kind: 'same' }),
      fc.constant<PadChoice>({ kind: 'valid' }),
      pairs(2).map((p): PadChoice => ({ kind: 'pairs', pairs: p })),
    );
    const conv = fc.record({
      kind: fc.constant('conv' as const),
      filters: fc.constantFrom(2, 4, 6),
      groups: fc.constantFrom(1, 2),
      kernel: perAxis(1, 3),
      stride: perAxis(1, 3),
      dilation: perAxis(1, 2),
      pad,
      bias: fc.boolean(),
    });
    const dwconv = fc.record({ kind: fc.constant('dwconv' as const), multiplier: fc.constantFrom(1, 2), kernel: perAxis(1, 3), stride: perAxis(1, 2), dilation: perAxis(1, 2), pad });
    const deconv = fc.record({
      kind: fc.constant('deconv' as const),
      filters: fc.constantFrom(2, 4),
      groups: fc.constantFrom(1, 2),
      kernel: perAxis(1, 3),
      stride: perAxis(1, 2),
      dilation: perAxis(1, 2),
      pairs: pairs(1),
      outputPadding: perAxis(0, 1),
    });
    const pool = fc.record({ kind: fc.constant('pool' as const), op: fc.constantFrom('maxpool' as const, 'avgpool' as const), kernel: perAxis(1, 3), stride: perAxis(1, 3), pad, ceil: fc.boolean(), countIncludePad: fc.boolean() });
    const [minSize, maxSize] = rank === 1 ? [5, 12] : rank === 2 ? [4, 9] : [3, 6];
    return fc.record({
      rank: fc.constant(rank),
      channels: fc.constantFrom(2, 4),
      sizes: perAxis(minSize, maxSize),
      symbolic: fc.boolean(),
      layers: fc.array(fc.oneof({ weight: 3, arbitrary: conv }, { weight: 1, arbitrary: dwconv }, { weight: 1, arbitrary: deconv }, { weight: 2, arbitrary: pool }), { minLength: 1, maxLength: 3 }),
    });
  });
}

function padText(pad: PadChoice, kernel: readonly number[]): string {
  if (pad.kind !== 'pairs') return pad.kind;
  // pools refuse pads ≥ kernel; convs take any pad, so the same clamp keeps both valid
  return `[${pad.pairs.map(([b, e], i) => `[${Math.min(b, kernel[i]! - 1)}, ${Math.min(e, kernel[i]! - 1)}]`).join(', ')}]`;
}

/** On symbolic sizes ceil mode is refused where it is ambiguous (src/elaborate/ops.ts), so stacks use floor mode there. */
function layerText(layer: LayerChoice, symbolic = false): string {
  switch (layer.kind) {
    case 'conv':
      return `conv(${layer.filters}, ${list(layer.kernel)}, stride: ${list(layer.stride)}, dilation: ${list(layer.dilation)}, groups: ${layer.groups}, pad: ${padText(layer.pad, layer.kernel.map((k, i) => layer.dilation[i]! * (k - 1) + 1))}, bias: ${layer.bias})`;
    case 'dwconv':
      return `dwconv(${list(layer.kernel)}, stride: ${list(layer.stride)}, dilation: ${list(layer.dilation)}, multiplier: ${layer.multiplier}, pad: ${padText(layer.pad, layer.kernel.map((k, i) => layer.dilation[i]! * (k - 1) + 1))})`;
    case 'deconv': {
      const outputPadding = layer.outputPadding.map((p, i) => Math.min(p, layer.stride[i]! - 1)); // ≥ stride: refused, see (5)
      return `deconv(${layer.filters}, ${list(layer.kernel)}, stride: ${list(layer.stride)}, dilation: ${list(layer.dilation)}, groups: ${layer.groups}, pad: [${layer.pairs.map(([b, e]) => `[${b}, ${e}]`).join(', ')}], output_padding: ${list(outputPadding)})`;
    }
    case 'pool':
      return `${layer.op}(${list(layer.kernel)}, stride: ${list(layer.stride)}, pad: ${padText(layer.pad, layer.kernel)}, ceil: ${layer.ceil && !symbolic}${layer.op === 'avgpool' ? `, count_include_pad: ${layer.countIncludePad}` : ''})`;
  }
}

const SIZE_SYMBOLS = ['D', 'H', 'W'];

function stackSpec(stack: StackChoice): { text: string; concrete: Record<string, number[]> } {
  const symbols = SIZE_SYMBOLS.slice(3 - stack.rank);
  const dims = ['N', String(stack.channels), ...stack.sizes.map((size, i) => (stack.symbolic ? symbols[i]! : String(size)))];
  const text = `model Stack {\n  input x: f32[${dims.join(', ')}]\n  y = x -> ${stack.layers.map((layer) => layerText(layer, stack.symbolic)).join(' -> ')}\n  output y\n}\n`;
  return { text, concrete: { x: [2, stack.channels, ...stack.sizes] } };
}

describe('emitOnnx: property — random conv stacks in 1D, 2D and 3D', () => {
  it('emit → official checker accepts → ONNX Runtime equals the reference', async () => {
    const paths: string[] = [];
    let emitted = 0;
    await fc.assert(
      fc.asyncProperty(stackArbitrary(), fc.integer({ min: 0, max: 1000 }), async (stack, seed) => {
        const { text, concrete } = stackSpec(stack);
        const concreteResult = elaborate('stack.cnn', { text, inputShapes: concrete });
        const concreteErrors = concreteResult.diagnostics.filter((d) => d.severity === 'error');
        // windows that do not fit the input are the elaborator's to refuse; they say nothing about the emitter
        fc.pre(!concreteErrors.some((d) => d.code === 'CNN4005'));
        expect(concreteErrors.map((d) => `${d.code} ${d.message}`), text).toEqual([]);
        const symbolicResult = elaborate('stack.cnn', { text });
        expect(symbolicResult.diagnostics.filter((d) => d.severity === 'error'), text).toEqual([]);
        const graph = symbolicResult.graph!;
        const weights = randomWeights(graph, seed);
        const { bytes, diagnostics } = emitOnnx(graph, weights);
        const refusals = diagnostics.filter((d) => d.severity === 'error');
        if (refusals.length > 0) {
          // the refusals a conv stack can meet: SAME on a symbolic size with stride and dilation (conv) or with a
          // stride above the kernel (pool), which ONNX Runtime cannot run; and the ceil-mode average pool whose
          // dropped last window has no rewrite that keeps its divisors
          expect(refusals.every((d) => d.code === 'CNN7001' && /dilation > 1|stride above the kernel|in ceil mode/.test(d.message)), text).toBe(true);
          return;
        }
        emitted++;
        paths.push(writeModel(`stack-${paths.length}.onnx`, bytes));
        const referenceGraph = concreteResult.graph!;
        const feeds = new Map([['x', randomTensor(concrete['x']!, seed)]]);
        const ort = await runOrt(bytes, feeds, text);
        const reference = runReference(referenceGraph, weights, feeds);
        expectClose(ort['y']!, reference.get(referenceGraph.outputs[0]!.value)!, text);
      }),
      { numRuns: 150 },
    );
    expect(emitted).toBeGreaterThan(50);
    const verdicts = await checkManyOnnx(paths);
    if (python === null) return;
    const rejected = verdicts.filter((v) => v.ok !== true).map((v) => `${v.path}: ${verdictMessage(v)}`);
    expect(rejected).toEqual([]);
  });
});

// ===============================================================================================================
// (4) Determinism and metadata

describe('emitOnnx: determinism and metadata', () => {
  const text = SPECS['vision2d']!.text;

  it('gives byte-identical files for the same graph and weights, also after elaborating again', () => {
    const graph = compile('vision2d.cnn', text);
    const first = emit(graph, randomWeights(graph, 3), { specHash: 'sha256:0f0f' });
    const second = emit(graph, randomWeights(graph, 3), { specHash: 'sha256:0f0f' });
    const again = compile('vision2d.cnn', text);
    const third = emit(again, randomWeights(again, 3), { specHash: 'sha256:0f0f' });
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);
    expect(Buffer.from(third).equals(Buffer.from(first))).toBe(true);
    const otherWeights = emit(graph, randomWeights(graph, 4), { specHash: 'sha256:0f0f' });
    expect(Buffer.from(otherWeights).equals(Buffer.from(first))).toBe(false);
  });

  it('records producer, spec hash and every piece of training metadata as JSON', () => {
    const graph = compile('vision2d.cnn', text);
    const model = decoded(emit(graph, randomWeights(graph, 3), { producerVersion: '9.9.9', specHash: 'sha256:0f0f', docString: 'a test export' }));
    expect(int64ToNumber(model.irVersion)).toBe(8);
    expect(model.opsetImport.map((o) => [o.domain, int64ToNumber(o.version)])).toEqual([['', 17]]);
    expect(model.producerName).toBe('convspec');
    expect(model.producerVersion).toBe('9.9.9');
    expect(model.docString).toBe('a test export');
    const metadata = new Map(model.metadataProps.map((p) => [p.key!, JSON.parse(p.value!) as unknown]));
    expect([...metadata.keys()].sort()).toEqual(
      ['convspec.batchnorm', 'convspec.dropout', 'convspec.frozen', 'convspec.regularizers', 'convspec.source', 'convspec.spec_hash', 'convspec.training'].sort(),
    );
    expect(metadata.get('convspec.spec_hash')).toBe('sha256:0f0f');
    expect(metadata.get('convspec.source')).toBe('vision2d.cnn');
    expect(metadata.get('convspec.frozen')).toEqual(['a.conv1', 'a.bn1', 'a.relu1', 'b.conv1', 'b.leaky_relu1']);
    // One entry per distinct list of terms, the layers named (or "ops" when the group is every layer of its ops).
    const groups = metadata.get('convspec.regularizers') as Array<{ layers?: string[]; ops?: string[]; terms: unknown[] }>;
    const regularized = graph.nodes.filter((n) => n.regularizers.length > 0);
    const termsOf = (name: string) => groups.find((g) => g.layers?.includes(name) || g.ops?.includes(graph.nodes.find((n) => n.name === name)!.op))?.terms;
    expect(termsOf('e.conv1')).toEqual([
      { kind: 'l2', factor: 1e-4 },
      { kind: 'l1', factor: 1e-5 },
    ]);
    expect(termsOf('n.dense1')).toEqual([{ kind: 'l2', factor: 1e-4 }]);
    for (const node of regularized) expect(termsOf(node.name), node.name).toEqual(JSON.parse(JSON.stringify(node.regularizers)));
    expect(new Set(groups.map((g) => JSON.stringify(g.terms))).size).toBe(groups.length);
    expect(metadata.get('convspec.dropout')).toEqual({ 'g.spatial_dropout1': { rate: 0.2, spatial: true }, 'n.dropout1': { rate: 0.3, spatial: false } });
    expect(metadata.get('convspec.batchnorm')).toEqual({ 'a.bn1': { momentum: 0.8, epsilon: 0.001 } });
    expect(metadata.get('convspec.training')).toEqual({ epochs: 3, optimizer: { call: 'adam', args: { lr: 0.001 } } });
    const bn = model.graph.node.find((n) => n.name === 'a.bn1')!;
    expect((bn.attribute ?? []).map((a) => [a.name, a.type])).toEqual([
      ['epsilon', 1],
      ['momentum', 1],
    ]);
    expect(attributesOf(bn).get('momentum')).toBeCloseTo(0.8, 6);
  });

  it('writes no more than it must: no value_info unless asked, default attributes left out, short entries', () => {
    const graph = compile(
      'models/small.cnn',
      `model Small {
  input x: f32[N, 3, 8, 8]
  y = x -> conv(4, 1) -> relu -> conv(4, 3, stride: 2, pad: 1, groups: 2) -> maxpool(2) -> flatten -> dense(3)
  output y
  regularize l2(1e-4) on conv, dense
}`,
    );
    const weights = randomWeights(graph, 3);
    const plain = decodeModel(emitOnnx(graph, weights).bytes);
    expect(plain.graph.valueInfo).toEqual([]);
    const declared = decodeModel(emitOnnx(graph, weights, { valueInfo: true }).bytes);
    expect(declared.graph.valueInfo.map((v) => v.name)).toEqual(graph.nodes.filter((n) => n.name !== 'y.dense1').map((n) => n.name));
    const attributes = (name: string) => Object.fromEntries(attributesOf(plain.graph.node.find((n) => n.name === name)!));
    // 1×1, stride 1, no padding, one group: only the kernel; the second conv states what differs from the defaults
    expect(attributes('y.conv1')).toEqual({ kernel_shape: [1, 1] });
    expect(attributes('y.conv2')).toEqual({ kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], group: 2 });
    expect(attributes('y.maxpool1')).toEqual({ kernel_shape: [2, 2], strides: [2, 2] });
    // every conv and dense layer has the same terms: one entry naming the ops
    const regularizers = plain.metadataProps.find((p) => p.key === 'convspec.regularizers')!.value;
    expect(JSON.parse(regularizers!)).toEqual([{ ops: ['conv', 'dense'], terms: [{ kind: 'l2', factor: 1e-4 }] }]);
    // locations relative to the spec's folder
    expect(plain.graph.node.find((n) => n.name === 'y.conv2')!.docString).toBe('small.cnn:3:34');
    expect(plain.metadataProps.find((p) => p.key === 'convspec.source')!.value).toBe('"models/small.cnn"');
  });
});

// ===============================================================================================================
// (5) Opsets: decompositions below the single-op opset, and diagnostics for what has no ONNX form

describe('emitOnnx: opset handling', () => {
  const text = `
model Activations {
  input x: f32[N, 3, 6, 5]
  y = x -> conv(4, 3, pad: same) -> gelu -> hard_swish -> conv(2, 1) -> gelu
  output y
}`;
  const concrete = { x: [2, 3, 6, 5] };
  const byOpset = new Map<number, Compiled>();
  let verdicts: OnnxCheckResult[] = [];

  beforeAll(async () => {
    for (const opset of [13, 14, 17, 20, 21]) byOpset.set(opset, compileSpec(`activations-${opset}`, text, { concrete, opset }));
    // onnx 1.12's checker knows opsets up to 17
    verdicts = await checkManyOnnx([13, 14, 17].map((opset) => writeModel(`activations-${opset}.onnx`, byOpset.get(opset)!.bytes)));
  });

  const opTypes = (opset: number) => decoded(byOpset.get(opset)!.bytes).graph.node.map((n) => n.opType);

  it('opset 13: GELU as the exact erf form and HardSwish as x·HardSigmoid(x)', () => {
    const types = opTypes(13);
    expect(types).not.toContain('Gelu');
    expect(types).not.toContain('HardSwish');
    expect(types.filter((t) => t === 'Erf')).toHaveLength(2);
    expect(types).toContain('HardSigmoid');
    expect(decoded(byOpset.get(13)!.bytes).opsetImport.map((o) => int64ToNumber(o.version))).toEqual([13]);
    const model = decoded(byOpset.get(13)!.bytes);
    const gelu = model.graph.node.filter((n) => n.name!.startsWith('y.gelu1'));
    expect(gelu.map((n) => `${n.opType}:${n.name}`)).toEqual(['Div:y.gelu1/div', 'Erf:y.gelu1/erf', 'Add:y.gelu1/add', 'Mul:y.gelu1/mul', 'Mul:y.gelu1']);
    expect(gelu.at(-1)!.output).toEqual(['y.gelu1']);
  });

  it('opset 14 and 17 use HardSwish; opset 20 and 21 use Gelu', () => {
    expect(opTypes(14)).toContain('HardSwish');
    expect(opTypes(17)).toContain('Erf');
    expect(opTypes(20).filter((t) => t === 'Gelu')).toHaveLength(2);
    expect(opTypes(21)).not.toContain('Erf');
  });

  it(`the official checker accepts opsets 13, 14 and 17${python === null ? ` (${NO_CHECKER})` : ''}`, () => {
    for (const verdict of verdicts) {
      if (verdict.ok === null) return;
      expect(verdict.ok, verdictMessage(verdict)).toBe(true);
    }
  });

  for (const opset of [13, 14, 17, 20, 21]) {
    it(`opset ${opset}: ONNX Runtime equals the reference`, async () => {
      await expectOrtMatchesReference(byOpset.get(opset)!);
    });
  }

  it('refuses opsets outside 13–21 with CNN7001 and writes nothing', () => {
    const graph = compile('activations.cnn', text);
    for (const opset of [12, 22]) {
      const { bytes, diagnostics } = emitOnnx(graph, randomWeights(graph), { opset });
      expect(bytes.length).toBe(0);
      expect(diagnostics.map((d) => [d.code, d.severity])).toEqual([['CNN7001', 'error']]);
      expect(diagnostics[0]!.message).toContain(`opset ${opset}`);
    }
  });

  it('reports what no opset can express, at the layer, instead of writing a broken file', () => {
    const source = `
model Inexpressible {
  input x: f32[N, 2, H, W]
  y = x -> conv(2, 3, stride: 2, pad: same, dilation: 2)
  z = x -> conv(2, 1) -> reshape([1, 2, dim(x, 2), dim(x, 3)])
  w = x -> maxpool(3, stride: 4, pad: same)
  v = x -> deconv(2, 1, dilation: 2, output_padding: 1)
  output y, z, w, v
}`;
    const graph = compile('inexpressible.cnn', source);
    for (const opset of [13, 17, 21]) {
      const { bytes, diagnostics } = emitOnnx(graph, randomWeights(graph), { opset });
      expect(bytes.length).toBe(0);
      expect(diagnostics.map((d) => `${d.code} ${d.span?.line}:${d.span?.column}`)).toEqual(['CNN7001 4:12', 'CNN7001 5:26', 'CNN7001 6:12', 'CNN7001 7:12']);
      expect(diagnostics[0]!.message).toMatch(/SAME.*dilation.*ONNX Runtime refuses/);
      expect(diagnostics[1]!.message).toMatch(/reshape to \[N, 1, 2, H, W\].*H and W/);
      expect(diagnostics[2]!.message).toMatch(/maxpool with SAME padding, a stride above the kernel/);
      expect(diagnostics[3]!.message).toMatch(/output_padding \[1, 1\] not below its stride \[1, 1\]/);
      expect(diagnostics.every((d) => d.hint !== undefined)).toBe(true);
    }
  });

  it('reports an output name that another tensor keeps (CNN3003)', () => {
    const graph = compile(
      'collision.cnn',
      `
model Collision {
  input x: f32[N, 2, 4]
  a = x -> relu
  b = x -> sigmoid as "a"
  c = b -> tanh
  output a, c
}`,
    );
    const { bytes, diagnostics } = emitOnnx(graph, randomWeights(graph));
    expect(bytes.length).toBe(0);
    expect(diagnostics.map((d) => `${d.code} ${d.span?.line}:${d.span?.column} ${d.message}`)).toEqual(["CNN3003 7:10 'a' is already defined"]);
  });

  it('reports missing and mis-shaped weights instead of emitting', () => {
    const graph = compile('activations.cnn', text);
    const weights = randomWeights(graph);
    weights.delete('y.conv1.weight');
    weights.set('y.conv2.bias', { shape: [3], data: new Float32Array(3) });
    const { bytes, diagnostics } = emitOnnx(graph, weights);
    expect(bytes.length).toBe(0);
    expect(diagnostics.map((d) => d.code)).toEqual(['CNN8002', 'CNN8003']);
  });
});
