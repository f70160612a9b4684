/**
 * writeFileAtomic: the file holds the bytes (one array or pieces, in order, across write-chunk boundaries), no
 * temporary file is left behind, and a write that fails leaves the previous file as it was.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/runtime/data/atomic-write.js';

const directory = mkdtempSync(join(tmpdir(), 'convspec-atomic-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function pattern(length: number, salt: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + salt) & 0xff);
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
