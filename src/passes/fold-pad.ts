/**
 * fold-pad: moves an explicit `pad` op into the pads of the conv or pool that reads it.
 *
 * Per spatial axis i, a pad (b_i, e_i) followed by a window op with pads (p_i, q_i) becomes the window op with pads
 * (p_i + b_i, q_i + e_i). This is exact when the window op's own padding produces the same values the pad op wrote:
 *   - conv:           pads with zeros → the pad must be constant 0;
 *   - average pool:   the divisor must count the pad op's elements, i.e. count_include_pad = true; a pool with no
 *                     pads of its own may switch count_include_pad on, because before the fold it had no padding
 *                     for the flag to act on;
 *   - max pool:       pads with −∞, which the language cannot write; a constant ≤ −1e30 stands for it, and only
 *                     when every window still holds one real element (b_i and e_i below the kernel), so the
 *                     padding never wins the max;
 *   - transposed conv: its pads crop the output, they do not pad the input → refused;
 *   - reflect / edge padding repeats data, which no op's own padding does → refused.
 * A pool in ceil mode decides whether its last window exists from the begin pad (see shapes.ts), so a fold that
 * would change its output size is refused. A pad read by several nodes is folded into each that can take it and
 * stays for the others. Two constant pads of the same value (or two edge pads) in a row merge into one; a pad of
 * zero on every axis is the identity and is removed. The pass sweeps until nothing moves.
 * Guarantee: outputs are bit-identical (the folded ops add the same zeros, or skip them).
 */
import type { Graph, Node, NodeCommon, NodeOf, Padding, PoolAttributes, Shape } from '../ir/graph.js';
import { inferShape } from '../ir/shapes.js';
import { equalDims, shapeToString } from '../ir/dims.js';
import { GraphEditor, editorResult } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

/** The value that stands for −∞ in a pad that a max pool may absorb. */
export const NEGATIVE_INFINITY_STAND_IN = -1e30;

type PadNode = NodeOf<'pad'>;
/** (`PoolNode` is `never`: max and average pooling share one attribute interface.) */
type PoolNode = NodeCommon & PoolAttributes;

function addPads(a: Padding, b: Padding): Padding {
  return { begin: a.begin.map((v, i) => v + b.begin[i]!), end: a.end.map((v, i) => v + b.end[i]!) };
}

function padText(padding: Padding): string {
  return `[${padding.begin.map((b, i) => `[${b}, ${padding.end[i]}]`).join(', ')}]`;
}

/** The reader with the pad moved into it, reading the pad's input. */
function absorb<T extends NodeOf<'conv'> | PoolNode>(reader: T, pad: PadNode, extra: Partial<T> = {}): T {
  const padding = reader.padding as Padding;
  return { ...reader, ...extra, inputs: [pad.inputs[0]!], padding: addPads(padding, pad.padding), padMode: 'explicit' };
}

/** A pool in ceil mode may gain or lose its last window when pads move: compare the output shapes. */
function shapeProblem(folded: Node, reader: Node, inputShape: Shape): string | undefined {
  const inferred = inferShape(folded, [inputShape]);
  if (!inferred.ok) return `the folded ${reader.op} would not fit its input (${JSON.stringify(inferred.problem)})`;
  if (inferred.shape.length !== reader.shape.length || inferred.shape.some((d, i) => !equalDims(d, reader.shape[i]!)))
    return `in ceil mode the folded pool's output would be ${shapeToString(inferred.shape)}, not ${shapeToString(reader.shape)}`;
  return undefined;
}

interface PadFoldRule {
  readonly op: Node['op'];
  /** Why the pad cannot move into this reader, or undefined. */
  check(pad: PadNode, reader: Node, inputShape: Shape): string | undefined;
  rewrite(pad: PadNode, reader: Node): Node;
}

const notConstant = (pad: PadNode) => (pad.mode !== 'constant' ? `${pad.mode} padding repeats data; an op's own padding writes a constant` : undefined);

