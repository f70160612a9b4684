/**
 * Shape rules for every op, and padding resolution.
 *
 * Per spatial axis, with kernel extent k' = α(k − 1) + 1 (dilation α), stride s, pads b (begin) and e (end):
 *   conv / pool (floor):  out = ⌊(in + b + e − k')/s⌋ + 1
 *   pool (ceil mode):     out = ⌈(in + b + e − k)/s⌉ + 1, minus one when the last window would start in the
 *                         end padding ((out − 1)·s ≥ in + b), as ONNX Runtime and PyTorch do
 *   transposed conv:      out = (in − 1)·s − b − e + k' + output_padding
 *   SAME (TF rule):       out = ⌈in/s⌉, total pad = max((out − 1)·s + k' − in, 0), b = ⌊total/2⌋, e = total − b
 *                         (the extra pixel goes at the end)
 *   causal (1D):          b = k' − 1, e = 0
 *
 * Rules return either a shape or a `ShapeProblem` that elaboration turns into a diagnostic at the layer.
 */
import { add, ceilDiv, dimToString, equalDims, floorDiv, isSymbolic, knownProduct, mul, shapeToString, sub, type Dim } from './dims.js';
import { effectiveKernel, type OpAttributes, type PadMode, type Padding, type PoolAttributes, type Shape } from './graph.js';

export type ShapeProblem =
  | { kind: 'rank'; expected: string; found: string }
  | { kind: 'channels'; left: string; right: string }
  | { kind: 'mismatch'; left: string; right: string }
  | { kind: 'empty'; axis: number; size: string }
  | { kind: 'groups'; what: string; count: number; groups: number }
  | { kind: 'reshape'; from: string; to: string }
  | { kind: 'invalid'; message: string };

export type ShapeResult = { ok: true; shape: Shape } | { ok: false; problem: ShapeProblem };

const ok = (shape: Shape): ShapeResult => ({ ok: true, shape });
const fail = (problem: ShapeProblem): ShapeResult => ({ ok: false, problem });

function describeRank(rank: number): string {
  return rank === 3 ? 'a 1D feature map [N, C, L]' : rank === 4 ? 'a 2D feature map [N, C, H, W]' : rank === 5 ? 'a 3D feature map [N, C, D, H, W]' : `rank ${rank}`;
}

/**
 * Resolves a padding request to explicit pads for the given spatial input sizes, or `'same-dynamic'` when SAME
 * meets a symbolic size at stride > 1.
 */
export function resolvePadding(
  mode: PadMode,
  explicit: Padding | undefined,
  spatial: readonly Dim[],
  kernel: readonly number[],
  stride: readonly number[],
  dilation: readonly number[],
): Padding | 'same-dynamic' {
  const rank = kernel.length;
  switch (mode) {
    case 'valid':
      return { begin: new Array(rank).fill(0), end: new Array(rank).fill(0) };
    case 'explicit':
      return explicit ?? { begin: new Array(rank).fill(0), end: new Array(rank).fill(0) };
    case 'causal':
      return { begin: kernel.map((k, i) => effectiveKernel(k, dilation[i]!) - 1), end: new Array(rank).fill(0) };
    case 'same': {
      const begin: number[] = [];
      const end: number[] = [];
      for (let i = 0; i < rank; i++) {
        const size = spatial[i]!;
        const k = effectiveKernel(kernel[i]!, dilation[i]!);
        const s = stride[i]!;
        let total: number;
        if (typeof size === 'number') {
          const out = Math.ceil(size / s);
          total = Math.max((out - 1) * s + k - size, 0);
        } else if (s === 1) {
          total = k - 1;
        } else {
          return 'same-dynamic';
        }
        begin.push(Math.floor(total / 2));
        end.push(total - Math.floor(total / 2));
      }
      return { begin, end };
    }
  }
}

/** SAME for a transposed conv makes out = in·s: total pad k' − s (output padding covers k' < s). */
export function resolveTransposePadding(
  kernel: readonly number[],
  stride: readonly number[],
  dilation: readonly number[],
): { padding: Padding; outputPadding: number[] } {
  const begin: number[] = [];
  const end: number[] = [];
  const outputPadding: number[] = [];
  kernel.forEach((k, i) => {
    const total = effectiveKernel(k, dilation[i]!) - stride[i]!;
    const pads = Math.max(total, 0);
    begin.push(Math.floor(pads / 2));
    end.push(pads - Math.floor(pads / 2));
    outputPadding.push(Math.max(-total, 0));
  });
  return { padding: { begin, end }, outputPadding };
}

function windowOutput(input: Dim, pads: number, kernelExtent: number, stride: number, ceil: boolean, beginPad: number): Dim {
  const span = sub(add(input, pads), kernelExtent);
  let out = add(ceil ? ceilDiv(span, stride) : floorDiv(span, stride), 1);
  if (ceil && typeof out === 'number' && typeof input === 'number' && (out - 1) * stride >= input + beginPad) out -= 1;
  return out;
}

