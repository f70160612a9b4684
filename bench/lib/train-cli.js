/**
 * convspec's training throughput through its `train` command (CLI.md): run it for 1 and for 3 epochs on a
 * subset of Fashion-MNIST written as IDX files; throughput = (images in the 2 extra epochs) / (difference of
 * the two wall times). The difference cancels start-up, data loading and the backend's first-step compilation,
 * as warm-up steps do for PyTorch. Shared by the training group (CPU) and bench/gpu-bench.js (GPU backends).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

import { failureReason, runCommand } from './proc.js';

export const DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

/** Debian's Fashion-MNIST when installed, else the subset embedded in the package. */
export function fashionMnistDirectory(root) {
  if (existsSync(path.join(DEBIAN_FASHION_MNIST, 'train-images-idx3-ubyte.gz'))) return DEBIAN_FASHION_MNIST;
  return path.join(root, 'data', 'fashion-mnist-subset');
}

/** The first `count` samples of an IDX file (gzip or not), gzipped. */
export function idxHead(file, count) {
  let bytes = readFileSync(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const ndim = bytes[3];
  const dims = Array.from({ length: ndim }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
  const n = Math.min(count, dims[0]);
  const per = dims.slice(1).reduce((a, b) => a * b, 1);
  const header = Buffer.from(bytes.subarray(0, 4 + 4 * ndim));
  header.writeUInt32BE(n, 4);
  return gzipSync(Buffer.concat([header, bytes.subarray(4 + 4 * ndim, 4 + 4 * ndim + n * per)]));
}

/** Writes `trainCount` training and `testCount` test samples of `source` as IDX files into `dir`. */
export function writeFashionSubset(source, dir, trainCount, testCount) {
  mkdirSync(dir, { recursive: true });
  for (const [prefix, count] of [['train', trainCount], ['t10k', testCount]]) {
    for (const kind of ['images-idx3', 'labels-idx1']) {
      const name = `${prefix}-${kind}-ubyte.gz`;
      writeFileSync(path.join(dir, name), idxHead(path.join(source, name), count));
    }
  }
  return dir;
}

/**
 * Whether `convspec train` exists, and its options. Commander prints the top-level help (exit 0) for
 * `unknown --help`, so the command's own usage line is what tells.
 */
export async function probeTrainCommand(root) {
  const help = await runCommand(process.execPath, [path.join(root, 'bin', 'convspec.js'), 'train', '--help'], { cwd: root, timeoutMs: 60_000 });
  if (help.code !== 0 || !/Usage: convspec train\b/.test(help.stdout)) {
    return { available: false, reason: '`convspec train` does not exist yet (not among the commands of `convspec --help`)' };
  }
  return { available: true, threadsOption: /--threads\b/.test(help.stdout), help: help.stdout };
}

/**
 * Images per second of `convspec train SPEC` on `dataDir` (holding `images` training images) with `backend`
 * (`env`: extra environment variables, such as CONVSPEC_WASM_THREADS).
 * Throws an Error whose message says why when a run fails.
 */
export async function trainThroughput({ root, spec = 'specs/fashion.cnn', dataDir, images, batch = 64, backend, threads, env, outDir }) {
  const args = (epochs) => [
    path.join(root, 'bin', 'convspec.js'), 'train', spec, '--data', dataDir, '--epochs', String(epochs), '--batch', String(batch),
    ...(backend ? ['--backend', backend] : []), ...(threads ? ['--threads', String(threads)] : []), '-o', path.join(outDir, `epochs-${epochs}`),
  ];
  const once = async (epochs) => {
    const result = await runCommand(process.execPath, args(epochs), { cwd: root, timeoutMs: 600_000, ...(env ? { env: { ...process.env, ...env } } : {}) });
    if (result.code !== 0) throw new Error(`convspec train --epochs ${epochs}${backend ? ` --backend ${backend}` : ''}: ${failureReason(result)}`);
    return result.seconds;
  };
  const short = await once(1);
  const long = await once(3);
  if (!(long > short)) throw new Error(`3 epochs took no longer than 1 (${long.toFixed(2)} s vs ${short.toFixed(2)} s)`);
  return { imagesPerSecond: (2 * images) / (long - short), seconds: { oneEpoch: short, threeEpochs: long } };
}
