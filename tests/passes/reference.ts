/**
 * A small float64 reference interpreter for the IR: the oracle for "a pass preserves outputs".
 *
 * Written independently of every engine (plain NCHW loops, no shared kernels) and checked against ONNX's own
 * conformance data in reference.test.ts. Slow by design: keep shapes tiny.
 *
 * Semantics (ONNX / PyTorch, inference):
 *   conv           y[n,o,p] = b_o + Σ_{c∈group(o), k} x[n, c, p·s − pad_begin + k·d] · W[o, c − g·C/G, k]  (zeros outside)
 *   conv_transpose y[n,o, i·s − pad_begin + k·d] += x[n,c,i] · W[c, o − g·F/G, k]  (+ b_o), output size
 *                  (in − 1)·s − pads + d(k − 1) + 1 + output_padding
 *   pools          windows start at p·s − pad_begin; max ignores positions outside the input; average divides
 *                  by the valid count, or with count_include_pad by the window clipped to [−pad_begin, in + pad_end);
 *                  ceil mode drops a last window that would start in the end padding
 *   SAME at run time ('same-dynamic'): SAME_UPPER, the extra pad at the end
 *   batch norm     γ (x − μ)/√(σ² + ε) + β on axis 1;  dropout: identity;  pad reflect mirrors without the edge
 *   upsample       nearest: source index ⌊o / scale⌋ (linear is not implemented)
 * Option `round`: round every node's output to float32, to see what float32 storage does.
 */
import type { Graph, Node, Padding } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export interface ReferenceOptions {
  /** Round each node's output to float32. */
  readonly round?: boolean;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function strides(shape: readonly number[]): number[] {
  const result = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) result[i] = result[i + 1]! * shape[i + 1]!;
  return result;
}

/** Every multi-index of a shape, in row-major order. */
function indices(shape: readonly number[]): number[][] {
  const list: number[][] = [];
  const total = size(shape);
  for (let flat = 0; flat < total; flat++) {
    const index = new Array<number>(shape.length);
    let rest = flat;
    for (let i = shape.length - 1; i >= 0; i--) {
      index[i] = rest % shape[i]!;
      rest = Math.floor(rest / shape[i]!);
    }
    list.push(index);
  }
  return list;
}

function param(weights: Weights, name: string): Float32Array {
  const tensor = weights.get(name);
  if (!tensor) throw new Error(`reference: weight '${name}' is missing`);
  return tensor.data;
}

interface Pads {
  begin: number[];
  end: number[];
}

/** Explicit pads, or SAME_UPPER for 'same-dynamic' on the actual sizes. */
function padsFor(padding: Padding | 'same-dynamic', spatial: readonly number[], kernel: readonly number[], stride: readonly number[], dilation: readonly number[]): Pads {
  if (padding !== 'same-dynamic') return { begin: [...padding.begin], end: [...padding.end] };
  const begin: number[] = [];
  const end: number[] = [];
  spatial.forEach((n, i) => {
    const extent = dilation[i]! * (kernel[i]! - 1) + 1;
    const out = Math.ceil(n / stride[i]!);
    const total = Math.max((out - 1) * stride[i]! + extent - n, 0);
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  });
  return { begin, end };
}

function conv(node: Extract<Node, { op: 'conv' }>, x: Tensor, weights: Weights): Tensor {
  const [batch, channels, ...spatial] = x.shape as number[];
  const rank = node.kernel.length;
  const pads = padsFor(node.padding, spatial, node.kernel, node.stride, node.dilation);
  const outSpatial = spatial.map((n, i) => Math.floor((n + pads.begin[i]! + pads.end[i]! - (node.dilation[i]! * (node.kernel[i]! - 1) + 1)) / node.stride[i]!) + 1);
  if (channels !== node.inChannels) throw new Error(`reference: ${node.name} expects ${node.inChannels} channels, got ${channels}`);
  const w = param(weights, `${node.name}.weight`);
  const b = node.bias ? param(weights, `${node.name}.bias`) : undefined;
  const inPerGroup = node.inChannels / node.groups;
  const outPerGroup = node.filters / node.groups;
  const kernelPositions = indices(node.kernel);
  const kernelSize = kernelPositions.length;
  const outPositions = indices(outSpatial);
  const inStrides = strides(spatial);
  const outShape = [batch!, node.filters, ...outSpatial];
  const y = new Float64Array(size(outShape));
  const inPlane = size(spatial);
  const outPlane = size(outSpatial);
  for (let n = 0; n < batch!; n++) {
    for (let o = 0; o < node.filters; o++) {
      const group = Math.floor(o / outPerGroup);
      outPositions.forEach((position, p) => {
        let sum = b ? b[o]! : 0;
        for (let ci = 0; ci < inPerGroup; ci++) {
          const c = group * inPerGroup + ci;
          for (let k = 0; k < kernelSize; k++) {
            let offset = 0;
            let inside = true;
            for (let i = 0; i < rank; i++) {
              const at = position[i]! * node.stride[i]! - pads.begin[i]! + kernelPositions[k]![i]! * node.dilation[i]!;
              if (at < 0 || at >= spatial[i]!) {
                inside = false;
                break;
              }
              offset += at * inStrides[i]!;
            }
            if (inside) sum += x.data[(n * channels! + c) * inPlane + offset]! * w[(o * inPerGroup + ci) * kernelSize + k]!;
          }
        }
        y[(n * node.filters + o) * outPlane + p] = sum;
      });
    }
  }
  return { shape: outShape, data: y };
}

