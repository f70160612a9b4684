/**
 * Tests of the example models in specs/: each elaborates without diagnostics, reproduces the published
 * parameter count (learnable parameters, as PyTorch and Keras count them: batch-norm running statistics
 * excluded), and has the expected output shape; ResNets match torchvision's published MACs; the TF-slim
 * networks match the receptive fields published by Araujo, Norris & Sim (Distill 2019).
 *
 * The asserts written in the specs are also evaluated here, against reference analyses computed in this file
 * from node shapes (parameters, MACs of convolutions and dense layers, receptive fields by the Distill
 * recurrences), so a spec cannot state a false invariant.
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderDiagnostic } from '../../src/diagnostics.js';
import { elaborate, type AssertAnalyses, type ElaborateOptions, type ElaborateResult } from '../../src/elaborate/elaborate.js';
import { dimToString } from '../../src/ir/dims.js';
import { effectiveKernel, type Graph, type Node, type Shape } from '../../src/ir/graph.js';
import { graphParameters, parameterSize } from '../../src/ir/params.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SPECS = path.join(ROOT, 'specs');

function load(relative: string, options: ElaborateOptions = {}): ElaborateResult & { graph: Graph } {
  const result = elaborate(path.join(SPECS, relative), options);
  const rendered = result.diagnostics.map((d) => renderDiagnostic(d, result.sources));
  expect(rendered, `diagnostics of ${relative}`).toEqual([]);
  expect(result.graph).toBeDefined();
  return result as ElaborateResult & { graph: Graph };
}

function inScope(node: Node, target: string | undefined): boolean {
  return target === undefined || node.name === target || node.name.startsWith(`${target}.`);
}

/** Learnable parameters (weights, biases, batch-norm scale and shift) of the nodes a target selects. */
function learnableParams(nodes: readonly Node[], target?: string): number {
  return graphParameters(nodes.filter((n) => inScope(n, target)))
    .filter((p) => p.learnable)
    .reduce((sum, p) => sum + parameterSize(p), 0);
}

const product = (values: readonly number[]): number => values.reduce((a, b) => a * b, 1);

function knownElements(shape: Shape): number {
  const sizes = shape.slice(1);
  if (!sizes.every((d): d is number => typeof d === 'number')) return Number.NaN;
  return product(sizes);
}

/** Multiply-accumulates per example: conv = output elements × (in/groups) × ∏kernel; dense = in × out. */
function macs(graph: Graph, target?: string): number {
  const shapes = new Map<string, Shape>(graph.inputs.map((i) => [i.name, i.shape]));
  for (const node of graph.nodes) shapes.set(node.name, node.shape);
  let total = 0;
  for (const node of graph.nodes) {
    if (!inScope(node, target)) continue;
    if (node.op === 'conv') total += knownElements(node.shape) * (node.inChannels / node.groups) * product(node.kernel);
    else if (node.op === 'conv_transpose') total += knownElements(shapes.get(node.inputs[0]!)!) * (node.filters / node.groups) * product(node.kernel);
    else if (node.op === 'dense') total += node.inFeatures * node.units;
  }
  return total;
}

interface Field {
  readonly size: number[];
  readonly stride: number[];
  readonly padding: number[];
}

/**
 * Receptive fields of every tensor, forward from the inputs (Distill 2019): a window of kernel k (dilated
 * extent k'), stride s and begin padding p maps (r, S, P) to (r + (k' − 1)·S, S·s, P + p·S). Element-wise ops
 * and concatenation take the input with the largest field; global pooling spans the whole map.
 */
function receptiveFields(graph: Graph): Map<string, Field> {
  const fields = new Map<string, Field>();
  const shapes = new Map<string, Shape>();
  for (const input of graph.inputs) {
    const rank = input.shape.length - 2;
    fields.set(input.name, { size: new Array(rank).fill(1), stride: new Array(rank).fill(1), padding: new Array(rank).fill(0) });
    shapes.set(input.name, input.shape);
  }
  for (const node of graph.nodes) {
    shapes.set(node.name, node.shape);
    const inputs = node.inputs.map((i) => fields.get(i)!);
    const first = inputs[0]!;
    let field: Field;
    if (node.op === 'conv' || node.op === 'maxpool' || node.op === 'avgpool') {
      const dilation = node.op === 'conv' ? node.dilation : node.kernel.map(() => 1);
      const begin = node.padding === 'same-dynamic' ? node.kernel.map(() => Number.NaN) : node.padding.begin;
      field = {
        size: first.size.map((r, i) => r + (effectiveKernel(node.kernel[i]!, dilation[i]!) - 1) * first.stride[i]!),
        stride: first.stride.map((s, i) => s * node.stride[i]!),
        padding: first.padding.map((p, i) => p + begin[i]! * first.stride[i]!),
      };
    } else if (node.op === 'global_avgpool' || node.op === 'global_maxpool') {
      const spatial = shapes.get(node.inputs[0]!)!.slice(2);
      field = { ...first, size: first.size.map((r, i) => r + ((spatial[i] as number) - 1) * first.stride[i]!) };
    } else if (inputs.length > 1) {
      field = inputs.reduce((best, f) => (f.size[0]! > best.size[0]! ? f : best));
    } else {
      field = first;
    }
    fields.set(node.name, field);
  }
  return fields;
}

