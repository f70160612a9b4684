/**
 * Starting the command fast. `npm run build` compiles src/ into the ES modules of dist/ and then
 * (scripts/bundle-cli.mjs) bundles the command into one CommonJS file, dist/cli.bundle.cjs, with V8's code cache
 * for it, dist/cli.bundle.cache: the bytecode of every function a compile runs. Loading the command from the modules
 * costs about 0.1 s at each start, resolving and compiling some fifty files; the bundle with its cache about a third
 * of that (scripts/bundle-cli.mjs has the figures).
 *
 * The bundle is used only when it is at least as new as every file of dist/ it was made from (its manifest lists
 * them), so a dist/ rebuilt without bundling, by `tsc` alone or `tsc --watch`, runs as it was built. A cache V8
 * rejects (another Node version, other V8 flags) only costs the time it would save. CONVSPEC_NO_BUNDLE=1 runs the
 * modules whatever is there (stack traces, with CONVSPEC_DEBUG=1, then name the files of dist/ and their lines).
 */
'use strict';
// CommonJS (bin/package.json), as the bundle is: a start that loads no ES module skips Node's ES module loader
// (about 5 ms).
const { readFileSync, statSync } = require('node:fs');
const { createRequire } = require('node:module');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const vm = require('node:vm');

const DIST = path.join(__dirname, '..', 'dist');
const BUNDLE_FILE = 'cli.bundle.cjs';
const CODE_CACHE_FILE = 'cli.bundle.cache';
/** `{ inputs: [paths relative to dist/] }`: what the bundle was made from. */
const MANIFEST_FILE = 'cli.bundle.json';

/**
 * The bundle as a CommonJS function. The code cache belongs to exactly this text (V8 checks its length), so the
 * cache is made through this function too.
 */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}

function modifiedMs(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Why the bundle in `dist` cannot be used, or undefined when it can. */
function bundleProblem(dist = DIST) {
  const built = modifiedMs(path.join(dist, BUNDLE_FILE));
  if (built === undefined) return 'no bundle';
  let inputs;
  try {
    inputs = JSON.parse(readFileSync(path.join(dist, MANIFEST_FILE), 'utf8')).inputs;
  } catch {
    return 'no manifest';
  }
  if (!Array.isArray(inputs) || inputs.length === 0) return 'no manifest';
  for (const input of inputs) {
    const modified = modifiedMs(path.join(dist, input));
    if (modified === undefined || modified > built) return `${input} is newer than the bundle`;
  }
  // Dynamic import() inside a vm.Script needs Node's default loader (Node ≥ 20.12).
  if (vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER === undefined) return 'this Node cannot load ES modules from a vm.Script';
  return undefined;
}

/**
 * Compiles the bundle with its code cache. `cache: 'accepted' | 'rejected' | 'none'` says what V8 did with the
 * cache; `script.createCachedData()` gives a new one.
 */
function compileBundle(dist = DIST) {
  const file = path.join(dist, BUNDLE_FILE);
  // ASCII (bundle-cli.mjs makes sure), so latin1 reads it exactly, as a one-byte string, without decoding UTF-8.
  const source = readFileSync(file, 'latin1');
  let cachedData;
  try {
    cachedData = readFileSync(path.join(dist, CODE_CACHE_FILE));
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(wrap(source), {
    filename: file,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  return { file, script, cache };
}

/** Runs a compiled bundle and returns its exports (those of dist/cli/main.js). */
function runBundle({ file, script }) {
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
  return module.exports;
}

/** The command's `main`: from the bundle when it can be used, else from the modules of dist/. */
async function loadMain(dist = DIST) {
  if (process.env.CONVSPEC_NO_BUNDLE !== '1' && bundleProblem(dist) === undefined) return runBundle(compileBundle(dist)).main;
  return (await import(pathToFileURL(path.join(dist, 'cli', 'main.js')).href)).main;
}

module.exports = { DIST, BUNDLE_FILE, CODE_CACHE_FILE, MANIFEST_FILE, bundleProblem, compileBundle, runBundle, loadMain };
