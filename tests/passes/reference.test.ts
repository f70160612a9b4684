/**
 * The reference interpreter is the oracle of the pass tests, so it is checked against an outside source: ONNX's
 * conformance data (inputs and expected outputs for Conv, ConvTranspose, pools, BatchNormalization, global
 * pools), each case translated into one IR node. Where the data is not installed, hand-computed cases remain.
 */
import { describe, expect, it } from 'vitest';
import { int64ToNumber, type NodeProto } from '../../src/codegen/onnx-model.js';
import type { Node, NodeCommon } from '../../src/ir/graph.js';
import type { WeightTensor } from '../../src/ir/weights.js';
import { listCases, loadCase, testdataAvailable, type CaseTensor } from '../helpers/onnx-testdata.js';
import { evaluateNode, type Tensor } from './reference.js';

const span = { file: 'onnx', start: 0, end: 0, line: 1, column: 1, endLine: 1, endColumn: 1 };
const common = (name: string, inputs: string[]): NodeCommon => ({ name, inputs, shape: [], span, frozen: false, regularizers: [] });

type AttributeProto = NonNullable<NodeProto['attribute']>[number];

function attributes(list: readonly AttributeProto[]): Map<string, AttributeProto> {
  return new Map(list.map((a) => [a.name ?? '', a]));
}

function ints(a: AttributeProto | undefined, fallback: number[]): number[] {
  return a ? (a.ints ?? []).map((v) => int64ToNumber(v)) : fallback;
}

function toTensor(t: CaseTensor): Tensor {
  return { shape: t.dims, data: Float64Array.from(t.data as Float32Array) };
}

