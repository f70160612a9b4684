/**
 * Prints a graph as a flat convspec spec that elaborates back to the same graph.
 *
 * One assignment per node, every attribute explicit, the node's stable name kept with `as "<name>"`:
 *   stage1_basic1_conv1 = stem_maxpool1 -> conv(64, [3, 3], stride: [1, 1], pad: [[1, 1], [1, 1]], …) as "stage1.basic1.conv1"
 * Frozen layers, regularisers and training settings are printed as `freeze`, `regularize` and `train` statements.
 * This is the text of `--print-after`, of golden pass tests, and of specs written by `import` and `prune`.
 */
import { dimToExpression, type Dim } from './dims.js';
import type { Graph, Node, PadMode, Padding, Regularizer, SettingValue } from './graph.js';

function list(values: readonly (number | string)[]): string {
  return `[${values.join(', ')}]`;
}

function number(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return String(value);
}

/** A float argument printed so it reads back as a float even when integral (`1.0`). */
function float(value: number): string {
  const text = String(value);
  return /[.e]/.test(text) || !Number.isFinite(value) ? text : `${text}.0`;
}

/** Pads as written: `same`, `valid` and `causal` re-resolve to the same numbers on the same input shape. */
function pads(padding: Padding | 'same-dynamic', mode: PadMode = 'explicit'): string {
  if (padding === 'same-dynamic' || mode === 'same') return 'same';
  if (mode === 'valid' || mode === 'causal') return mode;
  return `[${padding.begin.map((b, i) => `[${b}, ${padding.end[i]}]`).join(', ')}]`;
}

function dimText(d: Dim): string {
  return dimToExpression(d);
}

/** The op call that elaborates to exactly this node's attributes. */
export function printOpCall(node: Node, extraInputs: readonly string[]): string {
  const others = extraInputs.length > 0 ? `${extraInputs.join(', ')}, ` : '';
  switch (node.op) {
    case 'conv':
      return `conv(${node.filters}, ${list(node.kernel)}, stride: ${list(node.stride)}, pad: ${pads(node.padding, node.padMode)}, dilation: ${list(node.dilation)}, groups: ${node.groups}, bias: ${node.bias})`;
    case 'conv_transpose':
      return `deconv(${node.filters}, ${list(node.kernel)}, stride: ${list(node.stride)}, pad: ${pads(node.padding)}, dilation: ${list(node.dilation)}, output_padding: ${list(node.outputPadding)}, groups: ${node.groups}, bias: ${node.bias})`;
    case 'maxpool':
      return `maxpool(${list(node.kernel)}, stride: ${list(node.stride)}, pad: ${pads(node.padding, node.padMode)}, ceil: ${node.ceilMode})`;
    case 'avgpool':
      return `avgpool(${list(node.kernel)}, stride: ${list(node.stride)}, pad: ${pads(node.padding, node.padMode)}, ceil: ${node.ceilMode}, count_include_pad: ${node.countIncludePad})`;
    case 'global_avgpool':
      return 'globalavgpool';
    case 'global_maxpool':
      return 'globalmaxpool';
    case 'batchnorm':
      return `bn(momentum: ${float(node.momentum)}, eps: ${float(node.epsilon)})`;
    case 'activation': {
      const fn = node.fn;
      switch (fn.kind) {
        case 'leaky_relu':
        case 'elu':
          return `${fn.kind}(alpha: ${float(fn.alpha)})`;
        case 'hard_sigmoid':
          return `hard_sigmoid(alpha: ${float(fn.alpha)}, beta: ${float(fn.beta)})`;
        case 'softmax':
          return `softmax(axis: ${fn.axis})`;
        default:
          return fn.kind;
      }
    }
    case 'dropout':
      return `${node.spatial ? 'spatial_dropout' : 'dropout'}(${float(node.rate)})`;
    case 'add':
    case 'mul':
      return `${node.op}(${extraInputs.join(', ')})`;
    case 'concat':
      return `concat(${others}axis: ${node.axis})`;
    case 'upsample':
      return `upsample(scale: ${list(node.scale)}, mode: ${node.mode})`;
    case 'flatten':
      return 'flatten';
    case 'reshape':
      return `reshape(${list(node.target.map(dimText))})`;
    case 'dense':
      return `dense(${node.units}, bias: ${node.bias})`;
    case 'pad':
      return `pad(${pads(node.padding)}, mode: ${node.mode}, value: ${float(node.value)})`;
  }
}

function regularizerText(r: Regularizer): string {
  return r.kind === 'max_norm' ? `max_norm(${float(r.value)})` : `${r.kind}(${float(r.factor)})`;
}

function settingText(value: SettingValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return number(value);
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(settingText).join(', ')}]`;
  const call = value as { call: string; args: Record<string, SettingValue> };
  const args = Object.entries(call.args).map(([k, v]) => (/^\d+$/.test(k) ? settingText(v) : `${k}: ${settingText(v)}`));
  return `${call.call}(${args.join(', ')})`;
}

/** A unique identifier for each tensor name (`stage1.basic1.conv1` → `stage1_basic1_conv1`). */
function identifiers(graph: Graph): Map<string, string> {
  const used = new Set<string>();
  const map = new Map<string, string>();
  const take = (name: string) => {
    let base = name.replace(/[^A-Za-z0-9_]/g, '_');
    if (!/^[A-Za-z_]/.test(base)) base = `t_${base}`;
    let candidate = base;
    for (let i = 2; used.has(candidate); i++) candidate = `${base}_${i}`;
    used.add(candidate);
    map.set(name, candidate);
  };
  for (const input of graph.inputs) take(input.name);
  for (const node of graph.nodes) take(node.name);
  return map;
}

export function printGraph(graph: Graph, header?: string): string {
  const ids = identifiers(graph);
  const lines: string[] = [];
  if (header) lines.push(`// ${header}`);
  lines.push(`model ${graph.name} {`);
  for (const input of graph.inputs) lines.push(`  input ${input.name}: ${input.dtype}[${input.shape.map(dimText).join(', ')}]`);
  lines.push('');
  for (const node of graph.nodes) {
    const [first, ...rest] = node.inputs.map((i) => ids.get(i) ?? i);
    lines.push(`  ${ids.get(node.name)} = ${first} -> ${printOpCall(node, rest)} as ${JSON.stringify(node.name)}`);
  }
  lines.push('');
  // Outputs keep the user's names: bind each output name to its tensor when they differ.
  const outputNames: string[] = [];
  for (const output of graph.outputs) {
    const id = ids.get(output.value) ?? output.value;
    if (output.name !== id) {
      const taken = [...ids.values()].includes(output.name);
      if (!taken) lines.push(`  let ${output.name} = ${id}`);
      outputNames.push(taken ? id : output.name);
    } else outputNames.push(id);
  }
  lines.push(`  output ${outputNames.join(', ')}`);
  const frozen = graph.nodes.filter((n) => n.frozen).map((n) => JSON.stringify(n.name));
  if (frozen.length > 0) lines.push(`  freeze ${frozen.join(', ')}`);
  const byRegularizer = new Map<string, string[]>();
  for (const node of graph.nodes) {
    for (const r of node.regularizers) {
      const key = regularizerText(r);
      byRegularizer.set(key, [...(byRegularizer.get(key) ?? []), JSON.stringify(node.name)]);
    }
  }
  for (const [text, names] of byRegularizer) lines.push(`  regularize ${text} on ${names.join(', ')}`);
  const settings = Object.entries(graph.training);
  if (settings.length > 0) {
    lines.push('  train {');
    for (const [key, value] of settings) lines.push(`    ${key}: ${settingText(value)}`);
    lines.push('  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
