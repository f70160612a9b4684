/**
 * Equal initializers stored once (`shareEqualInitializers`, on by default in `emitOnnx`): an untrained model whose
 * batch norms were folded has equal all-zero biases; the file keeps one and names the others through Identity
 * nodes (unnamed; their outputs carry the names), as torch.onnx does. The official checker accepts it, ONNX Runtime computes what the
 * unshared file computes, every weight is still readable by name, the file is smaller, and the int8 path and
 * small constants keep their own initializers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeModel } from '../../src/codegen/onnx-model.js';
import { checkOnnxWithOfficialChecker } from '../../src/codegen/onnx-checker.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { initializeWeights } from '../../src/ir/weights.js';
import { resolvePassList, runPasses } from '../../src/passes/manager.js';
import '../../src/passes/index.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { readTensorFile } from '../../src/runtime/weights-file.js';
import { compileSpec } from '../../src/testing.js';

const graph = compileSpec(`model Twins {
  input image: f32[N, 3, 16, 16]
  a = image -> conv(64, 3, pad: 1, bias: false) -> bn -> relu
  b = a -> conv(64, 3, pad: 1, bias: false) -> bn -> relu
  c = b -> conv(64, 3, pad: 1, bias: false) -> bn
  logits = relu(a + c) -> globalavgpool -> flatten -> dense(10)
  output logits
}`).graph!;
// the inference export of an untrained model: folding identity batch norms gives each conv an all-zero bias
const folded = runPasses(graph, initializeWeights(graph, 3), resolvePassList('eliminate-dropout,fold-bn').passes, { verify: true });

describe('equal initializers stored once', () => {
  const shared = emitOnnx(folded.graph, folded.weights!);
  const unshared = emitOnnx(folded.graph, folded.weights!, { shareEqualInitializers: false });

  it('keeps one of the equal biases and names the others through Identity nodes that come first', () => {
    expect(shared.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const model = decodeModel(shared.bytes);
    const initializers = model.graph.initializer.map((t) => t.name);
    expect(initializers).toContain('a.conv1.bias');
    expect(initializers).not.toContain('b.conv1.bias');
    expect(initializers).not.toContain('c.conv1.bias');
    const aliases = model.graph.node.filter((n) => n.opType === 'Identity');
    expect(aliases.map((n) => [n.name, n.input, n.output])).toEqual([
      ['', ['a.conv1.bias'], ['b.conv1.bias']],
      ['', ['a.conv1.bias'], ['c.conv1.bias']],
    ]);
    expect(model.graph.node.slice(0, 2)).toEqual(aliases);
    // the weights differ, so they stay; so does the 10-element dense bias (below the size worth sharing)
    expect(initializers).toEqual(expect.arrayContaining(['a.conv1.weight', 'b.conv1.weight', 'c.conv1.weight', 'logits.dense1.bias']));
    expect(shared.bytes.length).toBeLessThan(unshared.bytes.length - 2 * 64 * 4 + 200);
    expect(decodeModel(unshared.bytes).graph.node.some((n) => n.opType === 'Identity')).toBe(false);
  });

  it('passes the official checker, and ONNX Runtime computes what the unshared file computes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shared-init-'));
    try {
      const file = path.join(dir, 'twins.onnx');
      fs.writeFileSync(file, shared.bytes);
      const verdict = await checkOnnxWithOfficialChecker(file);
      if (verdict.ok !== null) expect(verdict.ok, 'message' in verdict ? verdict.message : '').toBe(true);
      else if (process.env['CI']) throw new Error('the official checker is required under CI');
      const data = Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i * 0.1));
      const outputs = [];
      for (const bytes of [shared.bytes, unshared.bytes]) {
        const engine = await OrtEngine.create(bytes);
        outputs.push((await engine.run({ image: { data, dims: [2, 3, 16, 16] } }))['logits']!.data);
        await engine.dispose();
      }
      expect(outputs[0]).toEqual(outputs[1]);
      // every weight is still there by name for a loader
      const read = readTensorFile(file).tensors;
      for (const [name, tensor] of folded.weights!) expect(read.get(name)?.data, name).toEqual(tensor.data);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