function convTranspose(node: Extract<Node, { op: 'conv_transpose' }>, x: Tensor, weights: Weights): Tensor {
  const [batch, channels, ...spatial] = x.shape as number[];
  const rank = node.kernel.length;
  const outSpatial = spatial.map(
    (n, i) => (n - 1) * node.stride[i]! - node.padding.begin[i]! - node.padding.end[i]! + node.dilation[i]! * (node.kernel[i]! - 1) + 1 + node.outputPadding[i]!,
  );
  if (channels !== node.inChannels) throw new Error(`reference: ${node.name} expects ${node.inChannels} channels, got ${channels}`);
  const w = param(weights, `${node.name}.weight`);
  const b = node.bias ? param(weights, `${node.name}.bias`) : undefined;
  const inPerGroup = node.inChannels / node.groups;
  const outPerGroup = node.filters / node.groups;
  const kernelPositions = indices(node.kernel);
  const kernelSize = kernelPositions.length;
  const inPositions = indices(spatial);
  const outStrides = strides(outSpatial);
  const outShape = [batch!, node.filters, ...outSpatial];
  const y = new Float64Array(size(outShape));
  const inPlane = size(spatial);
  const outPlane = size(outSpatial);
  for (let n = 0; n < batch!; n++) {
    if (b) for (let o = 0; o < node.filters; o++) y.fill(b[o]!, (n * node.filters + o) * outPlane, (n * node.filters + o + 1) * outPlane);
    for (let c = 0; c < channels!; c++) {
      const group = Math.floor(c / inPerGroup);
      inPositions.forEach((position, p) => {
        const value = x.data[(n * channels! + c) * inPlane + p]!;
        for (let j = 0; j < outPerGroup; j++) {
          const o = group * outPerGroup + j;
          for (let k = 0; k < kernelSize; k++) {
            let offset = 0;
            let inside = true;
            for (let i = 0; i < rank; i++) {
              const at = position[i]! * node.stride[i]! - node.padding.begin[i]! + kernelPositions[k]![i]! * node.dilation[i]!;
              if (at < 0 || at >= outSpatial[i]!) {
                inside = false;
                break;
              }
              offset += at * outStrides[i]!;
            }
            if (inside) y[(n * node.filters + o) * outPlane + offset]! += value * w[(c * outPerGroup + j) * kernelSize + k]!;
          }
        }
      });
    }
  }
  return { shape: outShape, data: y };
}

