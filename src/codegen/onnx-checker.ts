/**
 * The official ONNX checker (`onnx.checker.check_model(..., full_check=True)`, Python) run on ONNX files.
 *
 * Why: ONNX Runtime runs many graphs the standard rejects, so "ORT ran it" does not prove an emitted file is
 * valid. The Python `onnx` package is the reference; `full_check=True` also runs strict shape inference with type
 * checks. Tests use it on everything the emitter writes.
 *
 * - `findPythonWithOnnx` looks for an interpreter that imports `onnx`: `$CONVSPEC_PYTHON` alone when set,
 *   otherwise Debian's `/usr/bin/python3` (where python3-onnx installs), then `python3` and `python` on PATH (a
 *   pyenv or venv interpreter on PATH often lacks onnx).
 * - `checkManyOnnx` checks many files in one Python process (starting Python and importing onnx costs far more
 *   than checking a small model). `checkOnnxWithOfficialChecker` checks one.
 * - Without an interpreter with onnx the result is `{ ok: null, reason }`, never a silent pass.
 *
 * The model is loaded and passed as a ModelProto on purpose: given a path, onnx 1.12's `check_model` with
 * `full_check=True` calls `infer_shapes_path(path)`, which overwrites the file with the shape-inferred model.
 */
import { spawn } from 'node:child_process';

export const PYTHON_ONNX_UNAVAILABLE = 'python3-onnx not available' as const;

/** The verdict on one file: `ok: null` when no Python with onnx is available. */
export type OnnxCheckResult =
  | { readonly ok: boolean; readonly message: string }
  | { readonly ok: null; readonly reason: typeof PYTHON_ONNX_UNAVAILABLE };

export interface PythonWithOnnx {
  /** The interpreter's path as found (`sys.executable`). */
  readonly executable: string;
  readonly onnxVersion: string;
}

/** The checker could not run (Python crashed, timed out, or printed something unexpected). */
export class OnnxCheckerError extends Error {
  override readonly name = 'OnnxCheckerError';
  constructor(
    message: string,
    /** The files being checked. */
    readonly paths: readonly string[],
  ) {
    super(paths.length === 1 ? `${paths[0]!}: ${message}` : `${message} (checking ${paths.length} files, first ${paths[0] ?? '-'})`);
  }
}

export interface CheckerOptions {
  /** Limit for the whole Python process; default 60 s plus 2 s per file. */
  readonly timeoutMs?: number;
}

interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly spawnError?: Error;
}

function runProcess(executable: string, args: readonly string[], stdin: string, timeoutMs: number): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(executable, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONIOENCODING: 'utf-8' } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const finish = (result: ProcessResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => finish({ code: null, stdout, stderr, timedOut, spawnError: error }));
    child.on('close', (code) => finish({ code, stdout, stderr, timedOut }));
    child.stdin.on('error', () => undefined); // a missing interpreter closes the pipe before we write
    child.stdin.end(stdin);
  });
}

const PROBE = 'import sys, onnx; print(onnx.__version__); print(sys.executable)';

let pythonSearch: Promise<PythonWithOnnx | null> | undefined;

/** Finds an interpreter that imports onnx, or `null`. The search runs once per process. */
export function findPythonWithOnnx(): Promise<PythonWithOnnx | null> {
  pythonSearch ??= (async () => {
    const fromEnv = process.env['CONVSPEC_PYTHON'];
    // An interpreter named explicitly is the only one tried: a wrong setting should not be papered over.
    const candidates = fromEnv !== undefined && fromEnv !== '' ? [fromEnv] : ['/usr/bin/python3', 'python3', 'python'];
    for (const candidate of candidates) {
      const result = await runProcess(candidate, ['-c', PROBE], '', 30_000);
      if (result.code === 0) {
        const [version, executable] = result.stdout.trim().split(/\r?\n/);
        if (version !== undefined && version !== '') return { executable: executable ?? candidate, onnxVersion: version };
      }
    }
    return null;
  })();
  return pythonSearch;
}

/** Reads a JSON list of paths on stdin, prints a JSON list of verdicts. */
const CHECK_SCRIPT = String.raw`
import json, sys
import onnx
paths = json.loads(sys.stdin.read())
verdicts = []
for path in paths:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        verdicts.append({"ok": True, "message": "valid (onnx " + onnx.__version__ + ", full_check)"})
    except Exception as error:
        text = str(error).strip()
        verdicts.append({"ok": False, "message": type(error).__name__ + ": " + text})
sys.stdout.write("\n@@verdicts@@" + json.dumps(verdicts))
`;

function isVerdict(v: unknown): v is { ok: boolean; message: string } {
  return typeof v === 'object' && v !== null && typeof (v as { ok: unknown }).ok === 'boolean' && typeof (v as { message: unknown }).message === 'string';
}

/**
 * Checks every file in one Python process; results are in the order of `paths`. Raises `OnnxCheckerError` when
 * the checker itself fails (not when a model is invalid: that is `ok: false`).
 */
export async function checkManyOnnx(
  paths: readonly string[],
  options: CheckerOptions = {},
): Promise<Array<{ readonly path: string } & OnnxCheckResult>> {
  if (paths.length === 0) return [];
  const python = await findPythonWithOnnx();
  if (python === null) return paths.map((path) => ({ path, ok: null, reason: PYTHON_ONNX_UNAVAILABLE }));
  const timeoutMs = options.timeoutMs ?? 60_000 + 2_000 * paths.length;
  const result = await runProcess(python.executable, ['-c', CHECK_SCRIPT], JSON.stringify(paths), timeoutMs);
  if (result.spawnError !== undefined) throw new OnnxCheckerError(`cannot start ${python.executable}: ${result.spawnError.message}`, paths);
  if (result.timedOut) throw new OnnxCheckerError(`the checker took longer than ${timeoutMs} ms`, paths);
  const marker = result.stdout.lastIndexOf('@@verdicts@@');
  if (result.code !== 0 || marker < 0) {
    throw new OnnxCheckerError(`the checker exited with code ${String(result.code)}: ${result.stderr.trim().slice(-2000)}`, paths);
  }
  let verdicts: unknown;
  try {
    verdicts = JSON.parse(result.stdout.slice(marker + '@@verdicts@@'.length));
  } catch (error) {
    throw new OnnxCheckerError(`unreadable checker output (${error instanceof Error ? error.message : String(error)})`, paths);
  }
  if (!Array.isArray(verdicts) || verdicts.length !== paths.length || !verdicts.every(isVerdict)) {
    throw new OnnxCheckerError('the checker returned malformed verdicts', paths);
  }
  return paths.map((path, i) => ({ path, ok: verdicts[i].ok, message: verdicts[i].message }));
}

/** Checks one file with `onnx.checker.check_model(onnx.load(path), full_check=True)`. */
export async function checkOnnxWithOfficialChecker(path: string, options: CheckerOptions = {}): Promise<OnnxCheckResult> {
  const [verdict] = await checkManyOnnx([path], options);
  if (verdict === undefined) throw new OnnxCheckerError('no verdict', [path]);
  const { path: _path, ...rest } = verdict;
  return rest;
}
