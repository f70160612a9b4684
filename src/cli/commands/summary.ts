/**
 * `convspec summary SPEC [--json]`: the per-layer table (name, op, output shape, params, MACs, FLOPs, receptive
 * field) and totals. The JSON form is the contract of CLI.md.
 */
import { checkSpec } from '../../check.js';
import { dimToJson, shapeToString } from '../../ir/dims.js';
import type { Graph, Node } from '../../ir/graph.js';
import type { CostResult } from '../../passes/cost.js';
import type { ReceptiveFieldResult } from '../../passes/receptive-field.js';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import { countSummary, EXIT, groupDigits, printDiagnostics, renderTable, type Output } from '../output.js';

/** The op as users know it: conv1d/2d/3d by rank, depthwise convs named as such. */
export function displayOp(node: Node): string {
  switch (node.op) {
    case 'conv':
      return `${node.groups > 1 && node.groups === node.inChannels ? 'dwconv' : 'conv'}${node.kernel.length}d`;
    case 'conv_transpose':
      return `deconv${node.kernel.length}d`;
    case 'maxpool':
    case 'avgpool':
      return `${node.op}${node.kernel.length}d`;
    case 'activation':
      return node.fn.kind;
    case 'dropout':
      return node.spatial ? 'spatial_dropout' : 'dropout';
    default:
      return node.op;
  }
}

function round(value: number): number {
  return Number.isInteger(value) ? value : Number(value.toFixed(4));
}

export function summaryJson(graph: Graph, cost: CostResult, fields: ReceptiveFieldResult) {
  return {
    model: graph.name,
    inputs: graph.inputs.map((i) => ({ name: i.name, shape: i.shape.map(dimToJson) })),
    outputs: graph.outputs.map((o) => ({ name: o.name, shape: (graph.nodes.find((n) => n.name === o.value)?.shape ?? graph.inputs.find((i) => i.name === o.value)?.shape ?? []).map(dimToJson) })),
    layers: graph.nodes.map((node) => {
      const c = cost.layers.get(node.name)!;
      const rf = fields.fields.get(node.name);
      return {
        name: node.name,
        op: displayOp(node),
        shape: node.shape.map(dimToJson),
        params: c.params,
        macs: dimToJson(c.macs),
        flops: dimToJson(c.flops),
        ...(node.frozen ? { frozen: true } : {}),
        ...(rf ? { rf: { size: rf.size.map(round), stride: rf.stride.map(round), padding: rf.padding.map(round), center: rf.center.map(round), covers: rf.covers } } : {}),
      };
    }),
    totals: {
      params: cost.totals.params,
      trainable: cost.totals.trainable,
      frozen: cost.totals.params - cost.totals.trainable,
      macs: dimToJson(cost.totals.macs),
      flops: dimToJson(cost.totals.flops),
      activationBytes: dimToJson(cost.totals.memoryBytes),
    },
  };
}

function compact(value: number | string): string {
  if (typeof value === 'string') return value;
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return String(value);
}

export function summaryText(graph: Graph, cost: CostResult, fields: ReceptiveFieldResult): string {
  const rows = graph.nodes.map((node) => {
    const c = cost.layers.get(node.name)!;
    const rf = fields.fields.get(node.name);
    const rfText = rf ? `${rf.size.map(round).join('×')} /${rf.stride.map(round).join('×')}${rf.covers ? ' ✓' : ''}` : '';
    return [`${node.name}${node.frozen ? ' ❄' : ''}`, displayOp(node), shapeToString(node.shape), groupDigits(c.params), compact(dimToJson(c.macs)), rfText];
  });
  const table = renderTable(['layer', 'op', 'output shape', 'params', 'MACs', 'receptive field / stride'], rows, new Set([3, 4]));
  const t = cost.totals;
  const lines = [
    `model ${graph.name}: ${graph.inputs.map((i) => `${i.name} ${shapeToString(i.shape)}`).join(', ')}`,
    '',
    table,
    '',
    `params:    ${groupDigits(t.params)} (trainable ${groupDigits(t.trainable)}, frozen ${groupDigits(t.params - t.trainable)})`,
    `MACs:      ${groupDigits(dimToJson(t.macs))}   FLOPs: ${groupDigits(dimToJson(t.flops))}   (batch of 1)`,
    `memory:    ${typeof dimToJson(t.memoryBytes) === 'number' ? `${((dimToJson(t.memoryBytes) as number) / 2 ** 20).toFixed(1)} MiB` : dimToJson(t.memoryBytes)} of activations (batch of 1, float32)`,
  ];
  if (fields.input) lines.push(`receptive field sizes are in pixels of '${fields.input.name}'; ✓ marks a field covering the whole input; ❄ marks a frozen layer`);
  return lines.join('\n');
}

export function runSummary(file: string, options: { json: boolean; elaborate: ElaborateOptions }, output: Output): number {
  const result = checkSpec(file, options.elaborate);
  if (!result.graph || !result.cost || !result.receptiveFields || result.diagnostics.some((d) => d.severity === 'error')) {
    printDiagnostics(output, result.diagnostics, result.sources, 'text');
    output.err(`✗ ${file}: ${countSummary(result.diagnostics)}`);
    return EXIT.inputErrors;
  }
  if (result.diagnostics.length > 0) printDiagnostics(output, result.diagnostics, result.sources, 'text');
  if (options.json) output.out(JSON.stringify(summaryJson(result.graph, result.cost, result.receptiveFields), null, 2));
  else output.out(summaryText(result.graph, result.cost, result.receptiveFields));
  return EXIT.ok;
}
