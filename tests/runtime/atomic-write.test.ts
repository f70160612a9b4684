/**
 * writeFileAtomic and writeFileAtomicAsync: the file holds the bytes (one array or pieces, in order, across
 * write-chunk boundaries; streamed pieces that reuse their memory as the contract allows), no temporary file is left
 * behind, and a write that fails leaves the previous file as it was.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicAsync, type StreamedBytes } from '../../src/runtime/data/atomic-write.js';

const directory = mkdtempSync(join(tmpdir(), 'convspec-atomic-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** Bytes that differ between any two pieces of a stream (no period: i's higher bytes are mixed in). */
function pattern(length: number, salt: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + (i >>> 8) * 7 + (i >>> 16) * 13 + salt) & 0xff);
}

describe('writeFileAtomic', () => {
  it('writes one array, or pieces in order (a piece larger than a write chunk included)', () => {
    const file = join(directory, 'model.onnx');
    const pieces = [pattern(10, 1), new Uint8Array(0), pattern((4 << 20) + 12_345, 2), pattern(3, 3)];
    writeFileAtomic(file, pieces);
    expect(Buffer.compare(readFileSync(file), Buffer.concat(pieces))).toBe(0);
    writeFileAtomic(file, pattern(100, 4));
    expect(Buffer.compare(readFileSync(file), Buffer.from(pattern(100, 4)))).toBe(0);
    expect(readdirSync(directory)).toEqual(['model.onnx']);
  });

  it('a failed write leaves the old file and no temporary file', () => {
    const folder = join(directory, 'failing');
    mkdirSync(folder);
    const file = join(folder, 'out.bin');
    writeFileSync(file, 'old');
    // A piece that is not bytes makes the write fail after the temporary file was created.
    expect(() => writeFileAtomic(file, [pattern(5, 0), { byteLength: 10 } as unknown as Uint8Array])).toThrow(/cannot write file/);
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(folder)).toEqual(['out.bin']);
  });
});

/**
 * Streamed bytes as DrawnWeight gives them: pieces of `pieceBytes` in two buffers used in turn, so a piece is
 * overwritten when the piece after next is produced. A writer that kept a piece longer would write wrong bytes.
 */
function streamed(length: number, pieceBytes: number, salt: number, failAt?: number): { bytes: StreamedBytes; expected: Uint8Array } {
  const expected = pattern(length, salt);
  const buffers = [new Uint8Array(pieceBytes), new Uint8Array(pieceBytes)];
  return {
    expected,
    bytes: {
      byteLength: length,
      *pieces() {
        for (let offset = 0, turn = 0; offset < length; offset += pieceBytes, turn ^= 1) {
          if (failAt !== undefined && offset >= failAt) throw new Error('drawing failed');
          const piece = buffers[turn]!.subarray(0, Math.min(pieceBytes, length - offset));
          piece.set(expected.subarray(offset, offset + piece.byteLength));
          yield piece;
        }
      },
    },
  };
}

describe('writeFileAtomicAsync', () => {
  it('writes plain and streamed pieces in order while the next is produced, past several background syncs', async () => {
    const file = join(directory, 'streamed.onnx');
    const first = streamed((12 << 20) + 7, 1 << 20, 5);
    const second = streamed(3000, 1024, 6);
    const plain = [pattern(10, 1), new Uint8Array(0), pattern((4 << 20) + 12_345, 2), pattern(3, 3)];
    await writeFileAtomicAsync(file, [plain[0]!, first.bytes, plain[1]!, second.bytes, plain[2]!, plain[3]!]);
    const expected = Buffer.concat([plain[0]!, first.expected, second.expected, plain[2]!, plain[3]!]);
    expect(Buffer.compare(readFileSync(file), expected)).toBe(0);
    await writeFileAtomicAsync(file, pattern(100, 4));
    expect(Buffer.compare(readFileSync(file), Buffer.from(pattern(100, 4)))).toBe(0);
    expect(readdirSync(directory).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('a piece that fails, or a stream shorter than it said, leaves the old file and no temporary file', async () => {
    const folder = join(directory, 'failing-async');
    mkdirSync(folder);
    const file = join(folder, 'out.bin');
    writeFileSync(file, 'old');
    await expect(writeFileAtomicAsync(file, [pattern(5, 0), streamed(10 << 20, 1 << 20, 1, 9 << 20).bytes])).rejects.toThrow(/cannot write file: drawing failed/);
    const short = { byteLength: 100, pieces: () => [pattern(60, 2)] };
    await expect(writeFileAtomicAsync(file, [short])).rejects.toThrow(/60 bytes, not 100/);
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(folder)).toEqual(['out.bin']);
  });
});

describe('a process ended by a signal in the middle of a write', () => {
  // a child writes 64 MiB streamed from a generator that sends the child a signal after a few pieces; the signal
  // reaches JavaScript at the writer's next await: the temporary file goes, the process ends by that signal
  // the built module (npm test builds first), as the command runs it
  const moduleUrl = new URL('../../dist/runtime/data/atomic-write.js', import.meta.url).href;
  const child = (folder: string, signal: string) => `
    import { writeFileAtomicAsync } from ${JSON.stringify(moduleUrl)};
    const piece = new Uint8Array(1 << 20).fill(7);
    const pieces = function* () {
      for (let i = 0; i < 64; i++) {
        if (i === 6) process.kill(process.pid, ${JSON.stringify(signal)});
        yield piece;
      }
    };
    await writeFileAtomicAsync(${JSON.stringify(join(folder, 'model.onnx'))}, [{ byteLength: 64 << 20, pieces }]);
    console.log('finished');
  `;

  it.each(['SIGINT', 'SIGTERM'])('%s: no temporary file is left and no output appears', (signal) => {
    const folder = mkdtempSync(join(directory, 'signal-'));
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', child(folder, signal)], { encoding: 'utf8', timeout: 60_000 });
    expect(result.signal, result.stderr).toBe(signal);
    expect(result.stdout).not.toMatch(/finished/);
    expect(readdirSync(folder)).toEqual([]);
  });
});