function pool(node: Extract<Node, { op: 'maxpool' | 'avgpool' }>, x: Tensor): Tensor {
  const [batch, channels, ...spatial] = x.shape as number[];
  const rank = node.kernel.length;
  const ones = node.kernel.map(() => 1);
  const pads = padsFor(node.padding, spatial, node.kernel, node.stride, ones);
  const outSpatial = spatial.map((n, i) => {
    const span = n + pads.begin[i]! + pads.end[i]! - node.kernel[i]!;
    let out = (node.ceilMode ? Math.ceil(span / node.stride[i]!) : Math.floor(span / node.stride[i]!)) + 1;
    if (node.ceilMode && (out - 1) * node.stride[i]! >= n + pads.begin[i]!) out -= 1;
    return out;
  });
  const outPositions = indices(outSpatial);
  const kernelPositions = indices(node.kernel);
  const inStrides = strides(spatial);
  const outShape = [batch!, channels!, ...outSpatial];
  const y = new Float64Array(size(outShape));
  const inPlane = size(spatial);
  const outPlane = size(outSpatial);
  for (let plane = 0; plane < batch! * channels!; plane++) {
    outPositions.forEach((position, p) => {
      // Per axis: the window [start, start + k) clipped to the input, and to the padded extent for the divisor.
      const low: number[] = [];
      const high: number[] = [];
      let padded = 1;
      for (let i = 0; i < rank; i++) {
        const start = position[i]! * node.stride[i]! - pads.begin[i]!;
        const end = Math.min(start + node.kernel[i]!, spatial[i]! + pads.end[i]!);
        padded *= end - start;
        low.push(Math.max(start, 0));
        high.push(Math.min(end, spatial[i]!));
      }
      let result = node.op === 'maxpool' ? Number.NEGATIVE_INFINITY : 0;
      let valid = 0;
      for (const k of kernelPositions) {
        let offset = 0;
        let inside = true;
        for (let i = 0; i < rank; i++) {
          const at = low[i]! + k[i]!;
          if (at >= high[i]!) {
            inside = false;
            break;
          }
          offset += at * inStrides[i]!;
        }
        if (!inside) continue;
        valid++;
        const value = x.data[plane * inPlane + offset]!;
        result = node.op === 'maxpool' ? Math.max(result, value) : result + value;
      }
      if (node.op === 'avgpool') result /= node.countIncludePad ? padded : valid;
      y[plane * outPlane + p] = result;
    });
  }
  return { shape: outShape, data: y };
}

function pad(node: Extract<Node, { op: 'pad' }>, x: Tensor): Tensor {
  const [batch, channels, ...spatial] = x.shape as number[];
  const outSpatial = spatial.map((n, i) => n + node.padding.begin[i]! + node.padding.end[i]!);
  const outShape = [batch!, channels!, ...outSpatial];
  const y = new Float64Array(size(outShape));
  const inStrides = strides(spatial);
  const positions = indices(outSpatial);
  const inPlane = size(spatial);
  const outPlane = size(outSpatial);
  for (let plane = 0; plane < batch! * channels!; plane++) {
    positions.forEach((position, p) => {
      let offset = 0;
      let inside = true;
      position.forEach((at, i) => {
        let source = at - node.padding.begin[i]!;
        const n = spatial[i]!;
        if (source < 0 || source >= n) {
          if (node.mode === 'constant') inside = false;
          else if (node.mode === 'edge') source = Math.min(Math.max(source, 0), n - 1);
          else {
            const period = 2 * (n - 1);
            source = period === 0 ? 0 : ((source % period) + period) % period;
            if (source >= n) source = period - source;
          }
        }
        offset += source * inStrides[i]!;
      });
      y[plane * outPlane + p] = inside ? x.data[plane * inPlane + offset]! : node.value;
    });
  }
  return { shape: outShape, data: y };
}

function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): the same function before and after every pass.
  const sign = x < 0 ? -1 : 1;
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign * (1 - poly * Math.exp(-x * x));
}

function activation(node: Extract<Node, { op: 'activation' }>, x: Tensor): Tensor {
  const fn = node.fn;
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  if (fn.kind === 'softmax') {
    const axis = fn.axis < 0 ? x.shape.length + fn.axis : fn.axis;
    const st = strides(x.shape);
    const y = new Float64Array(x.data.length);
    const outer = size(x.shape.slice(0, axis));
    const inner = st[axis]!;
    const length = x.shape[axis]!;
    for (let a = 0; a < outer; a++) {
      for (let b = 0; b < inner; b++) {
        const at = (k: number) => a * length * inner + k * inner + b;
        let max = Number.NEGATIVE_INFINITY;
        for (let k = 0; k < length; k++) max = Math.max(max, x.data[at(k)]!);
        let sum = 0;
        for (let k = 0; k < length; k++) sum += Math.exp(x.data[at(k)]! - max);
        for (let k = 0; k < length; k++) y[at(k)] = Math.exp(x.data[at(k)]! - max) / sum;
      }
    }
    return { shape: x.shape, data: y };
  }
  const f = (v: number): number => {
    switch (fn.kind) {
      case 'relu':
        return Math.max(v, 0);
      case 'relu6':
        return Math.min(Math.max(v, 0), 6);
      case 'leaky_relu':
        return v > 0 ? v : fn.alpha * v;
      case 'elu':
        return v > 0 ? v : fn.alpha * (Math.exp(v) - 1);
      case 'sigmoid':
        return sigmoid(v);
      case 'hard_sigmoid':
        return Math.min(Math.max(fn.alpha * v + fn.beta, 0), 1);
      case 'tanh':
        return Math.tanh(v);
      case 'swish':
        return v * sigmoid(v);
      case 'hard_swish':
        return (v * Math.min(Math.max(v + 3, 0), 6)) / 6;
      case 'gelu':
        return 0.5 * v * (1 + erf(v / Math.SQRT2));
    }
  };
  return { shape: x.shape, data: x.data.map(f) };
}

