/**
 * Chooses the TensorFlow.js backend the engine runs on, and says why better ones were skipped.
 *
 * Why: the fast backends are optional. `tensorflow` needs `@tensorflow/tfjs-node-gpu` or
 * `@tensorflow/tfjs-node`, whose installs download libtensorflow and so are usually absent;
 * `webgpu` needs the `webgpu` package's Dawn bindings and a GPU adapter, which machines without
 * a GPU (or without a Vulkan loader) lack. `wasm` always works in Node 20 and, with the kernels
 * of ./wasm-kernels.ts, trains convolutional networks; `cpu` is the last resort (30–100×
 * slower). With preference 'auto' the candidates are tried best first, in that order, and the
 * result names the backend that runs together with one line per better backend that was
 * skipped; an explicit preference that cannot be met throws an Error carrying the reason.
 *
 * How each candidate is tried:
 *   tensorflow  resolve then import `@tensorflow/tfjs-node-gpu`, else `@tensorflow/tfjs-node`
 *               (each registers the 'tensorflow' backend in the shared `@tensorflow/tfjs`), then
 *               `tf.setBackend('tensorflow')`. TF_CPP_MIN_LOG_LEVEL defaults to 2 so that
 *               libtensorflow's start-up log stays quiet.
 *   webgpu      resolve the `webgpu` package, then ask Dawn for an adapter in a short-lived child
 *               process: Dawn writes its warnings (for instance "Couldn't load Vulkan") straight
 *               to the process's stderr, and a driver crash must not take the engine down. Only
 *               when an adapter exists is Dawn loaded here: its globals are installed,
 *               `navigator.gpu = create([])`, `@tensorflow/tfjs-backend-webgpu` is imported (it
 *               registers its backend only when `navigator.gpu` exists at import time, so it
 *               is registered here if it was imported earlier), and `tf.setBackend('webgpu')`
 *               must return true (on failure `tf.getBackend()` may still say 'webgpu').
 *   wasm        register the composed kernels, point `setWasmPaths` at the package's dist
 *               folder (resolved from this module, so any working directory works) unless the
 *               backend is initialised already, then `tf.setBackend('wasm')`. With more than one
 *               thread (see "wasm threads" below) the backend's factory is replaced first.
 *   cpu         `tf.setBackend('cpu')`.
 * `tf.enableProdMode()` silences tfjs's own hints and warnings (such as the suggestion to
 * install tfjs-node, or a failed backend initialisation).
 *
 * wasm threads. tfjs 4.22 turns multithreading off in Node (its WASM_HAS_MULTITHREAD_SUPPORT flag
 * is false there) and would start the Emscripten workers from Blob URLs, which Node's
 * worker_threads refuse. Asked for n > 1 threads (the `threads` option, else the
 * CONVSPEC_WASM_THREADS environment variable), the 'wasm' factory instead instantiates the
 * package's threaded SIMD build itself: the worker script (a string inside the package) is
 * written once to a file in the temporary folder, named by its hash, and the workers start from
 * that file; the main script is the package's own file. The C side caps the XNNPACK thread pool
 * at half the number of logical cores it is told (it assumes two hyperthreads per core, so a
 * 2-core machine gets 1), hence the core count import answers 2n. Emscripten starts a pool of 8
 * idle workers either way (about 0.1 s and some memory), which is why one thread stays the plain
 * single-threaded build. The pool's running workers are unreferenced, so that they do not keep Node from
 * exiting. When the threaded start fails, the package's own factory runs instead
 * (one thread) and the selection says so. The count is fixed when the backend first initialises:
 * later requests in the same process get the threads it already has.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import * as tf from '@tensorflow/tfjs';
import { BackendWasm, getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

import { registerMissingWasmKernels } from './wasm-kernels.js';

/** Backends the engine can run on, best first. */
export const backendNames = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

export type BackendName = (typeof backendNames)[number];

export type BackendPreference = 'auto' | BackendName;

/** The backend that runs, and one line per better backend skipped (with preference 'auto'). */
export interface BackendSelection {
  name: string;
  reasons: string[];
}

export interface BackendOptions {
  /**
   * Threads of the wasm backend, fixed when it first initialises in the process; default the
   * CONVSPEC_WASM_THREADS environment variable, else 1. See "wasm threads" in the module header.
   */
  readonly threads?: number;
}

