/**
 * Atomic file writes: write to a temporary file in the destination's folder, flush it to disk, then rename it over
 * the destination; a process ended by a signal meanwhile takes the temporary file along.
 *
 * A rename within one file system replaces the destination in one step (POSIX `rename(2)`), so a reader, or a
 * process that crashes half-way, sees either the old file or the complete new one, never a half-written file. The
 * temporary file must live in the same folder: a rename across file systems is a copy and is not atomic.
 */

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { onExit } from 'signal-exit';
import { DataError, describeCause } from './data-error.js';

/**
 * Bytes per write call. One write(2) of a whole 100 MB model was measured at 0.03 s or 0.3 s from one run to the
 * next (Linux, page cache); 4 MiB pieces took 0.03 s every time.
 */
const WRITE_CHUNK_BYTES = 4 << 20;

/**
 * Bytes produced as they are written: `pieces()` yields them in order. A piece stays valid while the next one is
 * produced, until a second one is asked for: a writer may write one while the next is computed.
 */
export interface StreamedBytes {
  readonly byteLength: number;
  pieces(): Iterable<Uint8Array>;
}

/**
 * Has the temporary file removed should the process end before the write does (Ctrl-C, a CI timeout's SIGTERM);
 * returns the undo. signal-exit runs it and then ends the process with the same signal. A signal reaches
 * JavaScript between two awaits of an asynchronous write, or after a synchronous write (which then completes).
 */
function removedOnExit(temporaryPath: string): () => void {
  return onExit(() => {
    try {
      rmSync(temporaryPath, { force: true });
    } catch {
      // the process is ending: nothing more to do about a file that cannot be removed
    }
  });
}

/** The temporary file beside `filePath` (same folder: same file system, so the rename is atomic). */
function temporaryPathFor(filePath: string): string {
  return join(dirname(filePath), `.${basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Writes `bytes` to `filePath` atomically (temporary file in the same folder + fsync + rename). `bytes` may come
 * in pieces (an encoded model whose weights are views of the tensors), written one after the other. Streamed
 * segments go through `writeFileAtomicAsync`, which keeps their turns.
 */
export function writeFileAtomic(filePath: string, bytes: Uint8Array | readonly Uint8Array[]): void {
  const pieces = bytes instanceof Uint8Array ? [bytes] : bytes;
  const temporaryPath = temporaryPathFor(filePath);
  const forget = removedOnExit(temporaryPath);
  let renamed = false;
  try {
    const descriptor = openSync(temporaryPath, 'wx');
    try {
      for (const piece of pieces) {
        let written = 0;
        while (written < piece.byteLength) {
          written += writeSync(descriptor, piece, written, Math.min(WRITE_CHUNK_BYTES, piece.byteLength - written));
        }
      }
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    renameSync(temporaryPath, filePath);
    renamed = true;
  } catch (error) {
    throw new DataError(`cannot write file: ${describeCause(error)}`, filePath, { cause: error });
  } finally {
    forget();
    if (!renamed) rmSync(temporaryPath, { force: true });
  }
}

/** Bytes written between background data syncs, so the disk takes the file while the rest is still produced. */
const SYNC_EVERY_BYTES = 8 << 20;

/** Writes every byte of `buffers` (writev may write fewer than asked). */
async function writeAll(handle: FileHandle, buffers: Uint8Array[]): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest);
    if (bytesWritten === 0) throw new Error('the file system accepted no bytes');
    while (rest.length > 0 && bytesWritten >= rest[0]!.byteLength) {
      bytesWritten -= rest[0]!.byteLength;
      rest = rest.slice(1);
    }
    if (bytesWritten > 0) rest = [rest[0]!.subarray(bytesWritten), ...rest.slice(1)];
  }
}

/**
 * `writeFileAtomic` for large files whose pieces are computed as they are written (a model with fresh weights):
 * each piece is written while the next is computed, small pieces are gathered into one write, and the data is
 * synced to disk in the background every 8 MiB (of 4–32 MiB, the fastest here), so the final fsync finds little
 * left to do. For ResNet-50's 100 MB this took the drawing, writing and syncing from about 135 ms to 75 ms here
 * (two cores). Same guarantees: the file appears complete, by rename, or not at all. Writes with streamed segments
 * run one at a time.
 */
export async function writeFileAtomicAsync(filePath: string, bytes: Uint8Array | readonly (Uint8Array | StreamedBytes)[]): Promise<void> {
  const segments = bytes instanceof Uint8Array ? [bytes] : bytes;
  if (segments.every((segment) => segment instanceof Uint8Array)) return writeSegments(filePath, segments);
  // Streamed pieces may share memory across producers (the He-uniform kernel's two slots serve every tensor):
  // writes with streamed segments take turns, each finishing before the next draws its first piece.
  const previous = streamedWrites;
  let done!: () => void;
  streamedWrites = new Promise<void>((resolve) => (done = resolve));
  try {
    await previous;
    await writeSegments(filePath, segments);
  } finally {
    done();
  }
}

/** The last write with streamed segments to have started (resolved when it ends, whether it failed or not). */
let streamedWrites: Promise<void> = Promise.resolve();

async function writeSegments(filePath: string, segments: readonly (Uint8Array | StreamedBytes)[]): Promise<void> {
  const temporaryPath = temporaryPathFor(filePath);
  const forget = removedOnExit(temporaryPath);
  let handle: FileHandle | undefined;
  let renamed = false;
  // The write in progress, and the background syncs; failures surface where they are awaited below.
  let inFlight: Promise<void> = Promise.resolve();
  const syncs: Promise<void>[] = [];
  const quietly = <T>(promise: Promise<T>) => (promise.catch(() => undefined), promise);
  try {
    const file = (handle = await open(temporaryPath, 'wx'));
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let unsynced = 0;
    const issue = async () => {
      // the write before is finished first: a streamed piece's memory is reused by the piece after next
      await inFlight;
      inFlight = quietly(writeAll(file, batch));
      unsynced += batchBytes;
      batch = [];
      batchBytes = 0;
      if (unsynced >= SYNC_EVERY_BYTES) {
        unsynced = 0;
        syncs.push(quietly(inFlight.then(() => file.datasync())));
      }
    };
    for (const segment of segments) {
      const streamed = !(segment instanceof Uint8Array);
      let segmentBytes = 0;
      for (const piece of streamed ? segment.pieces() : [segment]) {
        for (let offset = 0; offset < piece.byteLength; offset += WRITE_CHUNK_BYTES) {
          const part = piece.subarray(offset, offset + WRITE_CHUNK_BYTES);
          batch.push(part);
          batchBytes += part.byteLength;
          if (streamed || batchBytes >= WRITE_CHUNK_BYTES) await issue();
        }
        segmentBytes += piece.byteLength;
      }
      if (segmentBytes !== segment.byteLength) throw new Error(`internal: a streamed piece gave ${segmentBytes} bytes, not ${segment.byteLength}`);
    }
    if (batch.length > 0) await issue();
    await inFlight;
    await Promise.all(syncs);
    await file.sync();
    handle = undefined;
    await file.close();
    await rename(temporaryPath, filePath);
    renamed = true;
  } catch (error) {
    throw new DataError(`cannot write file: ${describeCause(error)}`, filePath, { cause: error });
  } finally {
    if (!renamed) {
      await Promise.allSettled([inFlight, ...syncs]);
      await handle?.close().catch(() => undefined);
      await rm(temporaryPath, { force: true });
    }
    forget();
  }
}