/**
 * How many elements each window of an average pool averages, per output position (row-major over the spatial
 * output): those inside the input, or with count_include_pad those inside the padded input — never the part of a
 * ceil-mode window past the end padding. The tfjs engine divides by these, and the ONNX Runtime step graph
 * differentiates the same (runtime/ort/training-graph.ts), so both engines average alike.
 */
export function averagePoolCounts(
  pool: Pick<PoolAttributes, 'kernel' | 'stride' | 'countIncludePad'>,
  padding: Padding,
  spatialIn: readonly number[],
  spatialOut: readonly number[],
): Float32Array {
  const perAxis = spatialOut.map((size, axis) => {
    const low = pool.countIncludePad ? -padding.begin[axis]! : 0;
    const high = pool.countIncludePad ? spatialIn[axis]! + padding.end[axis]! : spatialIn[axis]!;
    return Array.from({ length: size }, (_, o) => {
      const start = o * pool.stride[axis]! - padding.begin[axis]!;
      return Math.max(0, Math.min(start + pool.kernel[axis]!, high) - Math.max(start, low));
    });
  });
  // the outer product of the per-axis counts, last axis fastest
  let counts = [1];
  for (const axis of perAxis) counts = counts.flatMap((c) => axis.map((a) => c * a));
  return Float32Array.from(counts);
}

function spatialOutputs(
  shape: Shape,
  kernel: readonly number[],
  stride: readonly number[],
  dilation: readonly number[],
  padding: Padding | 'same-dynamic',
  ceil: boolean,
): { ok: true; dims: Dim[] } | { ok: false; problem: ShapeProblem } {
  const dims: Dim[] = [];
  for (let i = 0; i < kernel.length; i++) {
    const input = shape[2 + i]!;
    let out: Dim;
    if (padding === 'same-dynamic') out = ceilDiv(input, stride[i]!);
    else out = windowOutput(input, padding.begin[i]! + padding.end[i]!, effectiveKernel(kernel[i]!, dilation[i]!), stride[i]!, ceil, padding.begin[i]!);
    if (typeof out === 'number' && out <= 0) return { ok: false, problem: { kind: 'empty', axis: i, size: String(out) } };
    dims.push(out);
  }
  return { ok: true, dims };
}

function checkSpatialRank(shape: Shape, kernelRank: number): ShapeProblem | undefined {
  if (shape.length !== kernelRank + 2) return { kind: 'rank', expected: describeRank(kernelRank + 2), found: `${describeRank(shape.length)} ${shapeToString(shape)}` };
  return undefined;
}

/** NumPy/ONNX broadcasting of two shapes, aligned at the right. */
export function broadcastShapes(a: Shape, b: Shape): ShapeResult {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (equalDims(x, y) || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else if (i === 1 && a.length === b.length) return fail({ kind: 'channels', left: dimToString(x), right: dimToString(y) });
    else return fail({ kind: 'mismatch', left: shapeToString(a), right: shapeToString(b) });
  }
  return ok(out);
}

