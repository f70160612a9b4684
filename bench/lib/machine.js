/**
 * The machine a benchmark ran on: CPU model and flags, cores, memory, OS, and the versions of everything
 * measured (Node, ONNX Runtime, TensorFlow.js, PyTorch, onnx), plus the date and the git commit.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

function readText(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Version of an installed npm package, resolved from the project root; undefined when absent. */
export function packageVersion(root, name) {
  const file = path.join(root, 'node_modules', ...name.split('/'), 'package.json');
  if (!existsSync(file)) {
    try {
      return createRequire(path.join(root, 'package.json'))(`${name}/package.json`).version;
    } catch {
      return undefined;
    }
  }
  try {
    return JSON.parse(readFileSync(file, 'utf8')).version;
  } catch {
    return undefined;
  }
}

function cpuInfo() {
  const text = readText('/proc/cpuinfo');
  const model = text.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown CPU';
  const flags = new Set((text.match(/^flags\s*:\s*(.+)$/m)?.[1] ?? '').split(/\s+/));
  const simd = ['avx512f', 'avx512_vnni', 'avx2', 'fma', 'neon'].filter((f) => flags.has(f));
  return { model, simd };
}

function osName() {
  const release = readText('/etc/os-release');
  return release.match(/^PRETTY_NAME="?([^"\n]+)"?$/m)?.[1] ?? `${os.type()} ${os.release()}`;
}

function gitCommit(root) {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return commit || undefined;
  } catch {
    return undefined;
  }
}

/** Describes this machine; `python` is the harness's Python probe (versions of torch and onnx, or why absent). */
export function describeMachine(root, python) {
  const cpu = cpuInfo();
  return {
    cpu: cpu.model,
    simd: cpu.simd,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    arch: process.arch,
    node: process.version,
    onnxruntime: packageVersion(root, 'onnxruntime-node') ?? 'not installed',
    tfjs: packageVersion(root, '@tensorflow/tfjs') ?? 'not installed',
    torch: python?.torch ?? `unavailable (${python?.reason ?? 'not probed'})`,
    onnx: python?.onnx ?? 'unavailable',
    torchvision: python?.torchvision ?? 'not installed',
    python: python?.version ?? 'unavailable',
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: gitCommit(root),
  };
}