const RULES: readonly PadFoldRule[] = [
  // pad(x, 0) -> conv(pads p)   →   conv(x, pads p + pad)
  {
    op: 'conv',
    check(pad, reader) {
      const conv = reader as NodeOf<'conv'>;
      if (conv.padding === 'same-dynamic') return 'the conv pads SAME on a symbolic size, known only at run time';
      return notConstant(pad) ?? (pad.value !== 0 ? `a conv pads with zeros; the pad value is ${pad.value}` : undefined);
    },
    rewrite: (pad, reader) => absorb(reader as NodeOf<'conv'>, pad),
  },
  // pad(x, 0) -> avgpool(pads p, count_include_pad) → avgpool(x, pads p + pad, count_include_pad)
  {
    op: 'avgpool',
    check(pad, reader, inputShape) {
      const pool = reader as PoolNode;
      if (pool.padding === 'same-dynamic') return 'the pool pads SAME on a symbolic size, known only at run time';
      const reason = notConstant(pad) ?? (pad.value !== 0 ? `an average pool pads with zeros; the pad value is ${pad.value}` : undefined);
      if (reason) return reason;
      const ownPads = [...pool.padding.begin, ...pool.padding.end].some((p) => p > 0);
      if (!pool.countIncludePad && ownPads) return "the pool leaves its own pads out of the divisor (count_include_pad: false) but the pad op's zeros are counted";
      return shapeProblem(this.rewrite(pad, reader), reader, inputShape);
    },
    rewrite: (pad, reader) => absorb(reader as PoolNode, pad, { countIncludePad: true }),
  },
  // pad(x, −∞) -> maxpool(pads p)   →   maxpool(x, pads p + pad)
  {
    op: 'maxpool',
    check(pad, reader, inputShape) {
      const pool = reader as PoolNode;
      if (pool.padding === 'same-dynamic') return 'the pool pads SAME on a symbolic size, known only at run time';
      const reason =
        notConstant(pad) ??
        (pad.value > NEGATIVE_INFINITY_STAND_IN ? `a max pool pads with −inf; the pad value ${pad.value} would win the max where inputs are below it (use a value ≤ ${NEGATIVE_INFINITY_STAND_IN})` : undefined);
      if (reason) return reason;
      const folded = this.rewrite(pad, reader) as PoolNode;
      const padding = folded.padding as Padding;
      const axis = pool.kernel.findIndex((k, i) => padding.begin[i]! >= k || padding.end[i]! >= k);
      if (axis >= 0) return `on axis ${axis} a window would hold only padding, where −inf and ${pad.value} differ`;
      return shapeProblem(folded, reader, inputShape);
    },
    rewrite: (pad, reader) => absorb(reader as PoolNode, pad),
  },
  // pad(x, v) -> pad(v)   →   pad(x, v) with the pads summed (also edge -> edge: the edge value is the same)
  {
    op: 'pad',
    check(pad, reader) {
      const next = reader as PadNode;
      if (pad.mode === 'constant' && next.mode === 'constant') return pad.value === next.value ? undefined : `the pads write different values (${pad.value}, then ${next.value})`;
      if (pad.mode === 'edge' && next.mode === 'edge') return undefined;
      return pad.mode === 'reflect' && next.mode === 'reflect' ? 'reflecting twice mirrors the padded data, not the input' : `${pad.mode} then ${next.mode} padding do not combine`;
    },
    rewrite: (pad, reader) => ({ ...(reader as PadNode), inputs: [pad.inputs[0]!], padding: addPads(pad.padding, (reader as PadNode).padding) }),
  },
];

/** Readers that have pads but cannot take the pad op's, with the reason. */
const REFUSING_READERS: Partial<Record<Node['op'], string>> = {
  conv_transpose: "a transposed conv's pads crop its output; they cannot pad its input",
};

export function foldPad(graph: Graph, context: PassContext): PassResult {
  const editor = new GraphEditor(graph, context.weights);
  const applied: string[] = [];
  let refused: string[] = [];
  const shapes = new Map<string, Shape>([...graph.inputs.map((i) => [i.name, i.shape] as const), ...graph.nodes.map((n) => [n.name, n.shape] as const)]);
  // Sweeps until nothing moves, so the result is a fixpoint (running the pass again changes nothing).
  for (let moved = true; moved; ) {
    moved = false;
    refused = [];
    for (const name of editor.currentNodes.filter((n) => n.op === 'pad').map((n) => n.name)) {
      const pad = editor.node(name) as PadNode;
      const input = pad.inputs[0]!;
      // pad(x, 0 everywhere) → x
      if ([...pad.padding.begin, ...pad.padding.end].every((p) => p === 0)) {
        editor.remove(pad.name, input);
        applied.push(`removed ${pad.name}: it pads nothing`);
        moved = true;
        continue;
      }
      for (const reader of editor.readers(pad.name)) {
        const rule = RULES.find((r) => r.op === reader.op);
        const reason = rule ? rule.check(pad, reader, shapes.get(input)!) : (REFUSING_READERS[reader.op] ?? `${reader.op === 'activation' ? reader.fn.kind : reader.op} has no padding of its own to absorb it`);
        if (reason !== undefined) {
          refused.push(`${pad.name} into ${reader.name}: ${reason}`);
          continue;
        }
        editor.replace(rule!.rewrite(pad, reader));
        applied.push(`${reader.op === 'pad' ? 'merged' : 'folded'} ${pad.name} ${padText(pad.padding)} into ${reader.name}`);
        moved = true;
      }
      const outputs = editor.outputsOf(pad.name);
      if (editor.readers(pad.name).length === 0 && outputs.length === 0) editor.remove(pad.name);
      else if (outputs.length > 0) refused.push(`${pad.name}: it is the graph output '${outputs[0]!.name}'`);
    }
  }
  return editorResult(editor, applied, refused);
}

export const foldPadPass: Pass = {
  name: 'fold-pad',
  description: 'moves constant pad ops into the pads of the conv or pool that reads them',
  needsWeights: false,
  inferenceOnly: false,
  tolerance: 0,
  run: foldPad,
};