function analyses(graph: Graph): AssertAnalyses {
  const fields = receptiveFields(graph);
  const inputSizes = graph.inputs[0]!.shape.slice(2);
  return {
    receptiveField(tensor) {
      const field = fields.get(tensor);
      if (!field) return undefined;
      return { ...field, covers: field.size.every((r, i) => typeof inputSizes[i] === 'number' && r >= (inputSizes[i] as number)) };
    },
    params: (target) => learnableParams(graph.nodes, target),
    macs: (target) => macs(graph, target),
    flops: (target) => 2 * macs(graph, target),
  };
}

/** Evaluates every `assert` of a spec against the reference analyses; returns the rendered failures. */
function failedAsserts(result: ElaborateResult & { graph: Graph }): string[] {
  const evaluator = result.evaluator!;
  const before = evaluator.bag.items.length;
  const reference = analyses(result.graph);
  for (const pending of result.asserts) evaluator.evaluateAssert(pending, reference);
  return evaluator.bag.items.slice(before).map((d) => renderDiagnostic(d, result.sources));
}

function outputShape(graph: Graph, index = 0): string[] {
  const output = graph.outputs[index]!;
  const node = graph.nodes.find((n) => n.name === output.value)!;
  return node.shape.map(dimToString);
}

function tensorOf(result: ElaborateResult & { graph: Graph }, topLevel: string): Node {
  // A top-level value is the last node made in its scope.
  const node = [...result.graph.nodes].reverse().find((n) => inScope(n, topLevel));
  expect(node, `a node in scope ${topLevel}`).toBeDefined();
  return node!;
}

interface Expected {
  readonly file: string;
  /** Learnable parameters: published where a source is given, otherwise computed by hand from the layer list. */
  readonly params: number;
  readonly output: string[];
  readonly macs?: number;
}

const EXPECTED: readonly Expected[] = [
  // Caffe bvlc_alexnet
  { file: 'alexnet.cnn', params: 60_965_224, output: ['N', '1000'] },
  // torchvision vgg16: 138,357,544 params, 15.47 GFLOPS (MACs)
  { file: 'vgg16.cnn', params: 138_357_544, output: ['N', '1000'], macs: 15_470_264_320 },
  // torchvision resnet18 / resnet50 / resnext50_32x4d
  { file: 'resnet18.cnn', params: 11_689_512, output: ['N', '1000'], macs: 1_814_073_344 },
  { file: 'resnet50.cnn', params: 25_557_032, output: ['N', '1000'], macs: 4_089_184_256 },
  { file: 'resnext_stage.cnn', params: 25_028_904, output: ['N', '1000'], macs: 4_230_479_872 },
  // keras.applications.MobileNet (trainable params; 569 M mult-adds in the paper)
  { file: 'mobilenet_v1.cnn', params: 4_231_976, output: ['N', '1000'], macs: 568_740_352 },
  // torchvision mobilenet_v2 (300 M mult-adds in the paper)
  { file: 'mobilenet_v2.cnn', params: 3_504_872, output: ['N', '1000'], macs: 300_774_272 },
  // entry flow: stem 19,488 + blocks 35,264 / 136,064 / 915,944 + dense 729,000
  { file: 'xception_entry.cnn', params: 1_835_760, output: ['N', '1000'] },
  // ResNet-18 trunk 11,176,512 + ASPP 4,132,224 + head conv 590,336 + classifier 5,397
  { file: 'deeplab_aspp.cnn', params: 15_904_085, output: ['N', '21', '512', '512'] },
  // 100 maps × 300 × (3 + 4 + 5) + 300 biases; dense 300 × 2 + 2
  { file: 'textcnn.cnn', params: 360_902, output: ['N', '2'] },
  // convs 27,655,936; fc6 33,558,528; fc7 16,781,312; fc8 (487 classes) 1,995,239
  { file: 'c3d.cnn', params: 79_991_015, output: ['N', '487'] },
  { file: 'fashion.cnn', params: 96_554, output: ['N', '10'] },
  { file: 'fashion_resnet.cnn', params: 174_970, output: ['N', '10'] },
  // TF-slim: alexnet_v2 by hand from its layer list; vgg_16 and resnet_v1_50 as their torchvision twins
  { file: 'slim/alexnet_v2.cnn', params: 50_303_912, output: ['N', '1000'] },
  { file: 'slim/vgg_16.cnn', params: 138_357_544, output: ['N', '1000'] },
  { file: 'slim/resnet_v1_50.cnn', params: 25_557_032, output: ['N', '1000'] },
];

