/**
 * The spec `convspec import` writes: the flat form of `printGraph`, with repeated structure folded into blocks
 * where that reproduces the graph exactly.
 *
 * Instances. An instance is a name scope P (`layer1.0`, `stage2.basic1`) whose nodes
 *   - are contiguous in the graph's order,
 *   - have local names (the name after `P.`) that are identifiers — one level, no nested scopes, no keywords,
 *   - read exactly one tensor from outside the scope (the block input), and
 *   - have exactly one node read from outside or named as a graph output (the block result).
 * Blocks. Instances whose statements are the same text once every number is replaced by `#` (the same ops, local
 * names, wiring, bias flags and padding modes) share one block; there must be at least two. Numbers equal in every
 * instance stay literals; the others become the block's `int`/`float` parameters, one per distinct column of
 * values, named after the argument they fill (`c` for channels, `stride`, `pad`…). A residual basic block whose
 * stages differ in width becomes `block residual(c: int) (x)`; the first block of a stage, with its projection
 * shortcut and stride, is another skeleton and so another block.
 * Each instance is called as `layer1_0 = maxpool -> residual(64) as "layer1.0"`, so every layer keeps its stable
 * name (`layer1.0.conv1`) and the weights still match by name.
 *
 * Check. The folded text is elaborated and compared with the graph node by node (name, op, attributes, inputs,
 * shape, training metadata). If anything differs, the flat form is printed instead, and the reason returned.
 */
import { elaborate } from '../elaborate/elaborate.js';
import { OPS } from '../elaborate/ops.js';
import { dimToString, type Dim } from '../ir/dims.js';
import type { Graph, Node } from '../ir/graph.js';
import { printGraph, printOpCall } from '../ir/print.js';
import { KEYWORDS } from '../parser/tokens.js';

export interface RecognisedBlock {
  readonly name: string;
  readonly parameters: readonly string[];
  /** Scopes called through the block, in graph order. */
  readonly instances: readonly string[];
}

