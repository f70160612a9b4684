/**
 * The IR verifier: the invariants every pass must preserve. Tests run it after every pass, naming the pass.
 *
 * - names are unique across inputs and nodes; every node input names a graph input or an earlier node
 *   (topological order, no cycles); every output names a tensor;
 * - each node's recorded shape equals what the shape rules infer from its inputs' shapes;
 * - weighted nodes agree with their inputs (`inChannels`, `inFeatures`, batch-norm `channels`);
 * - attribute arrays have one entry per spatial axis; pads are non-negative; rates are in range;
 * - when weights are given, every parameter exists with the declared shape.
 */
import { equalDims, shapeToString } from './dims.js';
import type { Graph, Shape } from './graph.js';
import { inferShape } from './shapes.js';
import { checkWeights, type Weights } from './weights.js';

export function verifyGraph(graph: Graph, weights?: Weights): string[] {
  const problems: string[] = [];
  const shapes = new Map<string, Shape>();
  for (const input of graph.inputs) {
    if (shapes.has(input.name)) problems.push(`input '${input.name}' is defined twice`);
    shapes.set(input.name, input.shape);
  }
  for (const node of graph.nodes) {
    if (shapes.has(node.name)) problems.push(`'${node.name}' is defined twice`);
    const inputShapes: Shape[] = [];
    for (const input of node.inputs) {
      const shape = shapes.get(input);
      if (!shape) problems.push(`'${node.name}' reads '${input}', which is not defined before it`);
      else inputShapes.push(shape);
    }
    if (node.inputs.length === 0) problems.push(`'${node.name}' has no inputs`);
    if (inputShapes.length === node.inputs.length && inputShapes.length > 0) {
      const inferred = inferShape(node, inputShapes);
      if (!inferred.ok) problems.push(`'${node.name}' (${node.op}): its inputs do not fit: ${JSON.stringify(inferred.problem)}`);
      else if (inferred.shape.length !== node.shape.length || inferred.shape.some((d, i) => !equalDims(d, node.shape[i]!)))
        problems.push(`'${node.name}' records shape ${shapeToString(node.shape)} but its inputs give ${shapeToString(inferred.shape)}`);
    }
    if ('kernel' in node) {
      const rank = node.kernel.length;
      const arrays: Array<[string, readonly number[]]> = [['stride', node.stride]];
      if ('dilation' in node) arrays.push(['dilation', node.dilation]);
      if (node.padding !== 'same-dynamic') arrays.push(['pads.begin', node.padding.begin], ['pads.end', node.padding.end]);
      for (const [name, values] of arrays) {
        if (values.length !== rank) problems.push(`'${node.name}': ${name} has ${values.length} entries for ${rank} spatial axes`);
        if (values.some((v) => !Number.isInteger(v) || v < 0)) problems.push(`'${node.name}': ${name} must be non-negative integers`);
      }
    }
    if (node.op === 'dropout' && !(node.rate >= 0 && node.rate < 1)) problems.push(`'${node.name}': dropout rate ${node.rate} is outside [0, 1)`);
    shapes.set(node.name, node.shape);
  }
  for (const output of graph.outputs) if (!shapes.has(output.value)) problems.push(`output '${output.name}' names '${output.value}', which does not exist`);
  if (weights) {
    for (const problem of checkWeights(graph, weights)) {
      if (problem.kind === 'missing') problems.push(`weight '${problem.name}' is missing`);
      else if (problem.kind === 'shape') problems.push(`weight '${problem.name}' has shape [${problem.found}] but the graph needs [${problem.expected}]`);
      else problems.push(`weight '${problem.name}' belongs to no node`);
    }
  }
  return problems;
}
