/**
 * The `convspec check | summary | fmt` contract of CLI.md, as scripts and CI see it: the JSON shapes, GitHub
 * annotations, and exit codes (0 ok, 1 errors in the input, 2 usage, 3 only for a bug — never for bad input).
 *
 * The command runs in-process through `main(argv, output)` with a captured output; one test spawns
 * `bin/convspec.js` to check that the exit code reaches the shell.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(...args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  // Each write is a line, as the process output makes it.
  const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
  const code = await main(['node', 'convspec', ...args], { out: (text) => out.push(line(text)), err: (text) => err.push(line(text)) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** Nothing the user feeds the command may surface as a JavaScript failure. */
function expectNoCrash(result: Run): void {
  const all = `${result.stdout}\n${result.stderr}`;
  expect(result.code).not.toBe(3);
  expect(all).not.toMatch(/internal error/);
  expect(all).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

let dir: string;
const file = (name: string) => path.join(dir, name);

const VALID = `model Tiny {
  input image: f32[N, 3, 8, 8]
  features = image -> conv(4, 3, pad: 1) -> relu
  logits = features -> globalavgpool -> flatten -> dense(2)
  output logits
}
`;

const BROKEN = `model Net {
  input image: f32[N, 3, 32, 32]
  x = imgae -> conv(16, 3)
  y = image -> conv(16, 3) -> relu -> maxpol(2)
  output y
}
`;

const WARNING_ONLY = `model Net {
  input image: f32[N, 3, 32, 32]
  stem = image -> conv(16, 3) -> relu
  output stem
  freeze stme
}
`;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-cli-'));
  fs.writeFileSync(file('valid.cnn'), VALID);
  fs.writeFileSync(file('broken.cnn'), BROKEN);
  fs.writeFileSync(file('warning.cnn'), WARNING_ONLY);
  fs.writeFileSync(file('odd,name:1.cnn'), BROKEN);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('check --format json', () => {
  it('prints { ok, diagnostics } with the fields of CLI.md and exits 1 on errors', async () => {
    const result = await run('check', file('broken.cnn'), '--format', 'json');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as { ok: boolean; diagnostics: Array<Record<string, unknown>> };
    expect(Object.keys(report)).toEqual(['ok', 'diagnostics']);
    expect(report.ok).toBe(false);
    expect(report.diagnostics).toHaveLength(2);
    for (const d of report.diagnostics) {
      expect(Object.keys(d).filter((k) => k !== 'hint')).toEqual(['code', 'severity', 'file', 'line', 'column', 'endLine', 'endColumn', 'message']);
      expect(d['code']).toMatch(/^CNN\d{4}$/);
      expect(['error', 'warning', 'note']).toContain(d['severity']);
      for (const key of ['line', 'column', 'endLine', 'endColumn']) expect(Number.isInteger(d[key]) && (d[key] as number) >= 1).toBe(true);
    }
    expect(report.diagnostics[0]).toEqual({
      code: 'CNN3001',
      severity: 'error',
      file: file('broken.cnn'),
      line: 3,
      column: 7,
      endLine: 3,
      endColumn: 12,
      message: "unknown name 'imgae'",
      hint: "did you mean 'image'?",
    });
    expect(report.diagnostics[1]).toMatchObject({ code: 'CNN3002', line: 4, column: 39, endLine: 4, endColumn: 45, message: "unknown op or block 'maxpol'" });
  });

  it('reports a valid spec as ok with no diagnostics and exits 0', async () => {
    const result = await run('check', file('valid.cnn'), '--format', 'json');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ ok: true, diagnostics: [] });
  });

  it('keeps warnings in the report of a spec that is still ok', async () => {
    const result = await run('check', file('warning.cnn'), '--format', 'json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(true);
    expect(report.diagnostics).toEqual([expect.objectContaining({ code: 'CNN3019', severity: 'warning', line: 5, column: 10, hint: "did you mean 'stem'?" })]);
  });

  it('prints one document for several specs, failing if any fails', async () => {
    const result = await run('check', file('valid.cnn'), file('broken.cnn'), file('warning.cnn'), '--format', 'json');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.map((d: { file: string; code: string }) => `${path.basename(d.file)} ${d.code}`)).toEqual(['broken.cnn CNN3001', 'broken.cnn CNN3002', 'warning.cnn CNN3019']);
  });
});