/** One ONNX node as an IR node and its weights, or why the case is out of scope. */
function translate(name: string): { node: Node; weights: Map<string, WeightTensor>; x: Tensor; expected: Tensor } | string {
  const c = loadCase(name);
  const onnxNode = c.model.graph.node[0]!;
  if (c.model.graph.node.length !== 1) return 'several nodes';
  const a = attributes(onnxNode.attribute ?? []);
  const x = toTensor(c.inputs[0]!);
  const rank = x.shape.length - 2;
  const expected = toTensor(c.outputs[0]!);
  const weights = new Map<string, WeightTensor>();
  const ones = new Array<number>(rank).fill(1);
  const zeros = new Array<number>(rank).fill(0);
  const autoPad = a.get('auto_pad')?.s ? new TextDecoder().decode(a.get('auto_pad')!.s!) : 'NOTSET';
  if (autoPad !== 'NOTSET' && autoPad !== 'SAME_UPPER' && autoPad !== 'VALID') return `auto_pad ${autoPad}`;
  const pads = ints(a.get('pads'), [...zeros, ...zeros]);
  const padding = autoPad === 'SAME_UPPER' ? ('same-dynamic' as const) : { begin: pads.slice(0, rank), end: pads.slice(rank) };
  const stride = ints(a.get('strides'), ones);
  const dilation = ints(a.get('dilations'), ones);
  const group = a.get('group') ? int64ToNumber(a.get('group')!.i) : 1;
  const param = (role: string, t: CaseTensor) => weights.set(`n.${role}`, { shape: t.dims, data: Float32Array.from(t.data as Float32Array) });
  switch (onnxNode.opType) {
    case 'Conv': {
      const w = c.inputs[1]!;
      param('weight', w);
      if (c.inputs[2]) param('bias', c.inputs[2]);
      const kernel = w.dims.slice(2);
      const node: Node = { ...common('n', ['x']), op: 'conv', inChannels: x.shape[1]!, filters: w.dims[0]!, kernel, stride, dilation, groups: group, padding, padMode: 'explicit', bias: c.inputs.length > 2 };
      return { node, weights, x, expected };
    }
    case 'ConvTranspose': {
      if (a.has('output_shape') || autoPad !== 'NOTSET') return 'output_shape / auto_pad';
      const w = c.inputs[1]!;
      param('weight', w);
      if (c.inputs[2]) param('bias', c.inputs[2]);
      const kernel = w.dims.slice(2);
      const node: Node = {
        ...common('n', ['x']),
        op: 'conv_transpose',
        inChannels: x.shape[1]!,
        filters: w.dims[1]! * group,
        kernel,
        stride,
        dilation,
        groups: group,
        padding: padding as { begin: number[]; end: number[] },
        outputPadding: ints(a.get('output_padding'), zeros),
        padMode: 'explicit',
        bias: c.inputs.length > 2,
      };
      return { node, weights, x, expected };
    }
    case 'MaxPool':
    case 'AveragePool': {
      if (dilation.some((d) => d !== 1)) return 'pool dilations';
      if (c.outputs.length > 1) return 'indices output';
      const kernel = ints(a.get('kernel_shape'), []);
      const node: Node = {
        ...common('n', ['x']),
        op: onnxNode.opType === 'MaxPool' ? 'maxpool' : 'avgpool',
        kernel,
        stride,
        padding,
        padMode: 'explicit',
        ceilMode: (a.get('ceil_mode') ? int64ToNumber(a.get('ceil_mode')!.i) : 0) === 1,
        countIncludePad: (a.get('count_include_pad') ? int64ToNumber(a.get('count_include_pad')!.i) : 0) === 1,
      };
      return { node, weights, x, expected };
    }
    case 'BatchNormalization': {
      if (c.outputs.length > 1 || a.has('training_mode')) return 'training mode';
      ['weight', 'bias', 'running_mean', 'running_var'].forEach((role, i) => param(role, c.inputs[i + 1]!));
      const node: Node = { ...common('n', ['x']), op: 'batchnorm', channels: x.shape[1]!, epsilon: a.get('epsilon')?.f ?? 1e-5, momentum: 0.9 };
      return { node, weights, x, expected };
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
      return { node: { ...common('n', ['x']), op: onnxNode.opType === 'GlobalMaxPool' ? 'global_maxpool' : 'global_avgpool' }, weights, x, expected };
    default:
      return `op ${onnxNode.opType}`;
  }
}

const PREFIXES = ['test_basic_conv_', 'test_conv_with_', 'test_convtranspose', 'test_maxpool_', 'test_averagepool_', 'test_batchnorm_', 'test_globalaveragepool', 'test_globalmaxpool'];

describe.skipIf(!testdataAvailable())('reference interpreter against ONNX conformance data', () => {
  const cases = listCases(PREFIXES).filter((n) => !n.includes('uint8') && !n.includes('argmax') && !n.includes('training'));
  it('covers the op families the passes rewrite', () => {
    const skipped = cases.map((n) => [n, translate(n)] as const).filter(([, t]) => typeof t === 'string');
    expect(cases.length - skipped.length).toBeGreaterThanOrEqual(30);
    expect(skipped.map(([n, why]) => `${n}: ${why}`)).toMatchSnapshot();
  });
  it.each(cases)('%s', (name) => {
    const translated = translate(name);
    if (typeof translated === 'string') return; // out of the IR's scope (recorded by the count above)
    const y = evaluateNode(translated.node, [translated.x], translated.weights);
    expect(y.shape).toEqual(translated.expected.shape);
    const scale = Math.max(1, ...translated.expected.data.map(Math.abs));
    translated.expected.data.forEach((v, i) => expect(Math.abs(y.data[i]! - v)).toBeLessThanOrEqual(1e-5 * scale));
  });
});

describe('reference interpreter: hand-computed cases', () => {
  const x = (shape: number[], values: number[]): Tensor => ({ shape, data: Float64Array.from(values) });
  it('pads by reflection without repeating the edge, and by the edge value', () => {
    const base = { ...common('p', ['x']), op: 'pad' as const, padding: { begin: [2], end: [1] }, value: 0 };
    expect([...evaluateNode({ ...base, mode: 'reflect' }, [x([1, 1, 3], [1, 2, 3])], new Map()).data]).toEqual([3, 2, 1, 2, 3, 2]);
    expect([...evaluateNode({ ...base, mode: 'edge' }, [x([1, 1, 3], [1, 2, 3])], new Map()).data]).toEqual([1, 1, 1, 2, 3, 3]);
  });
  it('average pools in ceil mode divide by the clipped window', () => {
    // 1D input of 5, kernel 2, stride 2, ceil: windows [0,1], [2,3], [4] → 1.5, 3.5, 5.
    const node: Node = { ...common('a', ['x']), op: 'avgpool', kernel: [2], stride: [2], padding: { begin: [0], end: [0] }, padMode: 'explicit', ceilMode: true, countIncludePad: true };
    expect([...evaluateNode(node, [x([1, 1, 5], [1, 2, 3, 4, 5])], new Map()).data]).toEqual([1.5, 3.5, 5]);
  });
  it('upsamples by repeating the nearest source element', () => {
    const node: Node = { ...common('u', ['x']), op: 'upsample', scale: [2], mode: 'nearest' };
    expect([...evaluateNode(node, [x([1, 1, 2], [1, 2])], new Map()).data]).toEqual([1, 1, 2, 2]);
  });
  it('broadcasts a [N, C, 1] gate over [N, C, L]', () => {
    const node: Node = { ...common('m', ['a', 'b']), op: 'mul' };
    expect([...evaluateNode(node, [x([1, 2, 2], [1, 2, 3, 4]), x([1, 2, 1], [10, 100])], new Map()).data]).toEqual([10, 20, 300, 400]);
  });
});