export interface PrintedSpec {
  readonly text: string;
  readonly blocks: readonly RecognisedBlock[];
  /** Set when blocks were recognised but the folded text did not reproduce the graph: why, and the flat form was printed. */
  readonly fallback?: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A number in printed op-call text that is not part of an identifier (`relu6`, `conv2`). */
const NUMBER = /(?<![A-Za-z0-9_.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z0-9_.])/g;
const VALUE_NAMES = new Set(['int', 'float', 'round', 'floor', 'ceil', 'min', 'max', 'abs', 'make_divisible', 'len', 'channels', 'shape', 'rank', 'dim', 'sum', 'rf', 'params', 'macs', 'flops']);

function reserved(name: string): boolean {
  return KEYWORDS.has(name) || OPS.has(name) || VALUE_NAMES.has(name);
}

interface Instance {
  readonly prefix: string;
  readonly start: number;
  readonly end: number;
  readonly nodes: readonly Node[];
  readonly input: string;
  readonly output: Node;
  /** Statement templates (`#` for each number) and the numbers, in order. */
  readonly skeleton: string;
  readonly templates: readonly string[];
  readonly numbers: readonly string[];
}

function local(instancePrefix: string, name: string): string {
  return name.slice(instancePrefix.length + 1);
}

/** Scopes that qualify as block instances (see the module header), in graph order. */
function findInstances(graph: Graph): Instance[] {
  const byPrefix = new Map<string, number[]>();
  graph.nodes.forEach((node, index) => {
    const parts = node.name.split('.');
    for (let k = 1; k < parts.length; k++) {
      const prefix = parts.slice(0, k).join('.');
      const list = byPrefix.get(prefix);
      if (list) list.push(index);
      else byPrefix.set(prefix, [index]);
    }
  });
  const readers = new Map<string, Set<number>>();
  graph.nodes.forEach((node, index) => node.inputs.forEach((input) => (readers.get(input) ?? readers.set(input, new Set()).get(input)!).add(index)));
  const outputValues = new Set(graph.outputs.map((o) => o.value));
  const nodeNames = new Set(graph.nodes.map((n) => n.name));
  const instances: Instance[] = [];
  for (const [prefix, indices] of byPrefix) {
    if (indices.length < 2 || nodeNames.has(prefix)) continue;
    const start = indices[0]!;
    const end = indices[indices.length - 1]!;
    if (end - start + 1 !== indices.length) continue;
    const nodes = indices.map((i) => graph.nodes[i]!);
    const names = new Set(nodes.map((n) => n.name));
    const locals = nodes.map((n) => local(prefix, n.name));
    // A local may share an op's name (`relu = conv1 -> relu as relu`): callees resolve to ops first.
    if (locals.some((l) => !IDENTIFIER.test(l) || KEYWORDS.has(l))) continue;
    const external = new Set(nodes.flatMap((n) => n.inputs.filter((i) => !names.has(i))));
    if (external.size !== 1) continue;
    const results = nodes.filter((n, k) => outputValues.has(n.name) || [...(readers.get(n.name) ?? [])].some((r) => r < start || r > end) || (k === nodes.length - 1 && !readers.has(n.name)));
    if (results.length !== 1) continue;
    const input = [...external][0]!;
    const templates: string[] = [];
    const numbers: string[] = [];
    for (const node of nodes) {
      const refs = node.inputs.map((i) => (i === input ? '$x' : local(prefix, i)));
      const call = printOpCall(node, refs.slice(1)).replace(NUMBER, (text) => {
        numbers.push(text);
        return '#';
      });
      templates.push(`${local(prefix, node.name)} = ${refs[0]} -> ${call}`);
    }
    const output = results[0]!;
    instances.push({ prefix, start, end, nodes, input, output, skeleton: `${templates.join('\n')}\nreturn ${local(prefix, output.name)}`, templates, numbers });
  }
  return instances.sort((a, b) => a.start - b.start);
}

/** The parameter name for a number slot, from the text before it in its statement template. */
function slotName(before: string): string {
  const key = /([A-Za-z_]+):[\s[\]#,.\-\d]*$/.exec(before);
  if (key) {
    const names: Record<string, string> = { pad: 'pad', stride: 'stride', dilation: 'dilation', groups: 'groups', output_padding: 'output_padding', axis: 'axis', eps: 'eps', momentum: 'momentum', alpha: 'alpha', beta: 'beta', value: 'value', scale: 'factor' };
    return names[key[1]!] ?? key[1]!;
  }
  const call = /([A-Za-z_]+)\(([\s[\]#,.\-\d]*)$/.exec(before);
  if (call) {
    const op = call[1]!;
    const inside = call[2]!;
    if (op === 'conv' || op === 'deconv' || op === 'dense') return inside.trim() === '' ? (op === 'dense' ? 'units' : 'c') : 'k';
    if (op === 'dropout' || op === 'spatial_dropout') return 'rate';
    if (op === 'maxpool' || op === 'avgpool') return 'k';
    if (op === 'reshape') return 'shape';
  }
  return 'p';
}

interface BlockPlan {
  readonly name: string;
  readonly inputName: string;
  readonly parameters: { name: string; type: 'int' | 'float' }[];
  /** For each number slot: a parameter index, or the literal text. */
  readonly slots: (number | string)[];
  readonly instances: Instance[];
}

function planBlocks(instances: readonly Instance[]): BlockPlan[] {
  const bySkeleton = new Map<string, Instance[]>();
  for (const instance of instances) {
    const key = instance.skeleton;
    const list = bySkeleton.get(key);
    if (list) list.push(instance);
    else bySkeleton.set(key, [instance]);
  }
  const plans: BlockPlan[] = [];
  const blockNames = new Set<string>();
  for (const group of bySkeleton.values()) {
    if (group.length < 2) continue;
    const first = group[0]!;
    const locals = new Set(first.nodes.map((n) => local(first.prefix, n.name)));
    const slotCount = first.numbers.length;
    const parameters: { name: string; type: 'int' | 'float' }[] = [];
    const columns = new Map<string, number>();
    const slots: (number | string)[] = [];
    const used = new Set<string>(locals);
    // the text before each slot, for naming: walk the templates slot by slot
    const befores: string[] = [];
    for (const template of first.templates) {
      const call = template.slice(template.indexOf('-> ') + 3);
      let index = call.indexOf('#');
      while (index >= 0) {
        befores.push(call.slice(0, index));
        index = call.indexOf('#', index + 1);
      }
    }
    for (let s = 0; s < slotCount; s++) {
      const texts = group.map((i) => i.numbers[s]!);
      const values = texts.map(Number);
      if (values.every((v) => v === values[0])) {
        slots.push(texts[0]!);
        continue;
      }
      const key = values.join(',');
      let parameter = columns.get(key);
      if (parameter === undefined) {
        const base = slotName(befores[s] ?? '');
        let candidate = base;
        for (let k = 2; used.has(candidate) || reserved(candidate); k++) candidate = `${base}${k}`;
        used.add(candidate);
        parameter = parameters.length;
        parameters.push({ name: candidate, type: texts.every((t) => /^-?\d+$/.test(t)) ? 'int' : 'float' });
        columns.set(key, parameter);
      }
      slots.push(parameter);
    }
    let inputName = 'x';
    for (let k = 2; used.has(inputName); k++) inputName = `x${k}`;
    // The block's name: the scope's kind (`basic` from `stage2.basic1`), or for numbered scopes (torch's
    // `layer1.0`) what it does.
    const last = first.prefix.split('.').pop()!;
    let base = /^\d+$/.test(last) ? (first.nodes.some((n) => n.op === 'add') ? 'residual' : 'block') : last.replace(/\d+$/, '').replace(/_+$/, '') || 'block';
    if (!IDENTIFIER.test(base) || reserved(base)) base = `${IDENTIFIER.test(base) ? base : 'block'}_block`;
    let name = base;
    for (let k = 2; blockNames.has(name); k++) name = `${base}_${k}`;
    blockNames.add(name);
    plans.push({ name, inputName, parameters, slots, instances: group });
  }
  return plans;
}

function blockText(plan: BlockPlan): string {
  const first = plan.instances[0]!;
  const parameters = plan.parameters.map((p) => `${p.name}: ${p.type}`).join(', ');
  const lines = [`block ${plan.name}(${parameters}) (${plan.inputName}) {`];
  let slot = 0;
  for (const template of first.templates) {
    const [target] = template.split(' = ', 1);
    const filled = template.replace(/#/g, () => {
      const value = plan.slots[slot++]!;
      return typeof value === 'number' ? plan.parameters[value]!.name : value;
    });
    lines.push(`  ${filled.replace(/\$x/g, plan.inputName)} as ${target}`);
  }
  lines.push(`  return ${local(first.prefix, first.output.name)}`);
  lines.push('}');
  return lines.join('\n');
}

/** The arguments of one instance's call. */
function callArguments(plan: BlockPlan, instance: Instance): string {
  const values: string[] = new Array(plan.parameters.length);
  plan.slots.forEach((slot, s) => {
    if (typeof slot === 'number') values[slot] = instance.numbers[s]!;
  });
  return values.join(', ');
}

/** Unique identifiers for tensor names, as `printGraph` makes them (`stage1.basic1.conv1` → `stage1_basic1_conv1`). */
class Identifiers {
  private readonly used = new Set<string>();
  readonly map = new Map<string, string>();

  take(name: string, preferred = name): string {
    let base = preferred.replace(/[^A-Za-z0-9_]/g, '_');
    if (!/^[A-Za-z_]/.test(base)) base = `t_${base}`;
    if (KEYWORDS.has(base)) base = `${base}_`;
    let candidate = base;
    for (let i = 2; this.used.has(candidate); i++) candidate = `${base}_${i}`;
    this.used.add(candidate);
    this.map.set(name, candidate);
    return candidate;
  }
}

function dimText(d: Dim): string {
  return typeof d === 'number' ? String(d) : dimToString(d);
}

function foldedText(graph: Graph, plans: readonly BlockPlan[], header: string | undefined): string {
  const instanceOf = new Map<number, { plan: BlockPlan; instance: Instance }>();
  for (const plan of plans) for (const instance of plan.instances) instanceOf.set(instance.start, { plan, instance });
  const ids = new Identifiers();
  for (const input of graph.inputs) ids.take(input.name);
  // Reserve the flat identifiers of nodes outside instances first, so instance names never shadow them.
  const inInstance = new Set<number>();
  for (const { instance } of instanceOf.values()) for (let i = instance.start; i <= instance.end; i++) inInstance.add(i);
  graph.nodes.forEach((node, index) => {
    if (!inInstance.has(index)) ids.take(node.name);
  });
  const lines: string[] = [];
  if (header) lines.push(...header.split('\n').map((l) => `// ${l}`));
  for (const plan of plans) lines.push(blockText(plan), '');
  lines.push(`model ${graph.name} {`);
  for (const input of graph.inputs) lines.push(`  input ${input.name}: ${input.dtype}[${input.shape.map(dimText).join(', ')}]`);
  lines.push('');
  for (let index = 0; index < graph.nodes.length; index++) {
    const folded = instanceOf.get(index);
    if (folded) {
      const { plan, instance } = folded;
      const id = ids.take(instance.output.name, instance.prefix);
      lines.push(`  ${id} = ${ids.map.get(instance.input) ?? instance.input} -> ${plan.name}(${callArguments(plan, instance)}) as ${JSON.stringify(instance.prefix)}`);
      index = instance.end;
      continue;
    }
    const node = graph.nodes[index]!;
    const [first, ...rest] = node.inputs.map((i) => ids.map.get(i) ?? i);
    lines.push(`  ${ids.map.get(node.name)} = ${first} -> ${printOpCall(node, rest)} as ${JSON.stringify(node.name)}`);
  }
  // From here on, as printGraph does: outputs, freeze, regularize, train.
  const flat = printGraph(graph).split('\n');
  const outputsAt = flat.findIndex((l) => /^ {2}(let \S+ = \S+|output .*)$/.test(l) && !l.includes(' -> '));
  const tail = flat.slice(outputsAt);
  // The output lines name tensors by their flat identifiers: rename those that are now instance results.
  const flatIds = flatIdentifiers(graph);
  const renamed = tail.map((line) => {
    if (!/^ {2}(let |output )/.test(line)) return line;
    return line.replace(/[A-Za-z_][A-Za-z0-9_]*/g, (word) => {
      const tensor = flatIds.get(word);
      return tensor !== undefined && ids.map.get(tensor) !== undefined ? ids.map.get(tensor)! : word;
    });
  });
  lines.push('', ...renamed);
  return lines.join('\n').replace(/\n{3,}/g, '\n\n');
}

/** printGraph's identifiers, inverted (identifier → tensor). */
function flatIdentifiers(graph: Graph): Map<string, string> {
  const ids = new Identifiers();
  for (const input of graph.inputs) ids.take(input.name);
  for (const node of graph.nodes) ids.take(node.name);
  return new Map([...ids.map].map(([tensor, id]) => [id, tensor]));
}

/** A node as JSON with sorted keys, symbolic sizes as text and no source location. */
function canonicalNode(node: Node): string {
  const { span: _span, ...rest } = node;
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (typeof value !== 'object' || value === null) return value;
    if ((value as { kind?: unknown }).kind === 'poly') return dimToString(value as Dim);
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
    );
  };
  return JSON.stringify(canonical(rest));
}

/**
 * Elaborates `text` and compares the result with `graph`. Returns undefined when they agree, else the first
 * difference (or the spec's first error).
 */
export function differenceFromGraph(text: string, graph: Graph, file = 'imported.cnn'): string | undefined {
  const result = elaborate(file, { text });
  const error = result.diagnostics.find((d) => d.severity === 'error');
  if (error || !result.graph) return `the printed spec does not elaborate: ${error ? `${error.code} ${error.message}` : 'no graph'}`;
  const other = result.graph;
  if (other.inputs.length !== graph.inputs.length || other.inputs.some((input, i) => input.name !== graph.inputs[i]!.name || input.shape.map(dimText).join() !== graph.inputs[i]!.shape.map(dimText).join())) return 'the inputs differ';
  if (other.nodes.length !== graph.nodes.length) return `${other.nodes.length} layers instead of ${graph.nodes.length}`;
  for (let i = 0; i < graph.nodes.length; i++) {
    const expected = canonicalNode(graph.nodes[i]!);
    const found = canonicalNode(other.nodes[i]!);
    if (expected !== found) return `layer ${i + 1} '${graph.nodes[i]!.name}' differs: expected ${expected}, found ${found}`;
  }
  if (JSON.stringify(other.outputs.map((o) => [o.name, o.value])) !== JSON.stringify(graph.outputs.map((o) => [o.name, o.value]))) return 'the outputs differ';
  if (JSON.stringify(other.training) !== JSON.stringify(graph.training)) return 'the training settings differ';
  return undefined;
}

/**
 * The spec text for an imported graph: blocks where the structure repeats (unless `blocks` is false), else the
 * flat form. `header` becomes leading `//` comment lines.
 */
export function printImportedSpec(graph: Graph, options: { header?: string; blocks?: boolean } = {}): PrintedSpec {
  const flat = () => {
    const text = printGraph(graph);
    return options.header ? `${options.header.split('\n').map((l) => `// ${l}`).join('\n')}\n${text}` : text;
  };
  if (options.blocks === false) return { text: flat(), blocks: [] };
  const plans = planBlocks(findInstances(graph));
  if (plans.length === 0) return { text: flat(), blocks: [] };
  const text = `${foldedText(graph, plans, options.header)}\n`;
  const difference = differenceFromGraph(text, graph);
  if (difference !== undefined) return { text: flat(), blocks: [], fallback: difference };
  return {
    text,
    blocks: plans.map((p) => ({ name: p.name, parameters: p.parameters.map((q) => q.name), instances: p.instances.map((i) => i.prefix) })),
  };
}
