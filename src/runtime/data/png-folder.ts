/**
 * A dataset of PNG images in class folders: `root/<class name>/<any name>.png`.
 *
 * This is the layout of torchvision's `ImageFolder` and Keras' `image_dataset_from_directory`: class names are the
 * sub-folder names sorted by code point (so label numbers do not depend on the locale or the order the file system
 * lists them), and label i is the i-th name. Files inside a class folder are sorted the same way, so the sample
 * order is reproducible. Hidden entries (names starting with '.') are ignored.
 *
 * Each image is decoded with pngjs (which expands palettes, grey and 16-bit images to 8-bit RGBA), alpha is
 * ignored (as PIL's `convert('RGB')` does), and then:
 * - to 1 channel by the ITU-R BT.601 luma L = (299·R + 587·G + 114·B) / 1000, the formula of PIL's `convert('L')`
 *   (exact for grey images, whose R = G = B);
 * - to 3 channels as R, G, B;
 * - resized to height × width with either nearest-neighbour or bilinear interpolation using pixel centres
 *   (source coordinate = (destination + 0.5) · source size / destination size − 0.5, "align_corners = false" in
 *   PyTorch's terms), so a same-size resize is the identity for both methods. Bilinear does not low-pass filter
 *   first: shrinking by more than 2× aliases.
 * - scaled to [0, 1] by dividing by 255, stored as float32 NCHW.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { PNG } from 'pngjs';
import { DataError, describeCause } from './data-error.js';
import type { Dataset } from './dataset.js';

export type ResizeMethod = 'nearest' | 'bilinear';

export interface PngFolderOptions {
  /** 1 (grey) or 3 (RGB). Default: 3 when the first image is a colour PNG, otherwise 1. */
  channels?: 1 | 3;
  /** Output height; default: the first image's height. */
  height?: number;
  /** Output width; default: the first image's width. */
  width?: number;
  /** How images of another size are resized; default 'bilinear'. */
  resize?: ResizeMethod;
}

/** A decoded PNG: 8-bit RGBA pixels, row-major, and whether the file stored colour. */
export interface DecodedPng {
  width: number;
  height: number;
  rgba: Uint8Array;
  isColor: boolean;
}

export interface PngFolderListing {
  classNames: string[];
  files: { filePath: string; label: number }[];
}

