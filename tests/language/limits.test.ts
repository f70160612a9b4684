/**
 * Limits against runaway input: nothing a user writes may hang or crash the compiler. Each case must come back
 * with its diagnostic quickly; the time bounds are generous guards against hangs, not benchmarks.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec, type CheckResult } from '../../src/check.js';
import { main } from '../../src/cli/main.js';
import { MAX_FILE_BYTES } from '../../src/elaborate/loader.js';
import { MAX_NESTING, MAX_TOKENS } from '../../src/parser/index.js';

const FILE = 'limits.cnn';

function timed(text: string): { result: CheckResult; ms: number } {
  const started = performance.now();
  const result = checkSpec(FILE, { text });
  return { result, ms: performance.now() - started };
}

function codes(result: CheckResult): string[] {
  return result.diagnostics.map((d) => d.code);
}

/** A model around some statements. */
function model(body: string): string {
  return `model Limits {\n  input image: f32[N, 3, 32, 32]\n${body}\n  y = image -> relu\n  output y\n}\n`;
}

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-limits-'));
  // Warm the parser up (its grammar analysis runs once per process) so timings measure the input only.
  checkSpec(FILE, { text: model('') });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('limits that give a diagnostic within a second', () => {
  it('repeat 1000000000', () => {
    const { result, ms } = timed(model('  x = image -> repeat 1000000000 relu'));
    expect(codes(result)).toEqual(['CNN6001']);
    expect(result.diagnostics[0]!.message).toBe('repeat count 1000000000 exceeds the limit of 10000');
    expect(ms).toBeLessThan(1000);
  });

  it('a block recursing 10,000 deep', () => {
    const text = model(['  block deep(n: int) (x) {', '    y = x -> relu -> deep(n - 1) when n > 0', '    return y ?? x', '  }', '  x = image -> deep(10000)'].join('\n'));
    const { result, ms } = timed(text);
    expect(codes(result)).toEqual(['CNN6002']);
    expect(result.diagnostics[0]!.message).toContain("'deep' calls itself");
    expect(ms).toBeLessThan(1000);
  });

  it('blocks calling each other 10,000 deep', () => {
    const text = model(
      [
        '  block ping(n: int) (x) {',
        '    y = x -> pong(n - 1) when n > 0',
        '    return y ?? x',
        '  }',
        '  block pong(n: int) (x) {',
        '    return x -> relu -> ping(n)',
        '  }',
        '  x = image -> ping(10000)',
      ].join('\n'),
    );
    const { result, ms } = timed(text);
    expect(codes(result)).toEqual(['CNN6002']);
    expect(result.diagnostics[0]!.message).toMatch(/ping → pong → ping → … /);
    expect(ms).toBeLessThan(1000);
  });

  it('tensor sizes beyond 2^53 elements, also with a symbolic batch', () => {
    for (const batch of ['8', 'N']) {
      const { result, ms } = timed(`model Huge {\n  input image: f32[${batch}, 3, 100000, 100000]\n  x = image -> conv(1000000, 1)\n  output x\n}\n`);
      expect(codes(result)).toEqual(['CNN4007']);
      expect(result.diagnostics[0]!.message).toBe(`tensor 'x.conv1' of shape [${batch}, 1000000, 100000, 100000] has more than 2^53 elements`);
      expect(ms).toBeLessThan(1000);
    }
    const { result } = timed(`model Huge {\n  input image: f32[N, 100000000, 100000000, 100000000]\n  output image\n}\n`);
    expect(codes(result)).toEqual(['CNN4007']);
  });

  it('a 50 MB file is refused by its size, before it is read', async () => {
    const file = path.join(dir, 'huge.cnn');
    const line = '  x = image -> conv(16, 3) -> relu // padding to make the file large\n';
    const fd = fs.openSync(file, 'w');
    const chunk = line.repeat(Math.ceil((1024 * 1024) / line.length));
    for (let written = 0; written < 50 * 1024 * 1024; written += chunk.length) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
    expect(fs.statSync(file).size).toBeGreaterThan(50 * 1024 * 1024);

    const started = performance.now();
    const out: string[] = [];
    const code = await main(['node', 'convspec', 'check', file, '--format', 'json'], { out: (t) => out.push(t), err: (t) => out.push(t) });
    const ms = performance.now() - started;
    expect(code).toBe(1);
    const report = JSON.parse(out.join(''));
    expect(report.diagnostics.map((d: { code: string }) => d.code)).toEqual(['CNN1005']);
    expect(report.diagnostics[0].message).toBe(`file is ${fs.statSync(file).size} bytes; specs are limited to ${MAX_FILE_BYTES} bytes`);
    expect(ms).toBeLessThan(1000);
  });
});

describe('inputs that end in a diagnostic or succeed, without crashing', () => {
  it('brackets nested 100,000 deep', () => {
    const { result, ms } = timed(model(`  let a = ${'('.repeat(100_000)}1${')'.repeat(100_000)}`));
    expect(codes(result)).toEqual(['CNN2007']);
    expect(result.diagnostics[0]!.message).toBe(`nesting deeper than ${MAX_NESTING} levels`);
    expect(ms).toBeLessThan(2000);
  });

  it('a 1,000,000-term sum in a let', () => {
    const { result, ms } = timed(model(`  let a = ${new Array(1_000_000).fill('1').join('+')}`));
    // Two million tokens: refused by the token limit, after lexing only.
    expect(codes(result)).toEqual(['CNN1009']);
    expect(result.diagnostics[0]!.message).toBe(`the file has more than ${MAX_TOKENS} tokens; specs are limited to ${MAX_TOKENS}`);
    expect(ms).toBeLessThan(5000);
  });

  it('a 10,000-term sum in a let, within the limits, succeeds', () => {
    const { result, ms } = timed(model(`  let a = ${new Array(10_000).fill('1').join(' + ')}\n  assert a == 10000`));
    expect(codes(result)).toEqual([]);
    expect(result.ok).toBe(true);
    expect(ms).toBeLessThan(2000);
  });

  it.each([
    ['100,000 unary minus signs', `  let a = ${'-'.repeat(100_000)}1`],
    ['100,000 nots', `  let a = ${'not '.repeat(100_000)}true`],
    ['5,000 nested conditionals', `  let a = ${'true ? 1 : '.repeat(5000)}1`],
    ['5,000 index operations', `  let a = [1]${'[0]'.repeat(5000)}`],
  ])('%s', (_what, body) => {
    const { result, ms } = timed(model(body));
    expect(codes(result)).toEqual(['CNN2007']);
    expect(ms).toBeLessThan(2000);
  });

  it('a chain of 10,000 steps and a repeat of 10,000 succeed', () => {
    const { result, ms } = timed(model(`  a = image${' -> relu'.repeat(10_000)}\n  b = image -> repeat 10000 relu\n  assert shape(b) == [N, 3, 32, 32]`));
    expect(codes(result)).toEqual([]);
    expect(result.graph!.nodes.length).toBe(20_001);
    expect(ms).toBeLessThan(5000);
  });

  it('a JSON spec nested 100,000 deep', () => {
    const file = path.join(dir, 'deep.json');
    const args = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    fs.writeFileSync(file, `{"model": "M", "inputs": {"x": {"shape": ["N", 3, 8, 8]}}, "layers": [{"name": "a", "from": "x", "ops": [{"op": "conv", "args": [${args}, 3]}]}], "outputs": ["a"]}`);
    const started = performance.now();
    const result = checkSpec(file);
    expect(codes(result)).toEqual(['CNN2007']);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
