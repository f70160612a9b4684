/**
 * In-memory image classification datasets and what training does with them: loading (Fashion-MNIST, IDX folders,
 * `.npy` pairs, PNG class folders), normalisation, class filtering, train/validation splits, seeded shuffling,
 * batching and augmentation.
 *
 * A `Dataset` is plain typed arrays (float32 NCHW images, int32 labels), independent of any tensor library, so the
 * tfjs engine, the ONNX Runtime engine and tests all consume the same thing. Loaders return values in [0, 1]
 * (bytes divided by 255); `normalizeDataset` then applies x' = (x − mean[c]) / std[c] per channel c when a model
 * was trained that way.
 *
 * Reproducibility: everything random takes a seed. The sample order of epoch e is the Fisher–Yates permutation
 * driven by mulberry32(deriveSeed(seed, e, 1)); the augmentation of batch b in epoch e is driven by
 * mulberry32(deriveSeed(seed, e, 2, b)). So the same seed gives the same batches, epoch after epoch, whatever the
 * consumer does between batches.
 *
 * Functions here never modify their input dataset: they return new arrays (or the same dataset when nothing
 * changes).
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError, describeCause } from './data-error.js';
import { readIdxFile, type IdxArray } from './idx.js';
import { readNpyFile, type NpyArray } from './npy.js';
import { loadPngFolder, type PngFolderOptions } from './png-folder.js';
import { createMulberry32, deriveSeed, randomInteger, shuffledIndices, type RandomSource } from '../../random.js';

/** [channels, height, width] of one sample. */
export type ImageShape = [channels: number, height: number, width: number];

export interface Dataset {
  /** count × channels × height × width values, NCHW, float32. */
  images: Float32Array;
  /** One class index per sample. */
  labels: Int32Array;
  shape: ImageShape;
  count: number;
  /** Name of class i at index i, when known. */
  classNames?: string[];
  /** Where the samples came from (a path or a name), for logs. */
  source?: string;
  /** Things a user should know about how the data was loaded, e.g. a fallback to the embedded subset. */
  notes?: string[];
}

export type DatasetSplit = 'train' | 'test';

/** Values in one sample. */
export function sampleSize(dataset: Pick<Dataset, 'shape'>): number {
  return dataset.shape[0] * dataset.shape[1] * dataset.shape[2];
}

/** Checks that the arrays agree with `count` and `shape`; returns the dataset. */
export function checkDataset<T extends Dataset>(dataset: T): T {
  const { shape, count, images, labels } = dataset;
  const where = dataset.source;
  if (shape.length !== 3 || shape.some((size) => !Number.isInteger(size) || size <= 0)) {
    throw new DataError(`sample shape [${shape.join(', ')}] is not three positive integers [C, H, W]`, where);
  }
  if (images.length !== count * sampleSize(dataset)) {
    throw new DataError(
      `images hold ${images.length} values, but ${count} samples of shape [${shape.join(', ')}] need ${count * sampleSize(dataset)}`,
      where,
    );
  }
  if (labels.length !== count) throw new DataError(`${labels.length} labels for ${count} images`, where);
  return dataset;
}

/** Divides bytes by 255, giving float32 values in [0, 1]. */
export function scaleBytesToUnitRange(bytes: Uint8Array): Float32Array {
  const scaled = new Float32Array(bytes.length);
  for (let index = 0; index < bytes.length; index++) scaled[index] = bytes[index]! / 255;
  return scaled;
}

// ---------------------------------------------------------------------------------------------------------------
// Fashion-MNIST
// ---------------------------------------------------------------------------------------------------------------

/** Fashion-MNIST's class names, label 0 to 9 (from Zalando Research's README). */
export const fashionMnistClassNames: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Where Debian's `dataset-fashion-mnist` package installs the full data set. */
export const debianFashionMnistDirectory = '/usr/share/datasets/fashion-mnist';

/** The name `loadDataset` accepts for the embedded subset. */
export const fashionMnistSubsetName = 'fashion-mnist-subset';

/**
 * The folder of the embedded Fashion-MNIST subset (`data/fashion-mnist-subset` at the package root). This module
 * sits three folders below the root both as source (`src/runtime/data/`) and compiled (`dist/runtime/data/`);
 * we still walk up in case the layout changes, and return the first candidate that exists.
 */