export function inferShape(attributes: OpAttributes, inputs: readonly Shape[]): ShapeResult {
  const x = inputs[0]!;
  switch (attributes.op) {
    case 'conv':
    case 'conv_transpose': {
      const rankProblem = checkSpatialRank(x, attributes.kernel.length);
      if (rankProblem) return fail(rankProblem);
      const channels = x[1]!;
      if (!equalDims(channels, attributes.inChannels))
        return fail({ kind: 'channels', left: dimToString(channels), right: String(attributes.inChannels) });
      if (attributes.inChannels % attributes.groups !== 0)
        return fail({ kind: 'groups', what: 'input channels', count: attributes.inChannels, groups: attributes.groups });
      if (attributes.filters % attributes.groups !== 0)
        return fail({ kind: 'groups', what: 'output channels', count: attributes.filters, groups: attributes.groups });
      if (attributes.op === 'conv') {
        const spatial = spatialOutputs(x, attributes.kernel, attributes.stride, attributes.dilation, attributes.padding, false);
        if (!spatial.ok) return fail(spatial.problem);
        return ok([x[0]!, attributes.filters, ...spatial.dims]);
      }
      const dims: Dim[] = [];
      for (let i = 0; i < attributes.kernel.length; i++) {
        const k = effectiveKernel(attributes.kernel[i]!, attributes.dilation[i]!);
        const out = add(
          sub(mul(sub(x[2 + i]!, 1), attributes.stride[i]!), attributes.padding.begin[i]! + attributes.padding.end[i]!),
          k + attributes.outputPadding[i]!,
        );
        if (typeof out === 'number' && out <= 0) return fail({ kind: 'empty', axis: i, size: String(out) });
        dims.push(out);
      }
      return ok([x[0]!, attributes.filters, ...dims]);
    }
    case 'maxpool':
    case 'avgpool': {
      const rankProblem = checkSpatialRank(x, attributes.kernel.length);
      if (rankProblem) return fail(rankProblem);
      const ones = attributes.kernel.map(() => 1);
      const spatial = spatialOutputs(x, attributes.kernel, attributes.stride, ones, attributes.padding, attributes.ceilMode);
      if (!spatial.ok) return fail(spatial.problem);
      return ok([x[0]!, x[1]!, ...spatial.dims]);
    }
    case 'global_avgpool':
    case 'global_maxpool':
      if (x.length < 3) return fail({ kind: 'rank', expected: 'a feature map [N, C, …spatial]', found: shapeToString(x) });
      return ok([x[0]!, x[1]!, ...x.slice(2).map(() => 1)]);
    case 'batchnorm':
      if (x.length < 2) return fail({ kind: 'rank', expected: 'at least [N, C]', found: shapeToString(x) });
      if (!equalDims(x[1]!, attributes.channels)) return fail({ kind: 'channels', left: dimToString(x[1]!), right: String(attributes.channels) });
      return ok(x);
    case 'activation':
      if (attributes.fn.kind === 'softmax' && (attributes.fn.axis >= x.length || attributes.fn.axis < -x.length))
        return fail({ kind: 'invalid', message: `softmax axis ${attributes.fn.axis} is outside ${shapeToString(x)}` });
      return ok(x);
    case 'dropout':
      return ok(x);
    case 'add':
    case 'mul': {
      let shape = x;
      for (const other of inputs.slice(1)) {
        const result = broadcastShapes(shape, other);
        if (!result.ok) return result;
        shape = result.shape;
      }
      return ok(shape);
    }
    case 'concat': {
      const axis = attributes.axis < 0 ? x.length + attributes.axis : attributes.axis;
      if (axis < 0 || axis >= x.length) return fail({ kind: 'invalid', message: `concat axis ${attributes.axis} is outside ${shapeToString(x)}` });
      let total: Dim = 0;
      for (const shape of inputs) {
        if (shape.length !== x.length) return fail({ kind: 'mismatch', left: shapeToString(x), right: shapeToString(shape) });
        for (let i = 0; i < x.length; i++) {
          if (i !== axis && !equalDims(shape[i]!, x[i]!)) return fail({ kind: 'mismatch', left: shapeToString(x), right: shapeToString(shape) });
        }
        total = add(total, shape[axis]!);
      }
      return ok(x.map((d, i) => (i === axis ? total : d)));
    }
    case 'upsample': {
      if (x.length !== attributes.scale.length + 2) return fail({ kind: 'rank', expected: describeRank(attributes.scale.length + 2), found: shapeToString(x) });
      return ok([x[0]!, x[1]!, ...attributes.scale.map((s, i) => mul(x[2 + i]!, s))]);
    }
    case 'flatten': {
      if (x.length < 2) return fail({ kind: 'rank', expected: 'at least [N, C]', found: shapeToString(x) });
      let features: Dim = 1;
      for (const d of x.slice(1)) features = mul(features, d);
      return ok([x[0]!, features]);
    }
    case 'reshape': {
      const known = knownProduct(x.slice(1));
      const target = [...attributes.target];
      const unknownIndex = target.findIndex((d) => d === -1);
      if (unknownIndex >= 0) {
        const rest = knownProduct(target.filter((_, i) => i !== unknownIndex));
        if (known === undefined || rest === undefined || rest === 0 || known % rest !== 0)
          return fail({ kind: 'reshape', from: shapeToString(x), to: shapeToString([x[0]!, ...target]) });
        target[unknownIndex] = known / rest;
      }
      let from: Dim = 1;
      for (const d of x.slice(1)) from = mul(from, d);
      let to: Dim = 1;
      for (const d of target) to = mul(to, d);
      if (!equalDims(from, to)) return fail({ kind: 'reshape', from: shapeToString(x), to: shapeToString([x[0]!, ...target]) });
      return ok([x[0]!, ...target]);
    }
    case 'dense':
      if (x.length !== 2) return fail({ kind: 'rank', expected: 'a flat input [N, features] (add flatten before dense)', found: shapeToString(x) });
      if (!equalDims(x[1]!, attributes.inFeatures)) return fail({ kind: 'channels', left: dimToString(x[1]!), right: String(attributes.inFeatures) });
      return ok([x[0]!, attributes.units]);
    case 'pad': {
      const rank = attributes.padding.begin.length;
      if (x.length !== rank + 2) return fail({ kind: 'rank', expected: describeRank(rank + 2), found: shapeToString(x) });
      return ok([x[0]!, x[1]!, ...x.slice(2).map((d, i) => add(d, attributes.padding.begin[i]! + attributes.padding.end[i]!))]);
    }
  }
}

/** Number of elements, when known; used for the 2^53 limit and activation memory. */
export function elementCount(shape: Shape, batch = 1): Dim {
  let count: Dim = 1;
  shape.forEach((d, i) => {
    count = mul(count, i === 0 && isSymbolic(d) ? batch : d);
  });
  return count;
}
