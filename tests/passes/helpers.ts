/**
 * Helpers for the pass tests: compile a spec from text, run one pass through the manager with the verifier on,
 * random inputs for the reference interpreter, and the golden before/after text.
 */
import { expect } from 'vitest';
import { specGraph } from '../../src/testing.js';
import type { Graph } from '../../src/ir/graph.js';
import { graphParameters, parameterSize } from '../../src/ir/params.js';
import { printGraph } from '../../src/ir/print.js';
import { randomWeights, type Weights } from '../../src/ir/weights.js';
import '../../src/passes/index.js';
import { getPass, runPasses, type PassResult } from '../../src/passes/manager.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import type { Tensor } from './reference.js';

export function compile(text: string, file = 'spec.cnn'): Graph {
  return specGraph(text, { file });
}

export interface PassRun {
  readonly graph: Graph;
  readonly weights: Weights | undefined;
  /** The pass's own result (applied and refused lines without the pass prefix). */
  readonly result: PassResult;
  /** The lines the manager reports (`fold-bn: …`). */
  readonly messages: string[];
  readonly changed: boolean;
}

/**
 * Runs one registered pass through `runPasses` with the verifier on (it throws naming the pass if the IR is
 * invalid), and once directly to see its own result.
 */
export function runPass(name: string, graph: Graph, weights?: Weights, options: Record<string, unknown> = {}): PassRun {
  const pass = getPass(name);
  if (!pass) throw new Error(`no pass '${name}'`);
  const pipeline = runPasses(graph, weights, [pass], { verify: true, options });
  const result = pass.run(graph, { weights, options });
  expect(result.graph === pipeline.graph || printGraph(result.graph) === printGraph(pipeline.graph)).toBe(true);
  return {
    graph: pipeline.graph,
    weights: pipeline.weights,
    result,
    messages: pipeline.diagnostics.map((d) => d.message),
    changed: pipeline.timings[0]!.changed,
  };
}

/** Normal random values for every graph input, the symbolic batch taken as `batch`. */
export function randomInputs(graph: Graph, seed: number, batch = 2): Map<string, Tensor> {
  const random = createMulberry32(seed);
  return new Map(
    graph.inputs.map((input) => {
      const shape = input.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : Number.NaN));
      if (shape.some(Number.isNaN)) throw new Error(`input '${input.name}' has a symbolic size other than the batch`);
      const data = Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => normalSample(random));
      return [input.name, { shape, data }];
    }),
  );
}

/** Graph nodes without spans and the file name, for comparing a graph with its printed-and-reparsed copy. */
export function structure(graph: Graph): unknown {
  const strip = (value: unknown): unknown => JSON.parse(JSON.stringify(value, (key, v) => (key === 'span' || key === 'source' ? undefined : v)));
  return strip({ ...graph, name: graph.name });
}

export function parameterCount(graph: Graph): number {
  return graphParameters(graph.nodes).reduce((sum, p) => sum + parameterSize(p), 0);
}

/** The golden text: the spec's IR before, the pass's report, the IR after. */
export function goldenText(passName: string, before: Graph, run: PassRun): string {
  return [
    printGraph(before, `before ${passName}`),
    `// report\n${run.messages.map((m) => `//   ${m}`).join('\n') || '//   (nothing)'}`,
    '',
    printGraph(run.graph, `after ${passName}`),
  ].join('\n');
}

export function weightsFor(graph: Graph, seed = 1): Weights {
  return randomWeights(graph, seed);
}

/** Spans and names of nodes that survive in `after`, for the "kept names and spans" checks. */
export function keptNodesUnchangedIn(before: Graph, after: Graph): void {
  const byName = new Map(before.nodes.map((n) => [n.name, n]));
  for (const node of after.nodes) {
    const original = byName.get(node.name);
    expect(original, `node '${node.name}' appeared from nowhere`).toBeDefined();
    expect(node.span).toEqual(original!.span);
    expect(node.frozen).toBe(original!.frozen);
    expect(node.regularizers).toEqual(original!.regularizers);
  }
  expect(after.outputs.map((o) => o.name)).toEqual(before.outputs.map((o) => o.name));
  expect(after.outputs.map((o) => o.span)).toEqual(before.outputs.map((o) => o.span));
}
