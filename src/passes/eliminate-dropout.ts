/**
 * eliminate-dropout: dropout is the identity at inference, so every dropout node is removed.
 *
 *   y = dropout(x, rate) ; z = f(y)   →   z = f(x)
 *
 * Readers of the dropout read its input instead; a graph output that named the dropout names its input and keeps
 * the user's output name. Every other node keeps its name, span and attributes. Spatial dropout is removed the
 * same way. Inference only: training needs the dropout (its rate is training metadata).
 * Guarantee: outputs are bit-identical at inference.
 */
import type { Graph } from '../ir/graph.js';
import { GraphEditor, editorResult } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

export function eliminateDropout(graph: Graph, context: PassContext): PassResult {
  const editor = new GraphEditor(graph, context.weights);
  const applied: string[] = [];
  for (const node of graph.nodes) {
    if (node.op !== 'dropout') continue;
    // An earlier removal may have rewired it (dropout -> dropout).
    const input = editor.node(node.name)!.inputs[0]!;
    editor.remove(node.name, input);
    applied.push(`removed ${node.name} (${node.spatial ? 'spatial dropout' : 'dropout'} ${node.rate}); its readers read ${input}`);
  }
  return editorResult(editor, applied, []);
}

export const eliminateDropoutPass: Pass = {
  name: 'eliminate-dropout',
  description: 'removes dropout (the identity at inference), rewiring its readers and outputs to its input',
  needsWeights: false,
  inferenceOnly: true,
  tolerance: 0,
  run: eliminateDropout,
};
