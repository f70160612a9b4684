/**
 * How imported layers are named and how the imported spec is printed:
 *   - torch.onnx scope paths give PyTorch's module paths (containers repeat their parent's segment);
 *   - ops in a module's own forward get the op kind after the module path; a leaf module's one op takes its name;
 *   - the printer folds repeated scopes into parameterised blocks, keeps single scopes flat, and the folded text
 *     elaborates back to exactly the graph (`differenceFromGraph` finds any difference).
 */
import { describe, expect, it } from 'vitest';
import { OnnxGraphBuilder } from '../../src/codegen/onnx-model.js';
import { differenceFromGraph, printImportedSpec } from '../../src/import/print-blocks.js';
import { importOnnx, modulePath, sanitizeIdentifier } from '../../src/import/onnx-import.js';
import { compileSpec } from '../../src/testing.js';

describe('names of imported layers', () => {
  it('module paths from torch.onnx scopes', () => {
    expect(modulePath(['conv1'])).toBe('conv1');
    expect(modulePath(['layer1', 'layer1.0', 'conv1'])).toBe('layer1.0.conv1');
    expect(modulePath(['layer2', 'layer2.0', 'downsample', 'downsample.0'])).toBe('layer2.0.downsample.0');
    expect(modulePath(['features', 'features.1', 'conv', 'conv.0', 'conv.0.0'])).toBe('features.1.conv.0.0');
    expect(modulePath(['features', 'features.0', 'features.0.0'])).toBe('features.0.0');
  });

  it('identifiers avoid keywords', () => {
    expect(sanitizeIdentifier('input.1')).toBe('input_1');
    expect(sanitizeIdentifier('input')).toBe('input_');
    expect(sanitizeIdentifier('output')).toBe('output_');
    expect(sanitizeIdentifier('0')).toBe('t_0');
  });

  it('a leaf module’s op takes the module’s name; ops of a module’s own forward add their kind', () => {
    const builder = new OnnxGraphBuilder();
    builder.addInput('x', 'float32', ['N', 4, 8, 8]);
    builder.addInitializer('onnx::Conv_1', [4, 4, 3, 3], new Float32Array(144).fill(0.01));
    builder.addInitializer('onnx::Conv_2', [4], new Float32Array(4));
    builder.addNode('Conv', ['x', 'onnx::Conv_1', 'onnx::Conv_2'], ['c'], '/layer1/layer1.0/conv1/Conv', { pads: [1, 1, 1, 1] });
    builder.addNode('Relu', ['c'], ['r'], '/layer1/layer1.0/relu/Relu');
    builder.addNode('Add', ['r', 'x'], ['a'], '/layer1/layer1.0/Add');
    builder.addNode('Relu', ['a'], ['r2'], '/layer1/layer1.0/relu_1/Relu');
    builder.addNode('GlobalAveragePool', ['r2'], ['p'], '/avgpool/GlobalAveragePool');
    builder.addNode('Flatten', ['p'], ['y'], '/Flatten');
    builder.addOutput('y', 'float32', ['N', 4]);
    const imported = importOnnx(builder.build({ opset: 13, producerName: 'pytorch', producerVersion: '1.13.0', graphName: 'torch_jit' }), { defaultName: 'Tiny' });
    expect(imported.diagnostics).toEqual([]);
    expect(imported.graph!.name).toBe('Tiny');
    expect(imported.graph!.nodes.map((n) => n.name)).toEqual(['layer1.0.conv1', 'layer1.0.relu', 'layer1.0.add', 'layer1.0.relu_1', 'avgpool', 'flatten1']);
    expect([...imported.weights.keys()]).toEqual(['layer1.0.conv1.weight', 'layer1.0.conv1.bias']);
    expect(imported.producer).toBe('pytorch 1.13.0');
    expect(imported.opset).toBe(13);
  });
});

describe('printing an imported graph', () => {
  const repeated = compileSpec(`model Net {
  input image: f32[N, 3, 16, 16]
  block unit(c: int, stride: int = 1) (x) {
    return x -> conv(c, 3, stride: stride, pad: 1) -> bn -> relu
  }
  stem = image -> conv(8, 3, pad: 1)
  stage1 = stem -> unit(8) -> unit(16, stride: 2) -> unit(32, stride: 2)
  logits = stage1 -> globalavgpool -> flatten -> dense(10)
  output logits
}`).graph!;

  it('folds scopes with the same structure into one block; differing numbers become parameters', () => {
    const printed = printImportedSpec(repeated, { header: 'a test' });
    expect(printed.fallback).toBeUndefined();
    expect(printed.blocks).toEqual([{ name: 'unit', parameters: ['c', 'stride'], instances: ['stage1.unit1', 'stage1.unit2', 'stage1.unit3'] }]);
    expect(printed.text).toMatch(/^\/\/ a test\nblock unit\(c: int, stride: int\) \(x\) \{\n {2}conv1 = x -> conv\(c, \[3, 3\], stride: \[stride, stride\], pad: \[\[1, 1\], \[1, 1\]\]/);
    expect(printed.text).toContain('stage1_unit2 = stage1_unit1 -> unit(16, 2) as "stage1.unit2"');
    expect(differenceFromGraph(printed.text, repeated)).toBeUndefined();
  });

  it('keeps the flat form when asked, and when nothing repeats', () => {
    expect(printImportedSpec(repeated, { blocks: false }).blocks).toEqual([]);
    const single = compileSpec('model One {\n  input x: f32[N, 3, 8, 8]\n  y = x -> conv(4, 3) -> relu\n  output y\n}').graph!;
    const printed = printImportedSpec(single);
    expect(printed.blocks).toEqual([]);
    expect(printed.text).not.toMatch(/^block/m);
    expect(differenceFromGraph(printed.text, single)).toBeUndefined();
  });

  it('differenceFromGraph names the first layer that differs', () => {
    const other = printImportedSpec(repeated).text.replace('unit(16, 2)', 'unit(16, 1)');
    expect(differenceFromGraph(other, repeated)).toMatch(/layer \d+ 'stage1\.unit2\.conv1' differs/);
    expect(differenceFromGraph('model Broken {', repeated)).toMatch(/does not elaborate/);
  });
});
