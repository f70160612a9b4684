/**
 * He-uniform draws, computed by a small WebAssembly SIMD kernel (he-uniform.wat).
 *
 * Element i of the stream of `seed` is fround((2u_i − 1)·bound), u_i the i-th number `createMulberry32(seed)`
 * returns (src/random.ts): the same numbers the scalar loop gave, bit for bit, at about 40 ms instead of 100–125 ms
 * for ResNet-50's 25.6M weights on this project's machines. Optionally each row of `rowSize` elements (an output
 * channel of a conv or dense weight) is multiplied by its factor in float64 and rounded again to float32 — what
 * batch-norm folding does to a freshly initialised layer — so `compile` can stream folded weights to the file
 * without ever holding them.
 *
 * Mulberry32's state is a counter (draw i has state seed + (i+1)·0x6d2b79f5), so any range of the stream can be
 * computed without the elements before it.
 */
import { HE_UNIFORM_WASM_BASE64 } from './he-uniform-wasm.js';

/**
 * Elements per chunk: 1 MiB. The kernel's 3 MiB of memory (48 pages of 64 KiB) hold three chunks: streamed pieces
 * alternate between the first two, so a piece being written survives the drawing of the next; `drawHeUniform`
 * copies out of the third, so it never overwrites a piece still being written.
 */
const CHUNK_ELEMENTS = 1 << 18;
const STREAM_SLOTS = 2;
const COPY_SLOT = 2;

/** The slot the next streamed piece goes to (shared by every stream: pieces of consecutive tensors alternate too). */
let nextStreamSlot = 0;
const MULBERRY_STEP = 0x6d2b79f5;

// The project's TypeScript libraries (no DOM) leave WebAssembly undeclared; this is the little used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};

interface Kernel {
  /** Writes `count` draws after `state` at byte offset `pointer`, scaled; returns the state after them. */
  fill(pointer: number, count: number, state: number, bound: number, scale: number): number;
  readonly memory: { readonly buffer: ArrayBuffer };
}

let kernel: Kernel | undefined;

function loadKernel(): Kernel {
  if (!kernel) {
    const module = new WebAssembly.Module(Buffer.from(HE_UNIFORM_WASM_BASE64, 'base64'));
    const exports = new WebAssembly.Instance(module).exports;
    kernel = { fill: exports['fill'] as Kernel['fill'], memory: exports['memory'] as Kernel['memory'] };
  }
  return kernel;
}

/** What to draw: the stream of `seed` times `bound`, each row of `rowSize` elements times its `rowScale`. */
export interface HeUniformStream {
  readonly seed: number;
  readonly bound: number;
  /** Elements per row (output channel); needed with `rowScale`. */
  readonly rowSize?: number;
  /** One factor per row; without it every factor is 1 (no second rounding happens then). */
  readonly rowScale?: Float64Array;
}

/** The state before draw `index` (draw `index` uses state + step). */
function stateBefore(seed: number, index: number): number {
  return (seed + Math.imul(index, MULBERRY_STEP)) | 0;
}

/** Draws elements [first, first + count) into chunk slot `slot` of the kernel's memory (count ≤ CHUNK_ELEMENTS). */
function drawChunk(stream: HeUniformStream, first: number, count: number, slot: number): Float32Array {
  const { fill, memory } = loadKernel();
  const { seed, bound, rowScale } = stream;
  const base = slot * CHUNK_ELEMENTS * 4;
  if (!rowScale) {
    fill(base, count, stateBefore(seed, first), bound, 1);
  } else {
    const rowSize = stream.rowSize!;
    let index = first;
    const end = first + count;
    while (index < end) {
      const row = Math.floor(index / rowSize);
      const rowEnd = Math.min(end, (row + 1) * rowSize);
      fill(base + (index - first) * 4, rowEnd - index, stateBefore(seed, index), bound, rowScale[row]!);
      index = rowEnd;
    }
  }
  return new Float32Array(memory.buffer, base, count);
}

/** Fills `target` with elements [first, first + target.length) of the stream. */
export function drawHeUniform(target: Float32Array, stream: HeUniformStream, first = 0): void {
  for (let offset = 0; offset < target.length; offset += CHUNK_ELEMENTS) {
    const count = Math.min(CHUNK_ELEMENTS, target.length - offset);
    target.set(drawChunk(stream, first + offset, count, COPY_SLOT), offset);
  }
}

/**
 * The first `length` elements of the stream as float32 bytes (little endian, this host's order: callers check),
 * 1 MiB at a time. Each piece is a view of the kernel's memory: it stays valid while the next piece is drawn (of
 * this stream or any other), so a writer can write one while the next is computed, and until a second one is.
 * The slots are shared: one consumer at a time (writeFileAtomicAsync runs streamed writes in turn).
 */
export function* heUniformBytes(stream: HeUniformStream, length: number): Generator<Uint8Array> {
  for (let first = 0; first < length; first += CHUNK_ELEMENTS) {
    const slot = nextStreamSlot;
    nextStreamSlot = (nextStreamSlot + 1) % STREAM_SLOTS;
    const chunk = drawChunk(stream, first, Math.min(CHUNK_ELEMENTS, length - first), slot);
    yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}