function broadcast(op: 'add' | 'mul', tensors: readonly Tensor[]): Tensor {
  const rank = Math.max(...tensors.map((t) => t.shape.length));
  const aligned = tensors.map((t) => [...new Array<number>(rank - t.shape.length).fill(1), ...t.shape]);
  const outShape = Array.from({ length: rank }, (_, i) => Math.max(...aligned.map((s) => s[i]!)));
  const y = new Float64Array(size(outShape)).fill(op === 'add' ? 0 : 1);
  const positions = indices(outShape);
  tensors.forEach((t, k) => {
    const shape = aligned[k]!;
    const st = strides(shape);
    positions.forEach((position, p) => {
      let offset = 0;
      for (let i = 0; i < rank; i++) offset += (shape[i] === 1 ? 0 : position[i]!) * st[i]!;
      y[p] = op === 'add' ? y[p]! + t.data[offset]! : y[p]! * t.data[offset]!;
    });
  });
  return { shape: outShape, data: y };
}

function concat(axisAttribute: number, tensors: readonly Tensor[]): Tensor {
  const first = tensors[0]!;
  const axis = axisAttribute < 0 ? first.shape.length + axisAttribute : axisAttribute;
  const total = tensors.reduce((sum, t) => sum + t.shape[axis]!, 0);
  const outShape = first.shape.map((d, i) => (i === axis ? total : d));
  const outer = size(first.shape.slice(0, axis));
  const inner = size(first.shape.slice(axis + 1));
  const y = new Float64Array(size(outShape));
  let offset = 0;
  for (const t of tensors) {
    const length = t.shape[axis]!;
    for (let a = 0; a < outer; a++) for (let k = 0; k < length * inner; k++) y[a * total * inner + offset * inner + k] = t.data[a * length * inner + k]!;
    offset += length;
  }
  return { shape: outShape, data: y };
}

function dense(node: Extract<Node, { op: 'dense' }>, x: Tensor, weights: Weights): Tensor {
  const [batch, features] = x.shape as number[];
  if (features !== node.inFeatures) throw new Error(`reference: ${node.name} expects ${node.inFeatures} features, got ${features}`);
  const w = param(weights, `${node.name}.weight`);
  const b = node.bias ? param(weights, `${node.name}.bias`) : undefined;
  const y = new Float64Array(batch! * node.units);
  for (let n = 0; n < batch!; n++) {
    for (let o = 0; o < node.units; o++) {
      let sum = b ? b[o]! : 0;
      for (let i = 0; i < features!; i++) sum += x.data[n * features! + i]! * w[o * features! + i]!;
      y[n * node.units + o] = sum;
    }
  }
  return { shape: [batch!, node.units], data: y };
}

function batchNorm(node: Extract<Node, { op: 'batchnorm' }>, x: Tensor, weights: Weights): Tensor {
  const gamma = param(weights, `${node.name}.weight`);
  const beta = param(weights, `${node.name}.bias`);
  const mean = param(weights, `${node.name}.running_mean`);
  const variance = param(weights, `${node.name}.running_var`);
  const channels = x.shape[1]!;
  const plane = size(x.shape.slice(2));
  const y = x.data.map((v, i) => {
    const c = Math.floor(i / plane) % channels;
    return (gamma[c]! * (v - mean[c]!)) / Math.sqrt(variance[c]! + node.epsilon) + beta[c]!;
  });
  return { shape: x.shape, data: y };
}

function upsample(node: Extract<Node, { op: 'upsample' }>, x: Tensor): Tensor {
  if (node.mode !== 'nearest') throw new Error('reference: linear upsampling is not implemented');
  const [batch, channels, ...spatial] = x.shape as number[];
  const outSpatial = spatial.map((n, i) => n * node.scale[i]!);
  const outShape = [batch!, channels!, ...outSpatial];
  const inStrides = strides(spatial);
  const positions = indices(outSpatial);
  const y = new Float64Array(size(outShape));
  const inPlane = size(spatial);
  const outPlane = size(outSpatial);
  for (let plane = 0; plane < batch! * channels!; plane++) {
    positions.forEach((position, p) => {
      let offset = 0;
      position.forEach((at, i) => (offset += Math.floor(at / node.scale[i]!) * inStrides[i]!));
      y[plane * outPlane + p] = x.data[plane * inPlane + offset]!;
    });
  }
  return { shape: outShape, data: y };
}