function compareCodePoints(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

function listEntries(directory: string): string[] {
  try {
    return readdirSync(directory)
      .filter((name) => !name.startsWith('.'))
      .sort(compareCodePoints);
  } catch (error) {
    throw new DataError(`cannot list folder: ${describeCause(error)}`, directory, { cause: error });
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isPngName(name: string): boolean {
  return extname(name).toLowerCase() === '.png';
}

/** Lists `root/<class>/*.png`: sorted class names and, for every image, its path and label. */
export function listPngFolder(root: string): PngFolderListing {
  if (!isDirectory(root)) throw new DataError('PNG dataset root is not a folder', root);
  const classNames = listEntries(root).filter((name) => isDirectory(join(root, name)));
  if (classNames.length === 0) {
    throw new DataError('no class folders found (expected root/<class name>/<image>.png)', root);
  }
  const files: PngFolderListing['files'] = [];
  classNames.forEach((className, label) => {
    const classDirectory = join(root, className);
    const pngNames = listEntries(classDirectory).filter(
      (name) => isPngName(name) && !isDirectory(join(classDirectory, name)),
    );
    if (pngNames.length === 0) {
      throw new DataError(`class folder '${className}' holds no .png files`, classDirectory);
    }
    for (const name of pngNames) files.push({ filePath: join(classDirectory, name), label });
  });
  return { classNames, files };
}

/** Decodes PNG bytes to 8-bit RGBA; a corrupt or truncated file is a `DataError` naming `filePath`. */
export function decodePng(bytes: Uint8Array, filePath: string): DecodedPng {
  try {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (png.width <= 0 || png.height <= 0) throw new Error(`image has size ${png.width}×${png.height}`);
    return { width: png.width, height: png.height, rgba: new Uint8Array(png.data), isColor: png.color };
  } catch (error) {
    throw new DataError(`cannot decode PNG: ${describeCause(error)}`, filePath, { cause: error });
  }
}

function readPng(filePath: string): DecodedPng {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(filePath);
  } catch (error) {
    throw new DataError(`cannot read PNG: ${describeCause(error)}`, filePath, { cause: error });
  }
  return decodePng(bytes, filePath);
}

/** Converts RGBA bytes to planar (CHW) float32 values in [0, 1], grey (BT.601 luma) or RGB. */
export function rgbaToPlanar(image: DecodedPng, channels: 1 | 3): Float32Array {
  const pixelCount = image.width * image.height;
  const planar = new Float32Array(channels * pixelCount);
  const { rgba } = image;
  for (let pixel = 0; pixel < pixelCount; pixel++) {
    const red = rgba[4 * pixel]!;
    const green = rgba[4 * pixel + 1]!;
    const blue = rgba[4 * pixel + 2]!;
    if (channels === 1) {
      planar[pixel] = (299 * red + 587 * green + 114 * blue) / 1000 / 255;
    } else {
      planar[pixel] = red / 255;
      planar[pixelCount + pixel] = green / 255;
      planar[2 * pixelCount + pixel] = blue / 255;
    }
  }
  return planar;
}

/** Pixel-centre source coordinate of destination index `index` (align_corners = false), clamped to the image. */
function sourceCoordinate(index: number, sourceSize: number, destinationSize: number): number {
  const coordinate = ((index + 0.5) * sourceSize) / destinationSize - 0.5;
  return Math.min(Math.max(coordinate, 0), sourceSize - 1);
}

/**
 * Resizes a planar (CHW) image to `destinationHeight × destinationWidth` and writes it into `output` at `offset`.
 */
export function resizePlanar(
  source: Float32Array,
  channels: number,
  sourceHeight: number,
  sourceWidth: number,
  destinationHeight: number,
  destinationWidth: number,
  method: ResizeMethod,
  output: Float32Array = new Float32Array(channels * destinationHeight * destinationWidth),
  offset = 0,
): Float32Array {
  const sourcePlane = sourceHeight * sourceWidth;
  const destinationPlane = destinationHeight * destinationWidth;
  for (let row = 0; row < destinationHeight; row++) {
    const sourceRow = sourceCoordinate(row, sourceHeight, destinationHeight);
    for (let column = 0; column < destinationWidth; column++) {
      const sourceColumn = sourceCoordinate(column, sourceWidth, destinationWidth);
      for (let channel = 0; channel < channels; channel++) {
        const plane = channel * sourcePlane;
        let value: number;
        if (method === 'nearest') {
          // floor((i + 0.5) · in / out): the source pixel whose area contains the destination pixel's centre.
          const nearestRow = Math.min(Math.floor(((row + 0.5) * sourceHeight) / destinationHeight), sourceHeight - 1);
          const nearestColumn = Math.min(Math.floor(((column + 0.5) * sourceWidth) / destinationWidth), sourceWidth - 1);
          value = source[plane + nearestRow * sourceWidth + nearestColumn]!;
        } else {
          const top = Math.floor(sourceRow);
          const left = Math.floor(sourceColumn);
          const bottom = Math.min(top + 1, sourceHeight - 1);
          const right = Math.min(left + 1, sourceWidth - 1);
          const rowWeight = sourceRow - top;
          const columnWeight = sourceColumn - left;
          const topValue =
            source[plane + top * sourceWidth + left]! * (1 - columnWeight) +
            source[plane + top * sourceWidth + right]! * columnWeight;
          const bottomValue =
            source[plane + bottom * sourceWidth + left]! * (1 - columnWeight) +
            source[plane + bottom * sourceWidth + right]! * columnWeight;
          value = topValue * (1 - rowWeight) + bottomValue * rowWeight;
        }
        output[offset + channel * destinationPlane + row * destinationWidth + column] = value;
      }
    }
  }
  return output;
}

function checkSize(name: string, value: number | undefined, root: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
    throw new DataError(`requested ${name} ${value} is not a positive integer`, root);
  }
}

/** Loads `root/<class>/*.png` as a float32 NCHW dataset with values in [0, 1]. Synchronous. */
export function loadPngFolder(root: string, options: PngFolderOptions = {}): Dataset {
  checkSize('height', options.height, root);
  checkSize('width', options.width, root);
  if (options.channels !== undefined && options.channels !== 1 && options.channels !== 3) {
    throw new DataError(`requested ${String(options.channels)} channels; PNG folders load as 1 (grey) or 3 (RGB)`, root);
  }
  const { classNames, files } = listPngFolder(root);
  const first = readPng(files[0]!.filePath);
  const channels = options.channels ?? (first.isColor ? 3 : 1);
  const height = options.height ?? first.height;
  const width = options.width ?? first.width;
  const method = options.resize ?? 'bilinear';
  const sampleSize = channels * height * width;
  const images = new Float32Array(files.length * sampleSize);
  const labels = new Int32Array(files.length);
  files.forEach(({ filePath, label }, index) => {
    const decoded = index === 0 ? first : readPng(filePath);
    const planar = rgbaToPlanar(decoded, channels);
    if (decoded.height === height && decoded.width === width) {
      images.set(planar, index * sampleSize);
    } else {
      resizePlanar(planar, channels, decoded.height, decoded.width, height, width, method, images, index * sampleSize);
    }
    labels[index] = label;
  });
  return { images, labels, shape: [channels, height, width], count: files.length, classNames, source: root };
}
