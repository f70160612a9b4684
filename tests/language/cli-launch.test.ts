/**
 * How the command starts (bin/launch.js): from the single-file bundle with V8's code cache that `npm run build`
 * makes, or from the modules of dist/. Both must be the same command: same files written, same output, same exit
 * codes. A bundle older than any file it was made from is not used.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: bin/ is plain JavaScript without declarations
import { bundleProblem, DIST } from '../../bin/launch.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(projectRoot, 'bin', 'convspec.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function convspec(from: 'bundle' | 'modules', args: readonly string[]): Run {
  const env = { ...process.env, CONVSPEC_NO_BUNDLE: from === 'modules' ? '1' : '0' };
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: projectRoot, env, encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every file under `folder`, by relative path. */
function filesUnder(folder: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const entry of fs.readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(folder, full), fs.readFileSync(full));
  }
  return files;
}

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-launch-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the bundle npm run build makes', () => {
  it('is up to date and its code cache is accepted by this Node', () => {
    expect(bundleProblem(DIST)).toBeUndefined();
    // in a process of its own, as the command starts: V8 accepts a cache only under the flags it was made with
    const launch = path.join(projectRoot, 'bin', 'launch.js');
    const probe = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(launch)}).compileBundle().cache)`], { encoding: 'utf8' });
    expect(probe.stdout.trim(), probe.stderr).toBe('accepted');
  });

  it('is ASCII, as launch.js reads it (latin1)', () => {
    const bytes = fs.readFileSync(path.join(DIST, 'cli.bundle.cjs'));
    expect(bytes.findIndex((byte) => byte > 0x7f)).toBe(-1);
  });

  it.each([
    ['ONNX', 'onnx'],
    ['TensorFlow.js', 'tfjs'],
  ])('writes the same %s files as the modules', (_label, target) => {
    const written = (from: 'bundle' | 'modules') => {
      const out = path.join(dir, `${target}-${from}`);
      const run = convspec(from, ['compile', 'specs/fashion.cnn', '--target', target, '-o', out]);
      expect(run.code, run.stderr).toBe(0);
      return { run, files: filesUnder(out) };
    };
    const bundled = written('bundle');
    const modular = written('modules');
    expect([...bundled.files.keys()].sort()).toEqual([...modular.files.keys()].sort());
    expect(bundled.files.size).toBeGreaterThan(0);
    for (const [name, bytes] of modular.files) expect(bundled.files.get(name)?.equals(bytes), name).toBe(true);
    expect(bundled.run.stdout.replaceAll(`${target}-bundle`, 'OUT')).toBe(modular.run.stdout.replaceAll(`${target}-modules`, 'OUT'));
  });

  it('reports errors, usage mistakes and JSON exactly as the modules do', () => {
    const broken = path.join(dir, 'broken.cnn');
    fs.writeFileSync(broken, 'model Net {\n  input image: f32[N, 3, 32, 32]\n  x = imgae -> conv(16, 3)\n  output x\n}\n');
    for (const args of [
      ['check', broken],
      ['check', broken, '--format', 'json'],
      ['summary', 'specs/resnet18.cnn', '--format', 'json'],
      // the JSON form: ajv, left outside the bundle, loaded when needed
      ['check', 'specs/json/fashion.json', '--format', 'json'],
      ['compile', 'specs/fashion.cnn', '--target', 'nonsense', '-o', dir],
      ['--version'],
    ]) {
      const bundled = convspec('bundle', args);
      const modular = convspec('modules', args);
      expect(bundled, args.join(' ')).toEqual(modular);
    }
    expect(convspec('bundle', ['check', broken]).code).toBe(1);
  });
});

describe('bundleProblem', () => {
  /** A dist/ folder of its own: a bundle, its manifest, and one input modified at `inputAgeMs` relative to it. */
  function fakeDist(inputOffsetMs: number, manifest: unknown = { inputs: ['cli/main.js'] }): string {
    const folder = fs.mkdtempSync(path.join(dir, 'dist-'));
    fs.mkdirSync(path.join(folder, 'cli'));
    fs.writeFileSync(path.join(folder, 'cli', 'main.js'), '');
    fs.writeFileSync(path.join(folder, 'cli.bundle.cjs'), '');
    fs.writeFileSync(path.join(folder, 'cli.bundle.json'), JSON.stringify(manifest));
    const bundled = new Date('2026-01-01T00:00:00Z');
    fs.utimesSync(path.join(folder, 'cli.bundle.cjs'), bundled, bundled);
    const input = new Date(bundled.getTime() + inputOffsetMs);
    fs.utimesSync(path.join(folder, 'cli', 'main.js'), input, input);
    return folder;
  }

  it('accepts a bundle at least as new as its inputs', () => {
    expect(bundleProblem(fakeDist(-1000))).toBeUndefined();
    expect(bundleProblem(fakeDist(0))).toBeUndefined();
  });

  it('refuses a bundle older than one of its inputs (dist/ rebuilt by tsc alone)', () => {
    expect(bundleProblem(fakeDist(1000))).toBe('cli/main.js is newer than the bundle');
  });

  it('refuses a bundle whose manifest is missing, empty or names a file that is gone', () => {
    const noManifest = fakeDist(-1000);
    fs.rmSync(path.join(noManifest, 'cli.bundle.json'));
    expect(bundleProblem(noManifest)).toBe('no manifest');
    expect(bundleProblem(fakeDist(-1000, { inputs: [] }))).toBe('no manifest');
    expect(bundleProblem(fakeDist(-1000, { inputs: ['cli/main.js', 'gone.js'] }))).toBe('gone.js is newer than the bundle');
    expect(bundleProblem(path.join(dir, 'no-such-dist'))).toBe('no bundle');
  });

  it('a stale bundle is not run: the command runs from the modules', () => {
    // The real dist/ with one input touched after the bundle: the command still works, from the modules.
    const input = path.join(DIST, 'version.js');
    const before = fs.statSync(input);
    const later = new Date(fs.statSync(path.join(DIST, 'cli.bundle.cjs')).mtimeMs + 60_000);
    try {
      fs.utimesSync(input, before.atime, later);
      expect(bundleProblem(DIST)).toBe('version.js is newer than the bundle');
      const run = convspec('bundle', ['check', 'specs/fashion.cnn']);
      expect(run.code, run.stderr).toBe(0);
    } finally {
      fs.utimesSync(input, before.atime, before.mtime);
    }
    expect(bundleProblem(DIST)).toBeUndefined();
  });
});
