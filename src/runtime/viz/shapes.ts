/**
 * Concrete sizes for visualisations that make their own input (activation maximisation): the model input's
 * sample dims [C, S…] must be numbers, or be given.
 */
import { dimToString } from '../../ir/dims.js';
import type { Graph } from '../../ir/graph.js';
import { modelInput, VizError } from './network.js';

export function concreteSampleDims(graph: Graph, given?: readonly number[]): number[] {
  const input = modelInput(graph);
  const declared = input.shape.slice(1);
  if (given) {
    const fits = given.length === declared.length && declared.every((d, i) => typeof d !== 'number' || d === given[i]);
    if (!fits) throw new VizError(`sample dims [${given.join(', ')}] do not fit input '${input.name}' [${declared.map(dimToString).join(', ')}]`);
    return [...given];
  }
  if (declared.every((d) => typeof d === 'number')) return declared as number[];
  const shown = input.shape.map(dimToString).join(', ');
  throw new VizError(`input '${input.name}' [${shown}] has symbolic sizes, so there is no input size to optimise`, `fix them with --input-shape ${input.name}=${input.shape.map((d, i) => (i === 0 ? 1 : typeof d === 'number' ? d : 64)).join(',')}`);
}
