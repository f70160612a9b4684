#!/usr/bin/env node
/**
 * Bundles the command (dist/cli/main.js and everything it imports, chevrotain, commander and onnx-proto included)
 * into one CommonJS file, dist/cli.bundle.cjs, and makes V8's code cache for it, dist/cli.bundle.cache, by
 * compiling a spec with the bundle in this process. bin/launch.js runs the bundle with that cache.
 *
 * Why: a start of the command from the ES modules of dist/ resolves, reads and compiles about fifty files, about
 * 0.1 s before any work, a third of a whole ResNet-50 compile. One file saves the resolving, the code cache most of
 * the compiling: `compile specs/resnet50.cnn` 351–385 ms from the modules, 287–300 ms from the bundle; `check` of
 * it 190 → 145 ms (medians of 9, alternating, same minutes). Node 20 has no compile cache for ES modules, hence
 * CommonJS and vm.Script.
 *
 * What stays outside: packages with native code or of their own size that only some commands load (tfjs,
 * ONNX Runtime, WebGPU, pngjs, ajv, cli-progress); they are still loaded only when a command needs them, since the
 * modules that import them are initialised lazily. `import.meta.url` of each module becomes the URL of the module's
 * own file in dist/, so paths relative to it (package.json, the embedded data) resolve as before.
 *
 * Run by `npm run build` after tsc. Without esbuild (an install without dev dependencies) it says so and stops,
 * and the command runs from the modules.
 *
 * Usage: node scripts/bundle-cli.mjs
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const require = createRequire(import.meta.url);

/** Packages left to `require` at run time (see above). */
const EXTERNAL = ['@tensorflow/*', 'onnxruntime-node', 'webgpu', 'pngjs', 'ajv', 'cli-progress'];

/** The spec whose compile fills the code cache: it runs the parser, elaboration, checks, passes and the writer. */
const WARM_UP_SPEC = path.join(root, 'specs', 'resnet18.cnn');

/** The project's own atomic write (dist/ is built when this runs): a half-written bundle is never left behind. */
const { writeFileAtomic } = await import('../dist/runtime/data/atomic-write.js');

/**
 * Chevrotain's single-file build (the package's own, lodash inlined), as src/parser/chevrotain.ts loads it; its
 * regular entry point when that file is missing.
 */
function chevrotainEntry() {
  const entry = require.resolve('chevrotain');
  const single = path.join(path.dirname(entry), '..', 'chevrotain.mjs');
  return existsSync(single) ? single : entry;
}

/** esbuild plugin: gives each module of dist/ its own `import.meta.url`, and chevrotain as a static import. */
const distModules = {
  name: 'dist-modules',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const relative = path.relative(dist, args.path);
      if (relative.startsWith('..')) return undefined;
      let text = readFileSync(args.path, 'utf8');
      // chevrotain.js finds the single-file build at run time with a top-level await, which CommonJS cannot have;
      // in the bundle it is imported directly.
      if (relative === path.join('parser', 'chevrotain.js')) text = "export { createToken, Lexer, CstParser, EOF } from 'chevrotain';\n";
      // `createRequire(import.meta.url)('x')` (onnx-proto, ajv: CommonJS packages loaded without the ES module
      // loader's export scan) becomes a plain `require('x')`, which esbuild bundles (or leaves to run time for an
      // external); it resolves from dist/ instead of the module's folder, to the same node_modules.
      text = text.replaceAll('createRequire(import.meta.url)(', 'require(');
      text = text.replaceAll('import.meta.url', `__distModuleUrl(${JSON.stringify(relative.split(path.sep).join('/'))})`);
      return { contents: text, loader: 'js' };
    });
  },
};

/**
 * The bundle as ASCII, so bin/launch.js can read it as latin1: a one-byte string at copying speed (1–3 ms for
 * the 1.9 MB here), where decoding UTF-8 took 5–12 ms. esbuild already writes every non-ASCII character of strings,
 * templates, regular expressions and names as an escape (its default `charset: 'ascii'`); what it leaves is in
 * comments (`→`, `×` …), written here as `\uXXXX` too — an escape that would also be right anywhere else.
 */
function asciiOnly(text) {
  return text.replace(/[^\x00-\x7f]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

async function bundle(esbuild) {
  const outfile = path.join(dist, 'cli.bundle.cjs');
  const result = await esbuild.build({
    entryPoints: [path.join(dist, 'cli', 'main.js')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    keepNames: true,
    write: false,
    outfile,
    metafile: true,
    external: EXTERNAL,
    alias: { chevrotain: chevrotainEntry() },
    banner: {
      js: "const __distModuleUrl = (file) => require('node:url').pathToFileURL(require('node:path').join(__dirname, file)).href;",
    },
    plugins: [distModules],
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs)
    .map((input) => path.relative(dist, path.resolve(root, input)))
    .filter((input) => !input.startsWith('..'))
    .sort();
  writeFileAtomic(path.join(dist, 'cli.bundle.json'), Buffer.from(`${JSON.stringify({ inputs }, null, 1)}\n`));
  writeFileAtomic(outfile, Buffer.from(asciiOnly(result.outputFiles[0].text), 'latin1'));
  return inputs.length;
}

/** Compiles a spec with the bundle in this process, then keeps the bytecode of everything that ran. */
async function makeCodeCache() {
  const { bundleProblem, compileBundle, runBundle, CODE_CACHE_FILE } = await import('../bin/launch.js');
  rmSync(path.join(dist, CODE_CACHE_FILE), { force: true });
  const problem = bundleProblem(dist);
  if (problem) throw new Error(`the bundle cannot be used: ${problem}`);
  const compiled = compileBundle(dist);
  const { main } = runBundle(compiled);
  const folder = mkdtempSync(path.join(tmpdir(), 'convspec-bundle-'));
  const messages = [];
  const quiet = { out: (text) => messages.push(text), err: (text) => messages.push(text) };
  try {
    const code = await main(['node', 'convspec', 'compile', WARM_UP_SPEC, '--target', 'onnx', '-o', folder], quiet);
    if (code !== 0) throw new Error(`the warm-up compile failed (exit ${code}):\n${messages.join('\n')}`);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  const cache = compiled.script.createCachedData();
  writeFileAtomic(path.join(dist, CODE_CACHE_FILE), cache);
  return cache.byteLength;
}

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.log('bundle-cli: esbuild is not installed; the command will run from the modules of dist/');
  process.exit(0);
}
// A failure here is reported but does not fail the build (nor `npm ci`): without a bundle, or without its cache,
// the command runs as before, only slower. tests/language/cli-launch.test.ts fails when either is missing.
let inputs;
try {
  inputs = await bundle(esbuild);
} catch (error) {
  for (const name of ['cli.bundle.cjs', 'cli.bundle.json']) rmSync(path.join(dist, name), { force: true });
  console.warn(`bundle-cli: no bundle (the command will run from the modules of dist/): ${error.message}`);
  process.exit(0);
}
try {
  const cacheBytes = await makeCodeCache();
  console.log(`bundle-cli: dist/cli.bundle.cjs from ${inputs} modules, code cache ${(cacheBytes / 1024).toFixed(0)} KiB`);
} catch (error) {
  console.warn(`bundle-cli: dist/cli.bundle.cjs from ${inputs} modules, without a code cache: ${error.message}`);
}
