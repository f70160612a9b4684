/**
 * A copy-on-write editor that a pass uses to rewrite one graph (and its weights) without touching its inputs.
 *
 * Passes are pure (STYLE.md §5–6): the input graph, its nodes and its weight tensors are never mutated. The editor
 * keeps a working list of nodes, replaces them by name, removes them (forwarding their readers and the graph
 * outputs to another tensor), and swaps weight tensors. `finish()` returns the original graph and weights objects
 * when no edit changed anything, so a caller's "changed" is an identity check.
 *
 * Removing a node only forwards to a tensor defined earlier (its input), so the topological order of `nodes`
 * survives every edit.
 */
import type { Graph, GraphOutput, Node } from '../ir/graph.js';
import { parametersOf } from '../ir/params.js';
import type { WeightTensor, Weights } from '../ir/weights.js';

export class GraphEditor {
  private nodes: Node[];
  private outputs: GraphOutput[];
  private weightMap: Map<string, WeightTensor> | undefined;
  private graphChanged = false;
  private weightsChanged = false;

  constructor(
    readonly original: Graph,
    private readonly originalWeights: Weights | undefined,
  ) {
    this.nodes = [...original.nodes];
    this.outputs = [...original.outputs];
  }

  get currentNodes(): readonly Node[] {
    return this.nodes;
  }

  node(name: string): Node | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  /** Nodes that read `tensor` (each listed once, even when it reads the tensor twice). */
  readers(tensor: string): Node[] {
    return this.nodes.filter((n) => n.inputs.includes(tensor));
  }

  /** Graph outputs that name `tensor`. */
  outputsOf(tensor: string): GraphOutput[] {
    return this.outputs.filter((o) => o.value === tensor);
  }

  /** Replaces the node with the same name; the same object is no change. */
  replace(node: Node): void {
    const index = this.nodes.findIndex((n) => n.name === node.name);
    if (index < 0) throw new Error(`GraphEditor.replace: no node '${node.name}'`);
    if (this.nodes[index] === node) return;
    this.nodes[index] = node;
    this.graphChanged = true;
  }

  /**
   * Removes a node. Its readers and the graph outputs that name it are forwarded to `forwardTo` (a tensor defined
   * before it); without `forwardTo` it must have no readers and be no output. Its weights are dropped.
   */
  remove(name: string, forwardTo?: string): void {
    const index = this.nodes.findIndex((n) => n.name === name);
    if (index < 0) throw new Error(`GraphEditor.remove: no node '${name}'`);
    const removed = this.nodes[index]!;
    if (forwardTo === undefined && (this.readers(name).length > 0 || this.outputsOf(name).length > 0))
      throw new Error(`GraphEditor.remove: '${name}' is still read`);
    this.nodes.splice(index, 1);
    if (forwardTo !== undefined) {
      this.nodes = this.nodes.map((n) => (n.inputs.includes(name) ? { ...n, inputs: n.inputs.map((i) => (i === name ? forwardTo : i)) } : n));
      this.outputs = this.outputs.map((o) => (o.value === name ? { ...o, value: forwardTo } : o));
    }
    for (const param of parametersOf(removed)) this.deleteWeight(param.name);
    this.graphChanged = true;
  }

  weight(name: string): WeightTensor | undefined {
    return (this.weightMap ?? this.originalWeights)?.get(name);
  }

  /** The weight a pass needs; a missing one is a bug in the caller (the verifier checks weights first). */
  requireWeight(name: string): WeightTensor {
    const tensor = this.weight(name);
    if (!tensor) throw new Error(`weight '${name}' is missing`);
    return tensor;
  }

  private writableWeights(): Map<string, WeightTensor> {
    this.weightMap ??= new Map(this.originalWeights ?? []);
    return this.weightMap;
  }

  setWeight(name: string, tensor: WeightTensor): void {
    if (!this.originalWeights) return;
    if (this.weight(name) === tensor) return;
    this.writableWeights().set(name, tensor);
    this.weightsChanged = true;
  }

  deleteWeight(name: string): void {
    if (!this.originalWeights || !this.weight(name)) return;
    this.writableWeights().delete(name);
    this.weightsChanged = true;
  }

  get changed(): boolean {
    return this.graphChanged || this.weightsChanged;
  }

  finish(): { graph: Graph; weights: Weights | undefined } {
    const graph = this.graphChanged ? { ...this.original, nodes: this.nodes, outputs: this.outputs } : this.original;
    const weights = this.weightsChanged ? this.weightMap : this.originalWeights;
    return { graph, weights };
  }
}

/** A pass result built from an editor: the same objects when nothing changed, new weights only when they did. */
export function editorResult(editor: GraphEditor, applied: readonly string[], refused: readonly string[]) {
  const { graph, weights } = editor.finish();
  return weights !== undefined ? { graph, weights, applied, refused } : { graph, applied, refused };
}

/** Reads a numeric option in a range, or explains why it is unusable. */
export function numberOption(options: Readonly<Record<string, unknown>>, name: string, fallback: number, min: number, max: number): { value: number } | { problem: string } {
  const raw = options[name];
  if (raw === undefined) return { value: fallback };
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) return { problem: `option ${name} must be a number in [${min}, ${max}] (got ${JSON.stringify(raw)})` };
  return { value };
}

/** Node names matched by `exclude` patterns (`*` any run of characters, `?` one character). */
export function excludedBy(options: Readonly<Record<string, unknown>>): (name: string) => boolean {
  const raw = options['exclude'];
  const patterns = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw.filter((p): p is string => typeof p === 'string') : [];
  const regexes = patterns
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
  return (name) => regexes.some((r) => r.test(name));
}
