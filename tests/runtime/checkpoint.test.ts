/**
 * Safetensors weights files and training checkpoints (src/runtime/checkpoint.ts): round trips, the byte layout
 * checked by an independent reader (Python's struct/json/numpy when available), atomic writes, and a typed
 * `CheckpointError` — never a crash — for every kind of damaged file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  decodeCheckpoint,
  decodeSafetensors,
  encodeCheckpoint,
  encodeSafetensors,
  graphFingerprint,
  readCheckpoint,
  readSafetensors,
  writeCheckpoint,
  writeWeightsFile,
  type CheckpointErrorKind,
  type TrainingCheckpoint,
} from '../../src/runtime/checkpoint.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { WeightTensor } from '../../src/ir/weights.js';

const directory = mkdtempSync(join(tmpdir(), 'convspec-checkpoint-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const tensor = (shape: number[], start = 0): WeightTensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i * 0.5 - 1e-3) });

function sampleCheckpoint(): TrainingCheckpoint {
  return {
    weights: new Map([
      ['stem.conv1.weight', tensor([4, 3, 3, 3])],
      ['stem.conv1.bias', tensor([4], 7)],
      ['stem.bn1.running_var', { shape: [4], data: new Float32Array([1, Number.MIN_VALUE, 3.4e38, -0]) }],
    ]),
    optimizerState: new Map([
      ['exp_avg.stem.conv1.weight', tensor([4, 3, 3, 3], 1)],
      ['exp_avg_sq.stem.conv1.weight', tensor([4, 3, 3, 3], 2)],
    ]),
    bestWeights: new Map([['stem.conv1.bias', tensor([4], -3)]]),
    metadata: {
      epoch: 3,
      step: 141,
      seed: 42,
      specHash: 'abc123',
      optimizer: { kind: 'adam', learningRate: 0.001 },
      history: [{ epoch: 1, loss: 0.5 }, { epoch: 2, loss: 0.25, validation: { loss: 0.3, accuracy: 0.9 } }],
      trainer: { bestLoss: 0.3, bestEpoch: 2, wait: 1 },
    },
  };
}

function expectError(run: () => unknown, kind: CheckpointErrorKind, message?: RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a CheckpointError of kind ${kind}`).toBeInstanceOf(CheckpointError);
  expect((caught as CheckpointError).kind, (caught as Error).message).toBe(kind);
  if (message) expect((caught as Error).message).toMatch(message);
}

describe('safetensors encoding', () => {
  it('round-trips tensors bit for bit, metadata included, and aligns the data to 8 bytes', () => {
    const tensors = new Map([
      ['a', tensor([2, 3])],
      ['b.c', { shape: [0], data: new Float32Array(0) }],
      ['scalar', { shape: [], data: new Float32Array([Math.PI]) }],
    ]);
    const bytes = encodeSafetensors(tensors, { note: 'héllo' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual({ note: 'héllo' });
    expect([...decoded.tensors.keys()]).toEqual(['a', 'b.c', 'scalar']);
    for (const [name, t] of tensors) {
      expect(decoded.tensors.get(name)!.shape).toEqual(t.shape);
      expect(Buffer.from(decoded.tensors.get(name)!.data.buffer)).toEqual(Buffer.from(t.data.buffer));
    }
  });

  it('writes bytes an independent reader understands (Python struct + json + numpy)', () => {
    let python = true;
    try {
      execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    } catch {
      python = false;
    }
    if (!python) return; // no Python with numpy here: the round trip above still covers the layout
    const path = join(directory, 'weights.safetensors');
    writeWeightsFile(path, new Map([['w', tensor([2, 2, 3])], ['b', tensor([5], 9)]]));
    const script = [
      'import json, struct, sys, numpy as np',
      'data = open(sys.argv[1], "rb").read()',
      'n = struct.unpack("<Q", data[:8])[0]',
      'header = json.loads(data[8:8 + n])',
      'out = {}',
      'for name, entry in header.items():',
      '    if name == "__metadata__": continue',
      '    b, e = entry["data_offsets"]',
      '    array = np.frombuffer(data[8 + n + b: 8 + n + e], dtype="<f4").reshape(entry["shape"])',
      '    out[name] = [entry["dtype"], list(array.shape), float(array.astype(np.float64).sum())]',
      'out["__metadata__"] = header.get("__metadata__")',
      'print(json.dumps(out))',
    ].join('\n');
    const result = JSON.parse(execFileSync('python3', ['-c', script, path], { encoding: 'utf8' })) as Record<string, unknown>;
    const sum = (t: WeightTensor) => t.data.reduce((a, b) => a + b, 0);
    expect(result['w']).toEqual(['F32', [2, 2, 3], expect.closeTo(sum(tensor([2, 2, 3])), 4)]);
    expect(result['b']).toEqual(['F32', [5], expect.closeTo(sum(tensor([5], 9)), 4)]);
    expect(result['__metadata__']).toEqual({ format: 'pt' });
  });
});

describe('files of the reference safetensors library', () => {
  it('reads a file written by safetensors 0.8 (Python, save_file with numpy arrays)', () => {
    // written by: save_file({'layer.weight': (np.arange(12, dtype=np.float32).reshape(3, 4) / 7),
    //                        'layer.bias': np.array([1.5, -2], dtype=np.float32)}, path, metadata={'format': 'pt'})
    const path = fileURLToPath(new URL('./fixtures/reference-library.safetensors', import.meta.url));
    const { tensors, metadata } = readSafetensors(path);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.get('layer.bias')).toEqual({ shape: [2], data: new Float32Array([1.5, -2]) });
    expect(tensors.get('layer.weight')!.shape).toEqual([3, 4]);
    expect(Array.from(tensors.get('layer.weight')!.data)).toEqual(Array.from(Float32Array.from({ length: 12 }, (_, i) => i / 7)));
  });

  it('writes what that library reads back byte for byte: the same layout for the same tensors', () => {
    const ours = encodeSafetensors(
      new Map([
        ['layer.bias', { shape: [2], data: new Float32Array([1.5, -2]) }],
        ['layer.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) }],
      ]),
      { format: 'pt' },
    );
    const path = fileURLToPath(new URL('./fixtures/reference-library.safetensors', import.meta.url));
    expect(Buffer.from(ours)).toEqual(readFileSync(path));
  });
});

describe('training checkpoints', () => {
  it('round-trip weights, optimizer state, best weights and metadata', () => {
    const checkpoint = sampleCheckpoint();
    const path = join(directory, 'run.ckpt');
    writeCheckpoint(path, checkpoint);
    const read = readCheckpoint(path);
    expect(read.metadata).toEqual(checkpoint.metadata);
    for (const [field, expected] of [
      ['weights', checkpoint.weights],
      ['optimizerState', checkpoint.optimizerState],
      ['bestWeights', checkpoint.bestWeights!],
    ] as const) {
      const actual = read[field]!;
      expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [name, t] of expected) {
        expect(actual.get(name)!.shape).toEqual(t.shape);
        expect(Buffer.from(actual.get(name)!.data.buffer)).toEqual(Buffer.from(t.data.buffer));
      }
    }
    // the file is a plain safetensors file too: weights under their own names
    expect(readSafetensors(path).tensors.get('stem.conv1.weight')!.shape).toEqual([4, 3, 3, 3]);
    expect(readSafetensors(path).tensors.has('optimizer.exp_avg.stem.conv1.weight')).toBe(true);
  });

  it('is written atomically: no temporary file remains, and a rewrite replaces the file whole', () => {
    const path = join(directory, 'atomic.ckpt');
    writeCheckpoint(path, sampleCheckpoint());
    const first = readFileSync(path);
    const second = { ...sampleCheckpoint(), metadata: { ...sampleCheckpoint().metadata, epoch: 4 } };
    writeCheckpoint(path, second);
    expect(readCheckpoint(path).metadata.epoch).toBe(4);
    expect(readFileSync(path).length).toBe(first.length);
    expect(readdirSync(directory).filter((name) => name.includes('atomic') && name.endsWith('.tmp'))).toEqual([]);
  });

  it('gives the same bytes for the same checkpoint', () => {
    expect(Buffer.from(encodeCheckpoint(sampleCheckpoint()))).toEqual(Buffer.from(encodeCheckpoint(sampleCheckpoint())));
  });
});

describe('damaged files are typed errors', () => {
  const good = encodeCheckpoint(sampleCheckpoint());
  const headerLength = Number(new DataView(good.buffer).getBigUint64(0, true));
  const withHeader = (header: unknown, data = new Uint8Array(0)): Uint8Array => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const bytes = new Uint8Array(8 + json.length + data.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    bytes.set(data, 8 + json.length);
    return bytes;
  };

  it('a missing file', () => expectError(() => readCheckpoint(join(directory, 'nope.ckpt')), 'not-found', /nope\.ckpt: no such file/));
  it('a folder', () => expectError(() => readCheckpoint(directory), 'unreadable'));
  it('an empty file', () => expectError(() => decodeCheckpoint(new Uint8Array(0), 'empty.ckpt'), 'not-safetensors', /empty\.ckpt/));
  it('a file shorter than the length prefix', () => expectError(() => decodeCheckpoint(good.subarray(0, 5)), 'truncated'));
  it('a PNG instead', () => expectError(() => decodeCheckpoint(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])), 'not-safetensors'));
  it('a text file instead', () => expectError(() => decodeCheckpoint(new TextEncoder().encode('model M { input x: f32[N, 3] }')), 'not-safetensors'));
  it('a header cut short', () => expectError(() => decodeCheckpoint(good.subarray(0, 8 + Math.floor(headerLength / 2))), 'truncated', /header needs/));
  it('tensor data cut short', () => expectError(() => decodeCheckpoint(good.subarray(0, good.length - 10)), 'truncated', /ends at byte/));
  it('a header that is not JSON', () => {
    const bytes = good.slice();
    bytes[9] = 0x2c; // '{,' is not JSON
    expectError(() => decodeCheckpoint(bytes), 'bad-header', /JSON header/);
  });
  it('a dtype other than F32', () => expectError(() => decodeSafetensors(withHeader({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4))), 'dtype', /F16/));
  it('a size that does not match the shape', () => expectError(() => decodeSafetensors(withHeader({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8))), 'bad-header', /needs 12 bytes/));
  it('overlapping tensors', () =>
    expectError(() => decodeSafetensors(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12))), 'bad-header', /overlap/));
  it('a bad shape', () => expectError(() => decodeSafetensors(withHeader({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4))), 'bad-header'));
  it('non-string metadata', () => expectError(() => decodeSafetensors(withHeader({ __metadata__: { epoch: 3 } })), 'bad-header', /epoch/));
  it('a weights file without checkpoint metadata', () => expectError(() => decodeCheckpoint(encodeSafetensors(new Map([['w', tensor([2])]]))), 'metadata', /not a convspec checkpoint/));
  it('checkpoint metadata with a bad field', () => {
    const broken = encodeSafetensors(new Map([['w', tensor([2])]]), { format: 'convspec-checkpoint', format_version: '1', epoch: 'three', step: '1', seed: '0', spec_hash: 'x', optimizer: '{}', optimizer_state: '[]', history: '[]', trainer: '{}' });
    expectError(() => decodeCheckpoint(broken), 'metadata', /epoch/);
  });
  it('optimizer state listed but missing', () => {
    const broken = encodeSafetensors(new Map([['w', tensor([2])]]), { format: 'convspec-checkpoint', format_version: '1', epoch: '1', step: '1', seed: '0', spec_hash: 'x', optimizer: '{}', optimizer_state: '["optimizer.exp_avg.w"]', history: '[]', trainer: '{}' });
    expectError(() => decodeCheckpoint(broken), 'metadata', /missing from the file/);
  });
  it('a newer format version', () => {
    const broken = encodeSafetensors(new Map(), { format: 'convspec-checkpoint', format_version: '2' });
    expectError(() => decodeCheckpoint(broken), 'metadata', /version 2/);
  });
  it('random bytes never crash the reader', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const bytes = good.slice();
      let state = seed;
      for (let k = 0; k < 4; k++) {
        state = (state * 1103515245 + 12345) >>> 0;
        bytes[state % bytes.length] = state >>> 24;
      }
      try {
        decodeCheckpoint(bytes.subarray(0, bytes.length - (seed % 7)));
      } catch (error) {
        expect(error).toBeInstanceOf(CheckpointError);
      }
    }
  });
  it('a corrupt file on disk', () => {
    const path = join(directory, 'corrupt.ckpt');
    writeFileSync(path, good.subarray(0, 100));
    expectError(() => readCheckpoint(path), 'truncated', /corrupt\.ckpt/);
  });
});

describe('graph fingerprint', () => {
  const spec = (extra: string) => elaborate('f.cnn', { text: `model F {\n  input x: f32[N, 3, 8, 8]\n  y = x -> conv(4, 3) -> bn -> relu -> flatten -> dense(2)\n  output y\n${extra}}` }).graph!;
  it('ignores freeze, regularisers and training settings, but not the architecture', () => {
    const base = graphFingerprint(spec(''));
    expect(graphFingerprint(spec('  freeze y.conv1\n  regularize l2(1e-4) on conv\n  train {\n    epochs: 3\n  }\n'))).toBe(base);
    const other = elaborate('f.cnn', { text: 'model F {\n  input x: f32[N, 3, 8, 8]\n  y = x -> conv(5, 3) -> bn -> relu -> flatten -> dense(2)\n  output y\n}' }).graph!;
    expect(graphFingerprint(other)).not.toBe(base);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
  });
});