describe('check --format github', () => {
  it('prints one workflow command per diagnostic', async () => {
    const result = await run('check', file('broken.cnn'), file('warning.cnn'), '--format', 'github');
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toEqual([
      `::error file=${file('broken.cnn')},line=3,col=7,endLine=3,endColumn=12::CNN3001 unknown name 'imgae' (hint: did you mean 'image'?)`,
      `::error file=${file('broken.cnn')},line=4,col=39,endLine=4,endColumn=45::CNN3002 unknown op or block 'maxpol' (hint: did you mean 'maxpool'?)`,
      `::warning file=${file('warning.cnn')},line=5,col=10,endLine=5,endColumn=14::CNN3019 freeze 'stme' matches no layer (hint: did you mean 'stem'?)`,
    ]);
  });

  it('escapes commas and colons in the file property', async () => {
    const result = await run('check', file('odd,name:1.cnn'), '--format', 'github');
    const first = result.stdout.split('\n')[0]!;
    expect(first).toMatch(/^::error file=[^,:]*odd%2Cname%3A1\.cnn,line=3,col=7,endLine=3,endColumn=12::CNN3001 /);
  });
});

describe('check --format text', () => {
  it('renders diagnostics with carets on stderr and ends with a count', async () => {
    const result = await run('check', file('broken.cnn'));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${file('broken.cnn')}:3:7: error CNN3001: unknown name 'imgae'\n3 |   x = imgae -> conv(16, 3)\n  |       ^^^^^\n  hint: did you mean 'image'?`);
    expect(result.stderr).toContain(`✗ ${file('broken.cnn')}: 2 errors, 0 warnings`);
  });

  it('says a valid spec is fine', async () => {
    const result = await run('check', file('valid.cnn'));
    expect(result.code).toBe(0);
    expect(result.stderr.trim()).toBe(`✓ ${file('valid.cnn')}`);
  });
});

describe('exit codes', () => {
  it.each([
    ['an unknown flag', ['check', '--bogus', 'valid.cnn']],
    ['an unknown format', ['check', 'valid.cnn', '--format', 'xml']],
    ['a missing spec argument', ['check']],
    ['an unknown command', ['frobnicate', 'valid.cnn']],
    ['a malformed --param', ['check', 'valid.cnn', '--param', '=3']],
    ['a malformed --input-shape', ['check', 'valid.cnn', '--input-shape', 'image=1,x-y']],
    ['summary without a spec', ['summary']],
  ])('exits 2 for %s', async (_what, args) => {
    const result = await run(...args.map((a) => (a.endsWith('.cnn') ? file(a) : a)));
    expect(result.code).toBe(2);
    expectNoCrash(result);
  });

  it.each([
    ['a missing file', 'missing.cnn', null, 'CNN1006'],
    ['a directory', 'a-directory', 'dir', 'CNN1006'],
    ['an empty file', 'empty.cnn', '', 'CNN2004'],
    ['binary garbage', 'garbage.cnn', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)), 'CNN1001'],
    ['a file beyond the size limit', 'large.cnn', 'x'.repeat(5 * 1024 * 1024), 'CNN1005'],
    ['invalid JSON', 'broken.json', '{ "model": ', 'CNN1007'],
    ['a JSON spec of the wrong shape', 'wrong.json', '[1, 2, 3]', 'CNN1008'],
    ['nesting beyond the limit', 'deep.cnn', `model M {\n  input x: f32[N, 3]\n  let a = ${'('.repeat(5000)}1${')'.repeat(5000)}\n}\n`, 'CNN2007'],
  ])('exits 1, never 3, for %s', async (_what, name, content, code) => {
    if (content === 'dir') fs.mkdirSync(file(name), { recursive: true });
    else if (content !== null) fs.writeFileSync(file(name), content);
    const result = await run('check', file(name), '--format', 'json');
    expectNoCrash(result);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.map((d: { code: string }) => d.code)).toContain(code);
    // Even a file that cannot be read or shown is named, so CI can annotate it.
    for (const d of report.diagnostics) expect(d).toMatchObject({ file: expect.any(String), line: expect.any(Number), column: expect.any(Number) });
  });
});

describe('output folders that cannot be written', () => {
  // an output folder under a file, or one without write permission, is the user's to fix: exit 1 and CNN8008
  it.each([
    ['compile to ONNX', ['compile', 'valid.cnn', '--target', 'onnx', '-o']],
    ['compile to TF.js', ['compile', 'valid.cnn', '--target', 'tfjs', '-o']],
    ['train', ['train', 'valid.cnn', '--epochs', '1', '-o']],
  ])('%s: exits 1 with CNN8008 naming the path, never 3', async (_what, args) => {
    fs.writeFileSync(file('a-file'), '');
    const result = await run(...args.map((a) => (a.endsWith('.cnn') ? file(a) : a)), path.join(file('a-file'), 'out'));
    expectNoCrash(result);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error CNN8008: .*ENOTDIR.*a-file/);
  });
});

describe('summary --json', () => {
  it('prints model, inputs, outputs, per-layer rows and totals as CLI.md describes', async () => {
    const result = await run('summary', file('valid.cnn'), '--json');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.model).toBe('Tiny');
    expect(summary.inputs).toEqual([{ name: 'image', shape: ['N', 3, 8, 8] }]);
    expect(summary.outputs).toEqual([{ name: 'logits', shape: ['N', 2] }]);
    expect(summary.layers.map((l: { name: string }) => l.name)).toEqual(['features.conv1', 'features.relu1', 'logits.globalavgpool1', 'logits.flatten1', 'logits.dense1']);
    for (const layer of summary.layers) {
      for (const key of ['name', 'op', 'shape', 'params', 'macs', 'flops']) expect(layer, `${layer.name}.${key}`).toHaveProperty(key);
    }
    const conv = summary.layers[0];
    // 4 filters of 3×3×3 plus 4 biases; each of the 4×8×8 outputs takes 27 multiply-adds.
    expect(conv).toMatchObject({ op: 'conv2d', shape: ['N', 4, 8, 8], params: 112, macs: 6912, flops: 13824 });
    expect(conv.rf).toMatchObject({ size: [3, 3], stride: [1, 1], padding: [1, 1] });
    expect(summary.layers[4]).toMatchObject({ op: 'dense', shape: ['N', 2], params: 10, macs: 8, flops: 16 });
    expect(summary.totals).toMatchObject({ params: 122, trainable: 122, macs: 6920 });
    expect(summary.totals.flops).toBeGreaterThanOrEqual(2 * 6920);
  });

  it('prints diagnostics instead, and exits 1, for a broken spec', async () => {
    const result = await run('summary', file('broken.cnn'), '--json');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('CNN3001');
  });
});

describe('fmt', () => {
  it('--check exits 0 for a formatted spec and 1 for one that would change', async () => {
    fs.writeFileSync(file('formatted.cnn'), VALID);
    fs.writeFileSync(file('messy.cnn'), VALID.replace('features = image', 'features   =   image').replace('dense(2)', 'dense( 2 )'));
    expect((await run('fmt', '--check', file('formatted.cnn'))).code).toBe(0);
    const messy = await run('fmt', '--check', file('messy.cnn'));
    expect(messy.code).toBe(1);
    expect(messy.stdout).toContain(`would reformat ${file('messy.cnn')}`);
    expect(fs.readFileSync(file('messy.cnn'), 'utf8')).not.toBe(VALID);
  });

  it('rewrites a spec into the canonical form, after which --check passes', async () => {
    fs.writeFileSync(file('rewrite.cnn'), VALID.replace('features = image', 'features   =   image'));
    expect((await run('fmt', file('rewrite.cnn'))).code).toBe(0);
    expect(fs.readFileSync(file('rewrite.cnn'), 'utf8')).toBe(VALID);
    expect((await run('fmt', '--check', file('rewrite.cnn'))).code).toBe(0);
  });

  it('leaves a spec with syntax errors alone and exits 1', async () => {
    const text = 'model M {\n  x = (\n}\n';
    fs.writeFileSync(file('syntax.cnn'), text);
    const result = await run('fmt', file('syntax.cnn'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('CNN2001');
    expect(fs.readFileSync(file('syntax.cnn'), 'utf8')).toBe(text);
  });
});

describe('the installed command', () => {
  it('passes the exit code to the shell: 0, 1 and 2', () => {
    const bin = path.join(projectRoot, 'bin', 'convspec.js');
    expect(fs.existsSync(path.join(projectRoot, 'dist', 'cli', 'main.js')), 'dist/ is missing: run `npm run build` first').toBe(true);
    const spawn = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
    const ok = spawn('check', file('valid.cnn'));
    expect(ok.status).toBe(0);
    const broken = spawn('check', file('broken.cnn'));
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain('error CNN3002');
    expect(broken.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    const usage = spawn('check', '--no-such-flag', file('valid.cnn'));
    expect(usage.status).toBe(2);
  });
});