export function embeddedFashionMnistSubsetDirectory(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(directory, 'data', fashionMnistSubsetName);
    if (existsSync(join(candidate, 'train-images-idx3-ubyte.gz'))) return candidate;
    const parent = dirname(directory);
    if (parent === directory) break;
    directory = parent;
  }
  throw new DataError(`the embedded ${fashionMnistSubsetName} folder is missing from this installation`);
}

function idxFileNames(split: DatasetSplit): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte.gz`, labels: `${prefix}-labels-idx1-ubyte.gz` };
}

export interface FashionMnistOptions {
  /** Folder with the four `*-ubyte.gz` files; default `/usr/share/datasets/fashion-mnist`. */
  directory?: string;
  /** Load the embedded subset even when the full data set is present. */
  forceSubset?: boolean;
}

/**
 * Loads Fashion-MNIST (28×28 grey, 10 classes) with values in [0, 1]: the full data set (60,000 train /
 * 10,000 test) from the Debian package when it is installed, otherwise the embedded stratified subset
 * (3,000 / 1,000) with a note saying so. Files that exist but are damaged are an error, never a silent fallback.
 */
export function loadFashionMnist(split: DatasetSplit, options: FashionMnistOptions = {}): Dataset {
  const directory = options.directory ?? debianFashionMnistDirectory;
  const names = idxFileNames(split);
  const notes: string[] = [];
  if (!options.forceSubset) {
    const imagesPath = join(directory, names.images);
    const labelsPath = join(directory, names.labels);
    if (existsSync(imagesPath) && existsSync(labelsPath)) {
      return loadIdxPair(imagesPath, labelsPath, { classNames: [...fashionMnistClassNames], source: directory });
    }
    notes.push(
      `Fashion-MNIST was not found in ${directory} (on Debian: apt install dataset-fashion-mnist); ` +
        `using the embedded subset (${split === 'train' ? '3,000' : '1,000'} ${split} images) instead`,
    );
  }
  const subsetDirectory = embeddedFashionMnistSubsetDirectory();
  const subset = loadIdxPair(join(subsetDirectory, names.images), join(subsetDirectory, names.labels), {
    classNames: [...fashionMnistClassNames],
    source: `${fashionMnistSubsetName} (${subsetDirectory})`,
  });
  return notes.length > 0 ? { ...subset, notes } : subset;
}

// ---------------------------------------------------------------------------------------------------------------
// Generic loaders
// ---------------------------------------------------------------------------------------------------------------

/** Converts integer label data to int32, checking that every label is a non-negative int32. */
function toLabels(data: ArrayLike<number | bigint>, sourceName: string): Int32Array {
  const labels = new Int32Array(data.length);
  for (let index = 0; index < data.length; index++) {
    const value = Number(data[index]!);
    if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
      throw new DataError(`label ${String(data[index])} at index ${index} is not a non-negative 32-bit integer`, sourceName);
    }
    labels[index] = value;
  }
  return labels;
}

/** Images as [N, H, W] (one channel) or [N, C, H, W]: the shape of one sample. */
function sampleShapeOf(shape: readonly number[], sourceName: string): ImageShape {
  if (shape.length === 3) return [1, shape[1]!, shape[2]!];
  if (shape.length === 4) return [shape[1]!, shape[2]!, shape[3]!];
  throw new DataError(
    `images must have shape [N, H, W] or [N, C, H, W], found [${shape.join(', ')}]`,
    sourceName,
  );
}

function idxImagesToFloat(images: IdxArray, sourceName: string): Float32Array {
  if (images.dtype === 'uint8') return scaleBytesToUnitRange(images.data as Uint8Array);
  if (images.dtype === 'float32') return images.data as Float32Array;
  if (images.dtype === 'float64') return Float32Array.from(images.data as Float64Array);
  throw new DataError(`images must be uint8 (0–255) or float, found ${images.dtype}`, sourceName);
}

/** Loads an images IDX file ([N, H, W] or [N, C, H, W]) with its labels IDX file ([N]). */
export function loadIdxPair(
  imagesPath: string,
  labelsPath: string,
  details: { classNames?: string[]; source?: string } = {},
): Dataset {
  const images = readIdxFile(imagesPath);
  const labels = readIdxFile(labelsPath);
  const shape = sampleShapeOf(images.shape, imagesPath);
  if (labels.shape.length !== 1 || labels.dtype === 'float32' || labels.dtype === 'float64') {
    throw new DataError(`labels must be a 1-D integer array, found ${labels.dtype} [${labels.shape.join(', ')}]`, labelsPath);
  }
  const count = images.shape[0]!;
  if (labels.shape[0] !== count) {
    throw new DataError(`${labels.shape[0]} labels for the ${count} images in ${imagesPath}`, labelsPath);
  }
  return checkDataset({
    images: idxImagesToFloat(images, imagesPath),
    labels: toLabels(labels.data, labelsPath),
    shape,
    count,
    source: details.source ?? dirname(imagesPath),
    ...(details.classNames ? { classNames: details.classNames } : {}),
  });
}

export type NpyImageLayout = 'NCHW' | 'NHWC';

function npyImagesToFloat(array: NpyArray, sourceName: string): Float32Array {
  switch (array.dtype) {
    case 'uint8':
      return scaleBytesToUnitRange(array.data);
    case 'bool':
      return Float32Array.from(array.data);
    case 'float32':
      return array.data as Float32Array;
    case 'float64':
      return Float32Array.from(array.data as Float64Array);
    default:
      throw new DataError(`images must be uint8 (0–255), bool or float, found ${array.dtype}`, sourceName);
  }
}

/** Reorders [N, H, W, C] values to [N, C, H, W]. */
function channelsLastToFirst(values: Float32Array, count: number, [channels, height, width]: ImageShape): Float32Array {
  const reordered = new Float32Array(values.length);
  const plane = height * width;
  for (let sample = 0; sample < count; sample++) {
    const base = sample * channels * plane;
    for (let pixel = 0; pixel < plane; pixel++) {
      for (let channel = 0; channel < channels; channel++) {
        reordered[base + channel * plane + pixel] = values[base + pixel * channels + channel]!;
      }
    }
  }
  return reordered;
}

/**
 * Loads images and labels from two `.npy` files. Images: uint8 (scaled by 1/255), bool or float (kept as they
 * are), shape [N, H, W] or 4-D in `layout` (default NCHW). Labels: integers of shape [N] or [N, 1].
 */
export function loadNpyPair(
  imagesPath: string,
  labelsPath: string,
  details: { layout?: NpyImageLayout; classNames?: string[]; source?: string } = {},
): Dataset {
  const images = readNpyFile(imagesPath);
  const labels = readNpyFile(labelsPath);
  const count = images.shape[0] ?? 0;
  let shape = sampleShapeOf(images.shape, imagesPath);
  let values = npyImagesToFloat(images, imagesPath);
  if (images.shape.length === 4 && details.layout === 'NHWC') {
    shape = [images.shape[3]!, images.shape[1]!, images.shape[2]!];
    values = channelsLastToFirst(values, count, shape);
  }
  const labelShapeOk = labels.shape.length === 1 || (labels.shape.length === 2 && labels.shape[1] === 1);
  if (!labelShapeOk || labels.dtype === 'float32' || labels.dtype === 'float64' || labels.dtype === 'bool') {
    throw new DataError(
      `labels must be integers of shape [N] or [N, 1], found ${labels.dtype} (${labels.shape.join(', ')})`,
      labelsPath,
    );
  }
  if (labels.shape[0] !== count) {
    throw new DataError(`${labels.shape[0]} labels for the ${count} images in ${imagesPath}`, labelsPath);
  }
  return checkDataset({
    images: values,
    labels: toLabels(labels.data, labelsPath),
    shape,
    count,
    source: details.source ?? dirname(imagesPath),
    ...(details.classNames ? { classNames: details.classNames } : {}),
  });
}

/** Reads optional class names from `classes.txt` (one per line, label order) in a dataset folder. */
function readClassNames(directory: string): string[] | undefined {
  const path = join(directory, 'classes.txt');
  if (!existsSync(path)) return undefined;
  try {
    return readFileSync(path, 'utf8')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
  } catch (error) {
    throw new DataError(`cannot read class names: ${describeCause(error)}`, path, { cause: error });
  }
}

const idxImagesPattern = /^(.*?)[-_.]?images[-_.]idx[34][-_.]ubyte(\.gz)?$/;
const idxLabelsPattern = /^(.*?)[-_.]?labels[-_.]idx1[-_.]ubyte(\.gz)?$/;

function splitPrefixes(split: DatasetSplit): string[] {
  return split === 'train' ? ['train'] : ['t10k', 'test'];
}

/** Finds the images and labels IDX files of `split` in a folder (MNIST naming: train-… / t10k-… or test-…). */
function findIdxPair(directory: string, names: string[], split: DatasetSplit): { images: string; labels: string } | undefined {
  const images = names.filter((name) => idxImagesPattern.test(name));
  const labels = names.filter((name) => idxLabelsPattern.test(name));
  if (images.length === 0 && labels.length === 0) return undefined;
  const prefixOf = (name: string, pattern: RegExp) => pattern.exec(name)![1]!.toLowerCase();
  const wanted = splitPrefixes(split);
  const imagesName = images.find((name) => wanted.includes(prefixOf(name, idxImagesPattern)));
  const labelsName = labels.find((name) => wanted.includes(prefixOf(name, idxLabelsPattern)));
  if (imagesName === undefined || labelsName === undefined) {
    throw new DataError(
      `found IDX files (${[...images, ...labels].join(', ')}) but not both the images and the labels of the ` +
        `'${split}' split (expected names like ${wanted[0]}-images-idx3-ubyte.gz and ${wanted[0]}-labels-idx1-ubyte.gz)`,
      directory,
    );
  }
  return { images: join(directory, imagesName), labels: join(directory, labelsName) };
}

export interface LoadDatasetOptions extends PngFolderOptions {
  /** Which split to read from a folder that holds several (IDX: train / t10k; npy: x_train.npy …). Default train. */
  split?: DatasetSplit;
  /** Layout of 4-D `.npy` images; default NCHW. */
  layout?: NpyImageLayout;
}

/**
 * Loads a dataset from `path`, which is one of:
 * - `fashion-mnist-subset` (the embedded subset) or `fashion-mnist` (Debian's copy, else the subset), unless a
 *   file or folder of that name exists;
 * - a folder of IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…`);
 * - a folder with `x.npy` + `y.npy`, or `x_train.npy` + `y_train.npy` (and `_test`);
 * - a PNG class folder, `path/<class>/*.png`.
 * A `classes.txt` (one name per line) in an IDX or npy folder gives the class names.
 */
