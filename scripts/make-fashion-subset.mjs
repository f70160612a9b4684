#!/usr/bin/env node
/**
 * Builds the embedded Fashion-MNIST subset in data/fashion-mnist-subset/ from the full data set that Debian's
 * `dataset-fashion-mnist` package installs under /usr/share/datasets/fashion-mnist.
 *
 * Selection is stratified and fixed: for every class, the first N images of that class in file order
 * (N = 300 for train, 100 for test by default), kept in their original relative order. No randomness, so the
 * same source files always give byte-identical output (gzip level 9, zero timestamp).
 *
 * A plain Node ESM script (no build step, no dependencies) with its own few lines of IDX reading and writing;
 * the library's reader lives in src/runtime/data/idx.ts.
 *
 * Usage: node scripts/make-fashion-subset.mjs [--source DIR] [--output DIR] [--train-per-class N] [--test-per-class N]
 */

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

const classNames = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

function parseArguments(argv) {
  const options = {
    source: '/usr/share/datasets/fashion-mnist',
    output: resolve(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'fashion-mnist-subset'),
    trainPerClass: 300,
    testPerClass: 100,
  };
  for (let index = 0; index < argv.length; index += 2) {
    const [flag, value] = [argv[index], argv[index + 1]];
    if (value === undefined) throw new Error(`missing value after ${flag}`);
    if (flag === '--source') options.source = value;
    else if (flag === '--output') options.output = resolve(value);
    else if (flag === '--train-per-class') options.trainPerClass = Number(value);
    else if (flag === '--test-per-class') options.testPerClass = Number(value);
    else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

/** Reads a gzip (or plain) IDX file of unsigned bytes: { shape, data }. */
function readUint8Idx(path) {
  let bytes = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) throw new Error(`${path}: not a uint8 IDX file`);
  const dimensionCount = bytes[3];
  const shape = [];
  for (let dimension = 0; dimension < dimensionCount; dimension++) shape.push(bytes.readUInt32BE(4 + 4 * dimension));
  const data = bytes.subarray(4 + 4 * dimensionCount);
  if (data.length !== shape.reduce((product, size) => product * size, 1)) throw new Error(`${path}: size mismatch`);
  return { shape, data };
}

/** Writes a uint8 IDX file, gzip level 9, atomically (temporary file + rename). */
function writeUint8Idx(path, shape, data) {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = 0x08;
  header[3] = shape.length;
  shape.forEach((size, dimension) => header.writeUInt32BE(size, 4 + 4 * dimension));
  const compressed = gzipSync(Buffer.concat([header, data]), { level: 9 });
  const temporaryPath = `${path}.${process.pid}.tmp`;
  writeFileSync(temporaryPath, compressed);
  renameSync(temporaryPath, path);
  return compressed.length;
}

function makeSplit(options, sourcePrefix, perClass) {
  const images = readUint8Idx(join(options.source, `${sourcePrefix}-images-idx3-ubyte.gz`));
  const labels = readUint8Idx(join(options.source, `${sourcePrefix}-labels-idx1-ubyte.gz`));
  const [count, height, width] = images.shape;
  if (labels.shape[0] !== count) throw new Error(`${sourcePrefix}: ${labels.shape[0]} labels for ${count} images`);
  const taken = new Array(classNames.length).fill(0);
  const selected = [];
  for (let index = 0; index < count; index++) {
    const label = labels.data[index];
    if (taken[label] < perClass) {
      taken[label]++;
      selected.push(index);
    }
  }
  if (taken.some((classCount) => classCount < perClass)) {
    throw new Error(`${sourcePrefix}: a class has fewer than ${perClass} images (${taken.join(', ')})`);
  }
  const imageSize = height * width;
  const subsetImages = Buffer.alloc(selected.length * imageSize);
  const subsetLabels = Buffer.alloc(selected.length);
  selected.forEach((index, position) => {
    images.data.copy(subsetImages, position * imageSize, index * imageSize, (index + 1) * imageSize);
    subsetLabels[position] = labels.data[index];
  });
  const imagesBytes = writeUint8Idx(
    join(options.output, `${sourcePrefix}-images-idx3-ubyte.gz`),
    [selected.length, height, width],
    subsetImages,
  );
  const labelsBytes = writeUint8Idx(join(options.output, `${sourcePrefix}-labels-idx1-ubyte.gz`), [selected.length], subsetLabels);
  console.log(
    `${sourcePrefix}: ${selected.length} of ${count} images (${perClass} per class), ` +
      `${imagesBytes + labelsBytes} bytes compressed`,
  );
}

const options = parseArguments(process.argv.slice(2));
mkdirSync(options.output, { recursive: true });
makeSplit(options, 'train', options.trainPerClass);
makeSplit(options, 't10k', options.testPerClass);
writeFileSync(join(options.output, 'classes.txt'), classNames.join('\n') + '\n');
console.log(`wrote ${options.output}`);