type Attempt = { available: true } | { available: false; reason: string };

const requireFromHere = createRequire(import.meta.url);

/** How long the child process that looks for a WebGPU adapter may take. */
const adapterProbeTimeoutMilliseconds = 30_000;

function unavailable(reason: string): Attempt {
  return { available: false, reason };
}

function firstLine(text: string): string {
  return text.split('\n').map((line) => line.trim()).find((line) => line.length > 0) ?? '';
}

function errorMessage(error: unknown): string {
  return firstLine(error instanceof Error ? error.message : String(error));
}

/** The resolved entry file of a package, or undefined when it is not installed. */
function resolvePackage(packageName: string): string | undefined {
  try {
    return requireFromHere.resolve(packageName);
  } catch {
    return undefined;
  }
}

/**
 * Whether a backend is initialised already. (`tf.findBackend` would start initialising a
 * registered backend as a side effect, before the wasm paths are set, say.)
 */
function isInitialised(name: BackendName): boolean {
  return Object.prototype.hasOwnProperty.call(tf.engine().registry, name);
}

/** `tf.setBackend`, reporting failure (a false result or a thrown error) as a reason. */
async function activate(name: BackendName): Promise<Attempt> {
  try {
    const initialised = await tf.setBackend(name);
    if (initialised && tf.getBackend() === name) {
      return { available: true };
    }
    return unavailable(`tf.setBackend('${name}') could not initialise the backend`);
  } catch (error) {
    return unavailable(`tf.setBackend('${name}') failed: ${errorMessage(error)}`);
  }
}

async function tryTensorflow(): Promise<Attempt> {
  const failures: string[] = [];
  for (const packageName of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    if (resolvePackage(packageName) === undefined) {
      failures.push(`${packageName} is not installed`);
      continue;
    }
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    try {
      // A variable specifier keeps the optional package out of type checking.
      const specifier: string = packageName;
      await import(specifier);
    } catch (error) {
      failures.push(`${packageName} failed to load: ${errorMessage(error)}`);
      continue;
    }
    if (!tf.findBackendFactory('tensorflow')) {
      failures.push(`${packageName} loaded but registered no 'tensorflow' backend in this @tensorflow/tfjs ` +
        '(are their versions the same?)');
      continue;
    }
    const attempt = await activate('tensorflow');
    if (attempt.available) {
      return attempt;
    }
    failures.push(`${packageName}: ${attempt.reason}`);
  }
  return unavailable(failures.join('; '));
}

/** What the adapter probe reports. */
interface AdapterProbe {
  found: boolean;
  description: string;
  diagnostic: string;
}

/** Asks Dawn for a GPU adapter in a child process, so that its stderr output and crashes stay there. */
function probeAdapter(webgpuEntry: string): Promise<AdapterProbe> {
  const script = [
    `const { create } = await import(${JSON.stringify(pathToFileURL(webgpuEntry).href)});`,
    'const adapter = await create([]).requestAdapter({ powerPreference: "high-performance" });',
    'const info = adapter?.info ?? {};',
    'const description = [info.vendor, info.architecture, info.device, info.description]',
    '  .filter((part) => typeof part === "string" && part.length > 0).join(" ");',
    'process.stdout.write(JSON.stringify({ found: adapter != null, description }));',
    'process.exit(0);',
  ].join('\n');
  return new Promise((resolve) => {
    execFile(
      process.execPath, ['--input-type=module', '--eval', script],
      { timeout: adapterProbeTimeoutMilliseconds, windowsHide: true },
      (error, stdout, stderr) => {
        const diagnostic = firstLine(stderr.replace(/^Warning:\s*/gm, ''));
        try {
          const report = JSON.parse(stdout) as { found: boolean; description: string };
          resolve({ found: report.found === true, description: String(report.description ?? ''), diagnostic });
        } catch {
          const failure = error ? errorMessage(error) : 'no report';
          resolve({ found: false, description: '', diagnostic: diagnostic || failure });
        }
      });
  });
}

/** The parts of a WebGPU adapter and of the `webgpu` package used here. */
interface GpuAdapterLike {
  limits: Record<string, number>;
  features: { has(feature: string): boolean };
  info?: unknown;
  requestDevice(descriptor?: object): Promise<unknown>;
}
interface GpuLike {
  requestAdapter(options?: object): Promise<GpuAdapterLike | null>;
}
interface WebgpuPackage {
  create(options: string[]): GpuLike;
  globals: object;
}