describe('example specs', () => {
  it('cover every .cnn model file under specs/', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (entry.name !== 'lib') walk(full);
        } else if (entry.name.endsWith('.cnn')) files.push(path.relative(SPECS, full).split(path.sep).join('/'));
      }
    };
    walk(SPECS);
    expect(files.sort()).toEqual(EXPECTED.map((e) => e.file).sort());
  });

  for (const expected of EXPECTED) {
    describe(expected.file, () => {
      it('elaborates without diagnostics and has the expected parameters and output shape', () => {
        const result = load(expected.file);
        expect(learnableParams(result.graph.nodes)).toBe(expected.params);
        expect(result.graph.outputs).toHaveLength(1);
        expect(outputShape(result.graph)).toEqual(expected.output);
        if (expected.macs !== undefined) expect(macs(result.graph)).toBe(expected.macs);
      });

      it('holds every assert it states', () => {
        const result = load(expected.file);
        expect(result.asserts.length).toBeGreaterThan(0);
        expect(failedAsserts(result)).toEqual([]);
      });
    });
  }
});

describe('receptive fields of the TF-slim networks (Araujo et al. 2019)', () => {
  const cases = [
    { file: 'slim/alexnet_v2.cnn', tensor: 'features', size: 195, stride: 32, padding: 64 },
    { file: 'slim/vgg_16.cnn', tensor: 'features', size: 212, stride: 32, padding: 90 },
    { file: 'slim/resnet_v1_50.cnn', tensor: 'block4', size: 483, stride: 32, padding: 239 },
  ];
  for (const c of cases) {
    it(`${c.file}: ${c.size} / ${c.stride} / ${c.padding} at ${c.tensor}`, () => {
      const result = load(c.file);
      const field = receptiveFields(result.graph).get(tensorOf(result, c.tensor).name)!;
      expect(field).toEqual({ size: [c.size, c.size], stride: [c.stride, c.stride], padding: [c.padding, c.padding] });
    });
  }

  it('resnet_v1_50 subsamples identity shortcuts with a 1×1 max pool in the last unit of blocks 1–3', () => {
    const result = load('slim/resnet_v1_50.cnn');
    const pools = result.graph.nodes.filter((n) => n.op === 'maxpool' && n.kernel[0] === 1);
    expect(pools.map((p) => p.name)).toEqual(['block1.stack1.bottleneck3.maxpool1', 'block2.stack1.bottleneck4.maxpool1', 'block3.stack1.bottleneck6.maxpool1']);
  });
});