function globalPool(op: 'global_avgpool' | 'global_maxpool', x: Tensor): Tensor {
  const [batch, channels, ...spatial] = x.shape as number[];
  const plane = size(spatial);
  const y = new Float64Array(batch! * channels!);
  for (let k = 0; k < batch! * channels!; k++) {
    let result = op === 'global_maxpool' ? Number.NEGATIVE_INFINITY : 0;
    for (let i = 0; i < plane; i++) result = op === 'global_maxpool' ? Math.max(result, x.data[k * plane + i]!) : result + x.data[k * plane + i]!;
    y[k] = op === 'global_avgpool' ? result / plane : result;
  }
  return { shape: [batch!, channels!, ...spatial.map(() => 1)], data: y };
}

export function evaluateNode(node: Node, inputs: readonly Tensor[], weights: Weights): Tensor {
  const x = inputs[0]!;
  switch (node.op) {
    case 'conv':
      return conv(node, x, weights);
    case 'conv_transpose':
      return convTranspose(node, x, weights);
    case 'maxpool':
    case 'avgpool':
      return pool(node, x);
    case 'global_avgpool':
    case 'global_maxpool':
      return globalPool(node.op, x);
    case 'batchnorm':
      return batchNorm(node, x, weights);
    case 'activation':
      return activation(node, x);
    case 'dropout':
      return x;
    case 'add':
    case 'mul':
      return broadcast(node.op, inputs);
    case 'concat':
      return concat(node.axis, inputs);
    case 'upsample':
      return upsample(node, x);
    case 'flatten':
      return { shape: [x.shape[0]!, size(x.shape.slice(1))], data: x.data };
    case 'reshape': {
      // The node's recorded output shape (its `shape`), with the batch taken from the input.
      const target = node.shape.slice(1).map((d) => {
        if (typeof d !== 'number') throw new Error(`reference: reshape to a symbolic size in ${node.name}`);
        return d;
      });
      return { shape: [x.shape[0]!, ...target], data: x.data };
    }
    case 'dense':
      return dense(node, x, weights);
    case 'pad':
      return pad(node, x);
  }
}

/** Every tensor of the graph by name, for the given graph inputs. */
export function evaluateAll(graph: Graph, weights: Weights, inputs: ReadonlyMap<string, Tensor>, options: ReferenceOptions = {}): Map<string, Tensor> {
  const values = new Map<string, Tensor>();
  for (const input of graph.inputs) {
    const tensor = inputs.get(input.name);
    if (!tensor) throw new Error(`reference: no value for input '${input.name}'`);
    values.set(input.name, tensor);
  }
  for (const node of graph.nodes) {
    let result = evaluateNode(
      node,
      node.inputs.map((name) => values.get(name)!),
      weights,
    );
    // The recorded shape must agree wherever it is a number (the batch axis may be symbolic).
    node.shape.forEach((d, i) => {
      if (typeof d === 'number' && d !== result.shape[i]) throw new Error(`reference: ${node.name} computed [${result.shape}] but the IR records ${JSON.stringify(node.shape)}`);
    });
    if (options.round) result = { shape: result.shape, data: result.data.map(Math.fround) };
    values.set(node.name, result);
  }
  return values;
}

/** The graph's outputs by output name. */
export function runReference(graph: Graph, weights: Weights, inputs: ReadonlyMap<string, Tensor>, options: ReferenceOptions = {}): Map<string, Tensor> {
  const values = evaluateAll(graph, weights, inputs, options);
  return new Map(graph.outputs.map((o) => [o.name, values.get(o.value)!]));
}

/** Largest |a − b| over two output maps, and the largest |a| (for relative tolerances). */
export function compareOutputs(expected: ReadonlyMap<string, Tensor>, actual: ReadonlyMap<string, Tensor>): { maxError: number; maxMagnitude: number } {
  let maxError = 0;
  let maxMagnitude = 0;
  for (const [name, tensor] of expected) {
    const other = actual.get(name);
    if (!other) throw new Error(`output '${name}' is missing`);
    if (other.shape.length !== tensor.shape.length || other.shape.some((d, i) => d !== tensor.shape[i])) throw new Error(`output '${name}' has shape [${other.shape}], expected [${tensor.shape}]`);
    tensor.data.forEach((v, i) => {
      maxError = Math.max(maxError, Math.abs(v - other.data[i]!));
      maxMagnitude = Math.max(maxMagnitude, Math.abs(v));
    });
  }
  return { maxError, maxMagnitude };
}
