/**
 * A reference ONNX model for small IR graphs, written op by op with `OnnxGraphBuilder`, so tests can run the same
 * graph in ONNX Runtime and compare with an engine. Independent of the project's ONNX emitter on purpose: each
 * mapping is the plain ONNX definition of the IR op (explicit pads, ceil_mode, count_include_pad, Resize with
 * asymmetric/floor for nearest and half_pixel for linear, BatchNormalization in inference form).
 */
import { OnnxGraphBuilder, attr } from '../../src/codegen/onnx-model.js';
import { evaluateDim } from '../../src/ir/dims.js';
import type { Graph, Node } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';

/** Builds opset-17 ONNX bytes for `graph` with `weights`; symbolic dims are bound from `bindings`. */
export function referenceOnnx(graph: Graph, weights: Weights, bindings: ReadonlyMap<string, number>): Uint8Array {
  const builder = new OnnxGraphBuilder();
  const dims = (shape: readonly unknown[]) => shape.map((d) => evaluateDim(d as never, bindings) as number);
  for (const input of graph.inputs) builder.addInput(input.name, 'float32', dims(input.shape));
  for (const [name, tensor] of weights) builder.addInitializer(name, tensor.shape, tensor.data);
  for (const node of graph.nodes) emitNode(builder, node);
  for (const output of graph.outputs) {
    builder.addNode('Identity', [output.value], [output.name], `${output.name}/out`);
    builder.addOutput(output.name, 'float32', dims(graph.nodes.find((n) => n.name === output.value)!.shape));
  }
  return builder.build({ opset: 17, producerName: 'convspec-tests', producerVersion: '0', graphName: graph.name });
}

function constant(builder: OnnxGraphBuilder, name: string, values: number[]): string {
  builder.addInitializer(name, [], new Float32Array(values));
  return name;
}

