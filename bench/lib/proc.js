/**
 * Child processes for benchmarks: whole-process wall time, and peak resident memory.
 *
 * Wall time is taken around spawn → exit in this process (`performance.now()`), so it includes the child's
 * start-up (Node or Python interpreter, module loading), which is what a user waits for.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`, kilobytes) when it exists: it reports the child's own
 * `getrusage` maximum, independent of this process. Without it, Node children are run through a small preload
 * that prints `process.resourceUsage().maxRSS` at exit; other children then have no figure.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Runs a command to completion; never rejects for a failing command.
 * Resolves { code, signal, stdout, stderr, seconds, error } (error: spawn failure message, e.g. ENOENT).
 */
export function runCommand(command, args = [], options = {}) {
  const { cwd, env, timeoutMs = 600_000, input } = options;
  return new Promise((resolve) => {
    const started = performance.now();
    let child;
    try {
      child = spawn(command, args, { cwd, env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: null, signal: null, stdout: '', stderr: '', seconds: 0, error: String(error?.message ?? error) });
      return;
    }
    const out = [];
    const err = [];
    let spawnError;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    child.on('error', (error) => {
      spawnError = String(error?.message ?? error);
    });
    child.on('close', (code, signal) => {
      const seconds = (performance.now() - started) / 1000;
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds,
        ...(spawnError ? { error: spawnError } : {}),
      });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** The last non-empty line of a text, for short error reasons. */
export function lastLine(text) {
  const lines = String(text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? '';
}

/** The line of an error output that says what went wrong: the first `error…` line, else the last line. */
export function errorLine(text) {
  const lines = String(text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^(error|fatal)\b|^[A-Za-z]*Error\b/i.test(l)) ?? lines.at(-1) ?? '';
}

/** Describes why a command failed, in one line. */
export function failureReason(result) {
  if (result.error) return result.error;
  if (result.signal) return `killed by ${result.signal}`;
  const line = errorLine(result.stderr) || errorLine(result.stdout);
  return `exit code ${result.code}${line ? `: ${line}` : ''}`;
}

const GNU_TIME = '/usr/bin/time';

/** Whether GNU time is there to measure a child's peak RSS. */
export function hasGnuTime() {
  return existsSync(GNU_TIME);
}

/**
 * Runs a command and reports its peak resident set size in MiB (`rssMiB`, null when it cannot be measured)
 * together with `runCommand`'s result. `how` says which method measured it.
 */
export async function runWithPeakRss(command, args = [], options = {}) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'convspec-rss-'));
  try {
    if (hasGnuTime()) {
      const report = path.join(scratch, 'time.txt');
      const result = await runCommand(GNU_TIME, ['-f', '%M', '-o', report, command, ...args], options);
      let rssMiB = null;
      if (existsSync(report)) {
        const kb = Number(lastLine(readFileSync(report, 'utf8')).match(/(\d+)\s*$/)?.[1]);
        if (Number.isFinite(kb) && kb > 0) rssMiB = kb / 1024;
      }
      return { ...result, rssMiB, how: '/usr/bin/time' };
    }
    if (command === process.execPath || path.basename(command) === 'node') {
      const preload = path.join(scratch, 'rss.cjs');
      const report = path.join(scratch, 'rss.txt');
      writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(report)}, String(process.resourceUsage().maxRSS)));\n`);
      const result = await runCommand(command, ['--require', preload, ...args], options);
      const kb = existsSync(report) ? Number(readFileSync(report, 'utf8')) : NaN;
      return { ...result, rssMiB: Number.isFinite(kb) && kb > 0 ? kb / 1024 : null, how: 'process.resourceUsage().maxRSS' };
    }
    const result = await runCommand(command, args, options);
    return { ...result, rssMiB: null, how: 'unavailable (no /usr/bin/time)' };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
