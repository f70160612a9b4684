/**
 * Data loading for training, evaluation and inference: IDX, `.npy` and PNG-folder readers, the `Dataset` type and
 * its transformations (normalise, filter classes, split, shuffle, batch, augment). Plain typed arrays only, so any
 * engine can consume them.
 */

export { DataError } from './data-error.js';
export { writeFileAtomic, writeFileAtomicAsync, type StreamedBytes } from './atomic-write.js';
export * from '../../random.js';
export * from './idx.js';
export * from './npy.js';
export * from './png-folder.js';
export * from './dataset.js';
