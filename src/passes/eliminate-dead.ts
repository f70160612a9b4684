/**
 * eliminate-dead: removes nodes whose value reaches no graph output, and their weights.
 *
 * Liveness runs backwards from the outputs over `inputs`; anything not reached is removed. Graph inputs stay
 * (they are the model's interface, even when unused). Guarantee: outputs are bit-identical, in training too.
 */
import type { Graph } from '../ir/graph.js';
import { GraphEditor, editorResult } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

/** Names of the nodes some graph output depends on. */
export function liveNodes(graph: Graph): Set<string> {
  const live = new Set<string>(graph.outputs.map((o) => o.value));
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (live.has(node.name)) for (const input of node.inputs) live.add(input);
  }
  return live;
}

export function eliminateDead(graph: Graph, context: PassContext): PassResult {
  const live = liveNodes(graph);
  const editor = new GraphEditor(graph, context.weights);
  const applied: string[] = [];
  // Back to front, so a dead node's dead readers are gone before it is.
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (live.has(node.name)) continue;
    editor.remove(node.name);
    applied.push(`removed ${node.name} (${node.op}): it reaches no output`);
  }
  applied.reverse();
  return editorResult(editor, applied, []);
}

export const eliminateDeadPass: Pass = {
  name: 'eliminate-dead',
  description: 'removes nodes (and their weights) that reach no graph output',
  needsWeights: false,
  inferenceOnly: false,
  tolerance: 0,
  run: eliminateDead,
};