function emitNode(b: OnnxGraphBuilder, node: Node): void {
  const x = node.inputs[0]!;
  const y = node.name;
  const params = (roles: string[]) => roles.map((r) => `${node.name}.${r}`);
  switch (node.op) {
    case 'conv': {
      if (node.padding === 'same-dynamic') throw new Error('reference: same-dynamic is not written here');
      b.addNode('Conv', [x, ...params(node.bias ? ['weight', 'bias'] : ['weight'])], [y], y, {
        kernel_shape: node.kernel,
        strides: node.stride,
        dilations: node.dilation,
        group: node.groups,
        pads: [...node.padding.begin, ...node.padding.end],
      });
      return;
    }
    case 'conv_transpose':
      b.addNode('ConvTranspose', [x, ...params(node.bias ? ['weight', 'bias'] : ['weight'])], [y], y, {
        kernel_shape: node.kernel,
        strides: node.stride,
        dilations: node.dilation,
        group: node.groups,
        pads: [...node.padding.begin, ...node.padding.end],
        output_padding: node.outputPadding,
      });
      return;
    case 'maxpool':
    case 'avgpool': {
      if (node.padding === 'same-dynamic') throw new Error('reference: same-dynamic is not written here');
      const attributes: Record<string, number | number[]> = {
        kernel_shape: [...node.kernel],
        strides: [...node.stride],
        pads: [...node.padding.begin, ...node.padding.end],
        ceil_mode: node.ceilMode ? 1 : 0,
      };
      if (node.op === 'avgpool') attributes['count_include_pad'] = node.countIncludePad ? 1 : 0;
      b.addNode(node.op === 'maxpool' ? 'MaxPool' : 'AveragePool', [x], [y], y, attributes);
      return;
    }
    case 'global_avgpool':
      b.addNode('GlobalAveragePool', [x], [y], y);
      return;
    case 'global_maxpool':
      b.addNode('GlobalMaxPool', [x], [y], y);
      return;
    case 'batchnorm':
      b.addNode('BatchNormalization', [x, ...params(['weight', 'bias', 'running_mean', 'running_var'])], [y], y, {
        epsilon: attr.float(node.epsilon),
        momentum: attr.float(node.momentum),
      });
      return;
    case 'activation': {
      const fn = node.fn;
      switch (fn.kind) {
        case 'relu':
          b.addNode('Relu', [x], [y], y);
          return;
        case 'relu6':
          b.addNode('Clip', [x, constant(b, `${y}/min`, [0]), constant(b, `${y}/max`, [6])], [y], y);
          return;
        case 'leaky_relu':
          b.addNode('LeakyRelu', [x], [y], y, { alpha: attr.float(fn.alpha) });
          return;
        case 'elu':
          b.addNode('Elu', [x], [y], y, { alpha: attr.float(fn.alpha) });
          return;
        case 'sigmoid':
          b.addNode('Sigmoid', [x], [y], y);
          return;
        case 'hard_sigmoid':
          b.addNode('HardSigmoid', [x], [y], y, { alpha: attr.float(fn.alpha), beta: attr.float(fn.beta) });
          return;
        case 'tanh':
          b.addNode('Tanh', [x], [y], y);
          return;
        case 'swish':
          b.addNode('Sigmoid', [x], [`${y}/sigmoid`], `${y}/sigmoid`);
          b.addNode('Mul', [x, `${y}/sigmoid`], [y], y);
          return;
        case 'hard_swish':
          b.addNode('HardSwish', [x], [y], y);
          return;
        case 'gelu':
          b.addNode('Div', [x, constant(b, `${y}/sqrt2`, [Math.SQRT2])], [`${y}/div`], `${y}/div`);
          b.addNode('Erf', [`${y}/div`], [`${y}/erf`], `${y}/erf`);
          b.addNode('Add', [`${y}/erf`, constant(b, `${y}/one`, [1])], [`${y}/add`], `${y}/add`);
          b.addNode('Mul', [x, `${y}/add`], [`${y}/mul`], `${y}/mul`);
          b.addNode('Mul', [`${y}/mul`, constant(b, `${y}/half`, [0.5])], [y], y);
          return;
        case 'softmax':
          b.addNode('Softmax', [x], [y], y, { axis: fn.axis });
          return;
      }
      return;
    }
    case 'dropout':
      b.addNode('Identity', [x], [y], y);
      return;
    case 'add':
    case 'mul': {
      const opType = node.op === 'add' ? 'Add' : 'Mul';
      let current = node.inputs[0]!;
      node.inputs.slice(1).forEach((input, i) => {
        const out = i === node.inputs.length - 2 ? y : `${y}/${i}`;
        b.addNode(opType, [current, input], [out], out);
        current = out;
      });
      return;
    }
    case 'concat':
      b.addNode('Concat', [...node.inputs], [y], y, { axis: node.axis });
      return;
    case 'upsample': {
      const scales = `${y}/scales`;
      b.addInitializer(scales, [node.scale.length + 2], new Float32Array([1, 1, ...node.scale]));
      const attributes: Record<string, string> =
        node.mode === 'nearest'
          ? { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }
          : { mode: 'linear', coordinate_transformation_mode: 'half_pixel' };
      b.addNode('Resize', [x, '', scales], [y], y, attributes);
      return;
    }
    case 'flatten':
      b.addNode('Flatten', [x], [y], y, { axis: 1 });
      return;
    case 'reshape': {
      const shape = `${y}/shape`;
      // the node's output shape is [N, …target] with −1 resolved
      b.addInitializer(shape, [node.shape.length], BigInt64Array.from([0, ...node.shape.slice(1).map((d) => (typeof d === 'number' ? d : -1))].map(BigInt)));
      b.addNode('Reshape', [x, shape], [y], y);
      return;
    }
    case 'dense':
      b.addNode('Gemm', [x, ...params(node.bias ? ['weight', 'bias'] : ['weight'])], [y], y, { transB: 1 });
      return;
    case 'pad': {
      const pads = `${y}/pads`;
      b.addInitializer(pads, [2 * (node.padding.begin.length + 2)], BigInt64Array.from([0, 0, ...node.padding.begin, 0, 0, ...node.padding.end].map(BigInt)));
      const inputs = [x, pads];
      if (node.mode === 'constant') inputs.push(constant(b, `${y}/value`, [node.value]));
      b.addNode('Pad', inputs, [y], y, { mode: node.mode });
      return;
    }
  }
}