/** Makes `gpu` the process's `navigator.gpu` (Node 20 has no `navigator`; Node 21+ has one without `gpu`). */
function installNavigatorGpu(gpu: GpuLike): void {
  const global = globalThis as { navigator?: object };
  if (global.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  Object.defineProperty(global.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

async function tryWebgpu(): Promise<Attempt> {
  const webgpuEntry = resolvePackage('webgpu');
  if (webgpuEntry === undefined) {
    return unavailable('the webgpu package (Dawn bindings for Node) is not installed');
  }
  if (!isInitialised('webgpu')) {
    const probe = await probeAdapter(webgpuEntry);
    if (!probe.found) {
      return unavailable(`Dawn found no GPU adapter${probe.diagnostic ? ` (${probe.diagnostic})` : ''}`);
    }
    let gpu: GpuLike;
    try {
      const webgpu = (await import(pathToFileURL(webgpuEntry).href)) as WebgpuPackage;
      Object.assign(globalThis, webgpu.globals);
      gpu = webgpu.create([]);
      installNavigatorGpu(gpu);
      const webgpuBackend = await import('@tensorflow/tfjs-backend-webgpu');
      if (!tf.findBackendFactory('webgpu')) {
        // Imported before navigator.gpu existed: register the factory the package would have.
        const WebGPUBackend = webgpuBackend.WebGPUBackend as unknown as new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend;
        tf.registerBackend('webgpu', async () => {
          const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
          if (adapter === null) {
            throw new Error('no GPU adapter');
          }
          const limitNames = ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension',
            'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX',
            'maxComputeInvocationsPerWorkgroup'];
          const requiredLimits = Object.fromEntries(limitNames.map((name) => [name, adapter.limits[name]]));
          const requiredFeatures = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
          const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
          return new WebGPUBackend(device, adapter.info);
        }, 3);
      }
    } catch (error) {
      return unavailable(`loading Dawn or @tensorflow/tfjs-backend-webgpu failed: ${errorMessage(error)}`);
    }
  }
  return activate('webgpu');
}

/** The folder holding the wasm backend's .wasm files, with a trailing separator. */
function wasmBinaryFolder(): string {
  const binary = requireFromHere.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm');
  return path.dirname(binary) + path.sep;
}

/** Threads asked for: the option, else CONVSPEC_WASM_THREADS, else 1. */
function requestedWasmThreads(options: BackendOptions): number {
  const requested = options.threads ?? Number(process.env.CONVSPEC_WASM_THREADS ?? 1);
  if (!Number.isInteger(requested) || requested < 1) {
    throw new Error(`the wasm thread count must be a positive integer, got ${String(options.threads ?? process.env.CONVSPEC_WASM_THREADS)}`);
  }
  return requested;
}

/** Why the threaded wasm build could not start, when it was asked for and failed. */
let threadedWasmFailure: string | undefined;

/** The Emscripten module of the threaded build, as far as it is used here. */
interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argumentTypes: string[]): (...args: number[]) => number;
  PThread?: { runningWorkers: Array<{ unref(): void }> };
}
type EmscriptenFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;
interface WasmInstantiationImports {
  env: Record<string, unknown>;
}
/** `WebAssembly.instantiate` (the project's type libraries leave WebAssembly out). */
interface WebAssemblyApi {
  instantiate(bytes: Uint8Array, imports: WasmInstantiationImports): Promise<{ instance: unknown; module: unknown }>;
}

/** The worker script of the threaded build as a file (written once per content). */
function wasmWorkerFile(): string {
  const { wasmWorkerContents } = requireFromHere('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as { wasmWorkerContents: string };
  // The package turns the newlines inside its string literals back into escapes the same way before making a Blob.
  const script = wasmWorkerContents.replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `convspec-tfjs-wasm-worker-${hash}.cjs`);
  if (!existsSync(file)) {
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, script);
    renameSync(temporary, file);
  }
  return file;
}