export function loadDataset(path: string, options: LoadDatasetOptions = {}): Dataset {
  const split = options.split ?? 'train';
  if (!existsSync(path)) {
    if (path === fashionMnistSubsetName) return loadFashionMnist(split, { forceSubset: true });
    if (path === 'fashion-mnist') return loadFashionMnist(split);
    throw new DataError(
      `no such file or folder (expected a folder of IDX files, x.npy + y.npy, PNG class folders, or '${fashionMnistSubsetName}')`,
      path,
    );
  }
  if (!statSync(path).isDirectory()) {
    const hint = path.toLowerCase().endsWith('.npz')
      ? '.npz archives are not supported; save the arrays as x.npy and y.npy in a folder'
      : 'expected a folder (of IDX files, of x.npy + y.npy, or of PNG class folders), not a file';
    throw new DataError(hint, path);
  }
  let names: string[];
  try {
    names = readdirSync(path).sort();
  } catch (error) {
    throw new DataError(`cannot list folder: ${describeCause(error)}`, path, { cause: error });
  }
  const classNames = readClassNames(path);
  const withClassNames = classNames ? { classNames } : {};

  const idxPair = findIdxPair(path, names, split);
  if (idxPair) return loadIdxPair(idxPair.images, idxPair.labels, { ...withClassNames, source: path });

  for (const [imagesName, labelsName] of [
    [`x_${split}.npy`, `y_${split}.npy`],
    ['x.npy', 'y.npy'],
  ] as const) {
    if (names.includes(imagesName) && names.includes(labelsName)) {
      return loadNpyPair(join(path, imagesName), join(path, labelsName), {
        ...withClassNames,
        source: path,
        ...(options.layout ? { layout: options.layout } : {}),
      });
    }
  }
  if (names.some((name) => name.endsWith('.npy'))) {
    throw new DataError(`found .npy files but not a pair x.npy + y.npy (or x_${split}.npy + y_${split}.npy)`, path);
  }

  // Otherwise a PNG class folder; its loader explains what is missing when it is not one either.
  return loadPngFolder(path, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Transformations
// ---------------------------------------------------------------------------------------------------------------

/** A new dataset holding the samples at `indices`, in that order. */
export function selectSamples(dataset: Dataset, indices: ArrayLike<number>): Dataset {
  const size = sampleSize(dataset);
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let position = 0; position < indices.length; position++) {
    const index = indices[position]!;
    if (!Number.isInteger(index) || index < 0 || index >= dataset.count) {
      throw new DataError(`sample index ${index} is out of range 0..${dataset.count - 1}`, dataset.source);
    }
    images.set(dataset.images.subarray(index * size, (index + 1) * size), position * size);
    labels[position] = dataset.labels[index]!;
  }
  return { ...dataset, images, labels, count: indices.length };
}

/** The first `count` samples as views of the same arrays (no copy); the dataset itself when it has no more. */
export function firstSamples(dataset: Dataset, count: number): Dataset {
  if (count >= dataset.count) return dataset;
  return { ...dataset, images: dataset.images.subarray(0, count * sampleSize(dataset)), labels: dataset.labels.subarray(0, count), count };
}

/** The dataset in the order fixed by `seed`. */
export function shuffleDataset(dataset: Dataset, seed: number): Dataset {
  return selectSamples(dataset, shuffledIndices(dataset.count, seed));
}

export interface FilterClassesOptions {
  /** Renumber the kept classes 0..k−1 in the order given (needed to train a k-way head). Default false. */
  relabel?: boolean;
}

/**
 * Keeps the samples whose label is in `classes` (e.g. [0, 1, 2, 3, 4]). With `relabel`, class `classes[i]`
 * becomes label i and `classNames` lists the kept names in that order.
 */
export function filterClasses(dataset: Dataset, classes: readonly number[], options: FilterClassesOptions = {}): Dataset {
  if (new Set(classes).size !== classes.length) {
    throw new DataError(`class list [${classes.join(', ')}] repeats a class`, dataset.source);
  }
  const newLabelOf = new Map(classes.map((label, position) => [label, position]));
  const kept: number[] = [];
  for (let index = 0; index < dataset.count; index++) {
    if (newLabelOf.has(dataset.labels[index]!)) kept.push(index);
  }
  const filtered = selectSamples(dataset, kept);
  if (!options.relabel) return filtered;
  const labels = filtered.labels.map((label) => newLabelOf.get(label)!);
  const result: Dataset = { ...filtered, labels };
  if (dataset.classNames) result.classNames = classes.map((label) => dataset.classNames![label] ?? `class ${label}`);
  return result;
}

export interface TrainValidationSplitOptions {
  /** Fraction of samples (of each class, when stratified) that goes to validation, in [0, 1]. */
  validationFraction: number;
  seed: number;
  /** Take the fraction from each class separately, so both parts keep the class balance. Default true. */
  stratify?: boolean;
}

/**
 * Splits a dataset into training and validation parts, reproducibly under `seed`. Each part keeps the original
 * sample order (shuffle when batching); with stratification each class contributes round(fraction × its count).
 */
export function splitTrainValidation(
  dataset: Dataset,
  options: TrainValidationSplitOptions,
): { train: Dataset; validation: Dataset } {
  const { validationFraction, seed } = options;
  if (!(validationFraction >= 0 && validationFraction <= 1)) {
    throw new DataError(`validation fraction ${validationFraction} is not in [0, 1]`, dataset.source);
  }
  const groups = new Map<number, number[]>();
  for (let index = 0; index < dataset.count; index++) {
    const key = options.stratify === false ? 0 : dataset.labels[index]!;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(index);
  }
  const isValidation = new Uint8Array(dataset.count);
  for (const [key, members] of [...groups].sort(([left], [right]) => left - right)) {
    const order = shuffledIndices(members.length, deriveSeed(seed, key));
    const validationCount = Math.round(validationFraction * members.length);
    for (let position = 0; position < validationCount; position++) isValidation[members[order[position]!]!] = 1;
  }
  const train: number[] = [];
  const validation: number[] = [];
  for (let index = 0; index < dataset.count; index++) (isValidation[index] ? validation : train).push(index);
  return { train: selectSamples(dataset, train), validation: selectSamples(dataset, validation) };
}

export interface ChannelStatistics {
  mean: number[];
  std: number[];
}

/** Per-channel mean and (population) standard deviation over all samples and pixels. */
export function computeChannelStatistics(dataset: Dataset): ChannelStatistics {
  const [channels, height, width] = dataset.shape;
  const plane = height * width;
  const mean: number[] = [];
  const std: number[] = [];
  for (let channel = 0; channel < channels; channel++) {
    let sum = 0;
    let sumOfSquares = 0;
    for (let sample = 0; sample < dataset.count; sample++) {
      const base = (sample * channels + channel) * plane;
      for (let pixel = 0; pixel < plane; pixel++) {
        const value = dataset.images[base + pixel]!;
        sum += value;
        sumOfSquares += value * value;
      }
    }
    const valueCount = dataset.count * plane;
    const channelMean = valueCount > 0 ? sum / valueCount : 0;
    mean.push(channelMean);
    std.push(valueCount > 0 ? Math.sqrt(Math.max(sumOfSquares / valueCount - channelMean * channelMean, 0)) : 0);
  }
  return { mean, std };
}

function perChannel(name: string, value: number | readonly number[], channels: number, source?: string): number[] {
  const values = typeof value === 'number' ? new Array<number>(channels).fill(value) : [...value];
  if (values.length !== channels) {
    throw new DataError(`${name} has ${values.length} values for ${channels} channels`, source);
  }
  return values;
}

/** A new dataset with x' = (x − mean[c]) / std[c] for every channel c. */
export function normalizeDataset(
  dataset: Dataset,
  statistics: { mean: number | readonly number[]; std: number | readonly number[] },
): Dataset {
  const [channels, height, width] = dataset.shape;
  const mean = perChannel('mean', statistics.mean, channels, dataset.source);
  const std = perChannel('std', statistics.std, channels, dataset.source);
  if (std.some((value) => !(value > 0))) {
    throw new DataError(`standard deviations [${std.join(', ')}] must all be positive`, dataset.source);
  }
  const plane = height * width;
  const images = new Float32Array(dataset.images.length);
  for (let sample = 0; sample < dataset.count; sample++) {
    for (let channel = 0; channel < channels; channel++) {
      const base = (sample * channels + channel) * plane;
      for (let pixel = 0; pixel < plane; pixel++) {
        images[base + pixel] = (dataset.images[base + pixel]! - mean[channel]!) / std[channel]!;
      }
    }
  }
  return { ...dataset, images };
}

// ---------------------------------------------------------------------------------------------------------------
// Augmentation and batching
// ---------------------------------------------------------------------------------------------------------------

export interface AugmentationOptions {
  /** Mirror left–right with this probability (true = 0.5). */
  horizontalFlip?: boolean | number;
  /**
   * Pad every side by `padding` pixels of `fillValue` (default 0), then crop the original size at a uniformly
   * random offset in [0, 2·padding]², the CIFAR-style "random crop with padding".
   */
  randomCrop?: { padding: number; fillValue?: number };
}

/**
 * Augments the first `size` samples of the NCHW batch `x` in place, drawing from `random`, and returns `x`.
 * Each sample draws, in order, a flip decision (when flipping is on) then a crop offset (when cropping is on).
 */
export function augmentBatch(
  x: Float32Array,
  size: number,
  shape: ImageShape,
  options: AugmentationOptions,
  random: RandomSource,
): Float32Array {
  const [channels, height, width] = shape;
  const flipProbability =
    options.horizontalFlip === true ? 0.5 : typeof options.horizontalFlip === 'number' ? options.horizontalFlip : 0;
  const padding = options.randomCrop?.padding ?? 0;
  if (!Number.isInteger(padding) || padding < 0) throw new DataError(`crop padding ${padding} is not a non-negative integer`);
  const fillValue = options.randomCrop?.fillValue ?? 0;
  const plane = height * width;
  const scratch = new Float32Array(plane);
  for (let sample = 0; sample < size; sample++) {
    const flip = flipProbability > 0 && random() < flipProbability;
    const rowShift = options.randomCrop ? randomInteger(random, 2 * padding + 1) - padding : 0;
    const columnShift = options.randomCrop ? randomInteger(random, 2 * padding + 1) - padding : 0;
    if (!flip && rowShift === 0 && columnShift === 0) continue;
    for (let channel = 0; channel < channels; channel++) {
      const base = (sample * channels + channel) * plane;
      scratch.set(x.subarray(base, base + plane));
      for (let row = 0; row < height; row++) {
        const sourceRow = row + rowShift;
        for (let column = 0; column < width; column++) {
          // Output (row, column) reads the padded image at (row + padding + rowShift, …), i.e. the original at
          // (row + rowShift, column + columnShift), after mirroring the column when flipping.
          const shiftedColumn = column + columnShift;
          const sourceColumn = flip ? width - 1 - shiftedColumn : shiftedColumn;
          const inside = sourceRow >= 0 && sourceRow < height && sourceColumn >= 0 && sourceColumn < width;
          x[base + row * width + column] = inside ? scratch[sourceRow * width + sourceColumn]! : fillValue;
        }
      }
    }
  }
  return x;
}

export interface BatchOptions {
  batchSize: number;
  /** Visit samples in a seeded random order (default false: dataset order). */
  shuffle?: boolean;
  /** Seed for shuffling and augmentation; default 0. */
  seed?: number;
  /** Epoch number, mixed into the seed so each epoch has its own order and augmentation; default 0. */
  epoch?: number;
  /** Skip a last batch smaller than `batchSize`; default false. */
  dropLast?: boolean;
  augmentation?: AugmentationOptions;
}

export interface Batch {
  /** size × C × H × W values, NCHW; a fresh array the consumer may keep or modify. */
  x: Float32Array;
  y: Int32Array;
  size: number;
  /** Indices of the batch's samples in the dataset. */
  indices: Int32Array;
}

/** Number of batches `iterateBatches` yields for these options. */
export function countBatches(dataset: Pick<Dataset, 'count'>, options: Pick<BatchOptions, 'batchSize' | 'dropLast'>): number {
  return options.dropLast ? Math.floor(dataset.count / options.batchSize) : Math.ceil(dataset.count / options.batchSize);
}

/** Stream identifiers mixed into seeds so that shuffling and augmentation never share random numbers. */
const shuffleStream = 1;
const augmentationStream = 2;

/**
 * Yields one epoch of batches. Every sample appears exactly once per epoch (unless `dropLast` drops the tail).
 * Deterministic: the same dataset, options, seed and epoch give the same batches.
 */
export function* iterateBatches(dataset: Dataset, options: BatchOptions): Generator<Batch> {
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new DataError(`batch size ${batchSize} is not a positive integer`, dataset.source);
  }
  const seed = options.seed ?? 0;
  const epoch = options.epoch ?? 0;
  let order: Int32Array;
  if (options.shuffle) {
    order = shuffledIndices(dataset.count, deriveSeed(seed, epoch, shuffleStream));
  } else {
    order = new Int32Array(dataset.count);
    for (let index = 0; index < dataset.count; index++) order[index] = index;
  }
  const size = sampleSize(dataset);
  const batchCount = countBatches(dataset, options);
  for (let batchIndex = 0; batchIndex < batchCount; batchIndex++) {
    const indices = order.slice(batchIndex * batchSize, Math.min((batchIndex + 1) * batchSize, dataset.count));
    const x = new Float32Array(indices.length * size);
    const y = new Int32Array(indices.length);
    indices.forEach((index, position) => {
      x.set(dataset.images.subarray(index * size, (index + 1) * size), position * size);
      y[position] = dataset.labels[index]!;
    });
    if (options.augmentation) {
      const random = createMulberry32(deriveSeed(seed, epoch, augmentationStream, batchIndex));
      augmentBatch(x, indices.length, dataset.shape, options.augmentation, random);
    }
    yield { x, y, size: indices.length, indices };
  }
}