describe('details of the reproductions', () => {
  it('AlexNet splits conv2, conv4 and conv5 into two groups', () => {
    const result = load('alexnet.cnn');
    const convs = result.graph.nodes.filter((n) => n.op === 'conv');
    expect(convs.map((c) => (c.op === 'conv' ? c.groups : 0))).toEqual([1, 2, 1, 2, 2]);
  });

  it('ResNet-50 v1.5 puts the stride in the 3×3 conv', () => {
    const result = load('resnet50.cnn');
    const strided = result.graph.nodes.filter((n) => n.op === 'conv' && n.stride[0] === 2 && n.kernel[0] === 3).map((n) => n.name);
    expect(strided).toEqual(['layer2.bottleneck1.conv2', 'layer3.bottleneck1.conv2', 'layer4.bottleneck1.conv2']);
  });

  it('ResNeXt splits every 3×3 conv into 32 groups', () => {
    const result = load('resnext_stage.cnn');
    const threes = result.graph.nodes.filter((n) => n.op === 'conv' && n.kernel[0] === 3);
    expect(threes).toHaveLength(16);
    for (const conv of threes) expect(conv.op === 'conv' && conv.groups).toBe(32);
  });

  it('MobileNet v1 scales with alpha as keras.applications does', () => {
    // Keras's published totals 2,601,976 (alpha 0.75) and 1,342,536 (alpha 0.5) less the BN moving statistics
    expect(learnableParams(load('mobilenet_v1.cnn', { params: { alpha: 0.75 } }).graph.nodes)).toBe(2_585_560);
    expect(learnableParams(load('mobilenet_v1.cnn', { params: { alpha: 0.5 } }).graph.nodes)).toBe(1_331_592);
  });

  it('MobileNet v2 adds residuals only where stride is 1 and channels are kept', () => {
    const result = load('mobilenet_v2.cnn');
    expect(result.graph.nodes.filter((n) => n.op === 'add')).toHaveLength(10);
    const widths = load('mobilenet_v2.cnn', { params: { alpha: 0.5 } });
    expect(tensorOf(widths, 'features').shape.map(dimToString)).toEqual(['N', '1280', '7', '7']);
  });

  it('the DeepLab head has four ASPP branches plus image pooling, concatenated to 5 × 256 channels', () => {
    const result = load('deeplab_aspp.cnn');
    const concat = result.graph.nodes.find((n) => n.op === 'concat')!;
    expect(concat.inputs).toHaveLength(5);
    expect(concat.shape.map(dimToString)).toEqual(['N', '1280', '32', '32']);
    const dilations = result.graph.nodes.filter((n) => n.op === 'conv' && n.name.startsWith('head.')).map((n) => (n.op === 'conv' ? n.dilation[0] : 0));
    expect(dilations).toEqual([1, 6, 12, 18, 1, 1, 1, 1]);
  });

  it('TextCNN takes sequences of any length', () => {
    const result = load('textcnn.cnn', { inputShapes: { text: ['N', 300, 57] } });
    expect(outputShape(result.graph)).toEqual(['N', '2']);
    expect(result.graph.nodes.filter((n) => n.op === 'conv').map((n) => n.shape.map(dimToString))).toEqual([
      ['N', '100', '55'],
      ['N', '100', '54'],
      ['N', '100', '53'],
    ]);
  });

  it('C3D keeps 16 frames through pool1 and ends with 8192 features', () => {
    const result = load('c3d.cnn');
    const pools = result.graph.nodes.filter((n) => n.op === 'maxpool').map((n) => n.shape.map(dimToString).slice(2).join('×'));
    expect(pools).toEqual(['16×56×56', '8×28×28', '4×14×14', '2×7×7', '1×4×4']);
  });

  it('the Fashion-MNIST models carry their training settings', () => {
    for (const file of ['fashion.cnn', 'fashion_resnet.cnn']) {
      const { training } = load(file).graph;
      expect(training).toMatchObject({ data: 'fashion-mnist', loss: 'cross_entropy', batch: 64, seed: 42, optimizer: { call: 'adam', args: { lr: 1e-3 } } });
    }
  });
});

describe('the block library specs/lib/blocks.cnn', () => {
  it('is imported by several specs', () => {
    const importers = EXPECTED.map((e) => e.file).filter((file) => [...load(file).sources.keys()].some((p) => p.endsWith(path.join('lib', 'blocks.cnn'))));
    expect(importers.length).toBeGreaterThanOrEqual(2);
  });

  it('provides conv_bn_act and squeeze-and-excitation', () => {
    const text = `
      import { conv_bn_act, se } from "lib/blocks.cnn"
      model Probe {
        input x: f32[N, 3, 32, 32]
        y = x -> conv_bn_act(64, stride: 2) -> se(16) -> conv_bn_act(64, 1, act: "linear")
        output y
      }`;
    const result = elaborate(path.join(SPECS, 'probe.cnn'), { text });
    expect(result.diagnostics.map((d) => renderDiagnostic(d, result.sources))).toEqual([]);
    const graph = result.graph!;
    // conv 3·64·9 + bn 128; se: 64→4 (+4) and 4→64 (+64); conv 64·64 + bn 128
    expect(learnableParams(graph.nodes)).toBe(1728 + 128 + 260 + 320 + 4096 + 128);
    expect(outputShape(graph)).toEqual(['N', '64', '16', '16']);
    expect(graph.nodes.filter((n) => n.op === 'activation').map((n) => (n.op === 'activation' ? n.fn.kind : ''))).toEqual(['relu', 'relu', 'sigmoid']);
    expect(graph.nodes.some((n) => n.op === 'mul')).toBe(true);
  });
});