/** Starts the threaded SIMD build with `threads` XNNPACK threads (see the module header). */
async function createThreadedWasmBackend(threads: number): Promise<tf.KernelBackend> {
  const mainScript = requireFromHere.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const binary = requireFromHere.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm');
  const workerScript = wasmWorkerFile();
  const factory = requireFromHere(mainScript) as EmscriptenFactory;
  const module = await factory({
    mainScriptUrlOrBlob: mainScript,
    locateFile: (file: string, prefix: string) => (file.endsWith('.worker.js') ? workerScript : file.endsWith('.wasm') ? binary : prefix + file),
    instantiateWasm: (imports: WasmInstantiationImports, receive: (instance: unknown, module: unknown) => void) => {
      imports.env['emscripten_num_logical_cores'] = () => 2 * threads;
      const webAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
      void webAssembly.instantiate(readFileSync(binary), imports).then((result) => receive(result.instance, result.module));
      return {};
    },
  });
  // What the package's own init() adds to the module before BackendWasm uses it.
  Object.assign(module, {
    tfjs: {
      init: module.cwrap('init', null, []),
      initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: module.cwrap('get_threads_count', 'number', []),
      registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: module.cwrap('dispose_data', null, ['number']),
      dispose: module.cwrap('dispose', null, []),
    },
  });
  setThreadsCount(threads);
  const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
  // The thread pool's workers run for the life of the backend; Emscripten holds a reference on each running
  // worker, which would keep Node from exiting when the program is done.
  for (const worker of module.PThread?.runningWorkers ?? []) worker.unref();
  return backend;
}

/** Replaces the wasm backend's factory by one that starts the threaded build, falling back to the package's. */
function useThreadedWasm(threads: number): void {
  const standard = tf.findBackendFactory('wasm');
  if (standard === null) return;
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    try {
      return await createThreadedWasmBackend(threads);
    } catch (error) {
      threadedWasmFailure = `the threaded wasm build did not start (${errorMessage(error)}); running one thread`;
      setThreadsCount(1);
      return standard();
    }
  }, 2);
}

async function tryWasm(options: BackendOptions): Promise<Attempt> {
  registerMissingWasmKernels();
  if (!isInitialised('wasm')) {
    const threads = requestedWasmThreads(options);
    try {
      setWasmPaths(wasmBinaryFolder());
    } catch (error) {
      // "already initialized" (initialisation started elsewhere) keeps the paths it used.
      if (!/already initialized/i.test(errorMessage(error))) {
        return unavailable(`cannot locate its .wasm files: ${errorMessage(error)}`);
      }
    }
    if (threads > 1) useThreadedWasm(threads);
  }
  return activate('wasm');
}

/** The wasm backend's XNNPACK thread count (1 before it initialises). */
export function wasmThreads(): number {
  return isInitialised('wasm') ? Math.max(1, getThreadsCount()) : 1;
}

async function tryCpu(): Promise<Attempt> {
  return activate('cpu');
}

const attempts: Record<BackendName, (options: BackendOptions) => Promise<Attempt>> = {
  tensorflow: tryTensorflow,
  webgpu: tryWebgpu,
  wasm: tryWasm,
  cpu: tryCpu,
};

function isPreference(value: string): value is BackendPreference {
  return value === 'auto' || (backendNames as readonly string[]).includes(value);
}

/**
 * Makes the best available backend (or the one asked for) the active TensorFlow.js backend.
 * Returns its name and, for 'auto', one line per better backend that was skipped, such as
 * "tensorflow: @tensorflow/tfjs-node-gpu is not installed; @tensorflow/tfjs-node is not
 * installed". An explicit preference that cannot be met throws an Error with the reason.
 */
export async function selectBackend(preference: BackendPreference = 'auto', options: BackendOptions = {}): Promise<BackendSelection> {
  if (!isPreference(preference)) {
    throw new Error(
      `unknown backend '${String(preference)}': expected one of auto, ${backendNames.join(', ')}`);
  }
  tf.enableProdMode();
  const candidates: readonly BackendName[] = preference === 'auto' ? backendNames : [preference];
  const reasons: string[] = [];
  for (const name of candidates) {
    const attempt = await attempts[name](options);
    if (attempt.available) {
      const active = tf.getBackend();
      if (active === 'wasm' && threadedWasmFailure !== undefined) reasons.push(`wasm: ${threadedWasmFailure}`);
      return { name: active, reasons };
    }
    if (preference !== 'auto') {
      throw new Error(`backend '${name}' is unavailable: ${attempt.reason}`);
    }
    reasons.push(`${name}: ${attempt.reason}`);
  }
  throw new Error(`no TensorFlow.js backend could be initialised: ${reasons.join(' | ')}`);
}
