/**
 * Loader for ONNX's own conformance cases as Debian's `libonnx-testdata` installs them:
 * `/usr/share/libonnx-testdata/data/node/<case>/model.onnx` with `test_data_set_<k>/input_<i>.pb` and
 * `output_<i>.pb`, each a serialized TensorProto.
 *
 * Why: these are the reference inputs and outputs ONNX publishes for each operator (Conv, MaxPool, BatchNorm…).
 * Running them through ONNX Runtime validates the engine and this loader; running convspec's own builds of the
 * same ops against them validates the emitter.
 *
 * `$ONNX_TESTDATA_DIR` overrides the root (the folder holding the case folders).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeModel,
  decodeTensorProto,
  int64ToNumber,
  tensorProtoToArray,
  type DecodedModelProto,
  type OnnxElemType,
  type OnnxTypedArray,
} from '../../src/codegen/onnx-model.js';

export const ONNX_TESTDATA_NODE_DIR = process.env['ONNX_TESTDATA_DIR'] ?? '/usr/share/libonnx-testdata/data/node';

/** True when the node cases are installed. */
export function testdataAvailable(): boolean {
  return existsSync(ONNX_TESTDATA_NODE_DIR);
}

export interface CaseTensor {
  /** The graph input or output it belongs to (from the .pb, or by position when the .pb has no name). */
  readonly name: string;
  readonly dataType: OnnxElemType;
  readonly dims: number[];
  readonly data: OnnxTypedArray;
  /** The .pb file it was read from. */
  readonly path: string;
}

export interface OnnxTestCase {
  readonly name: string;
  readonly dir: string;
  readonly modelPath: string;
  readonly modelBytes: Uint8Array;
  readonly model: DecodedModelProto;
  /** The opset of the default domain the model imports. */
  readonly opset: number;
  readonly inputs: CaseTensor[];
  readonly outputs: CaseTensor[];
}

/** Names of the installed cases starting with any of `prefixes` (e.g. `test_conv_`), sorted. */
export function listCases(prefixes: readonly string[]): string[] {
  if (!testdataAvailable()) return [];
  return readdirSync(ONNX_TESTDATA_NODE_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && prefixes.some((prefix) => entry.name.startsWith(prefix)))
    .map((entry) => entry.name)
    .sort();
}

function numbered(dir: string, prefix: string): string[] {
  const pattern = new RegExp(`^${prefix}_(\\d+)\\.pb$`);
  return readdirSync(dir)
    .map((file) => ({ file, match: pattern.exec(file) }))
    .filter((e): e is { file: string; match: RegExpExecArray } => e.match !== null)
    .sort((a, b) => Number(a.match[1]) - Number(b.match[1]))
    .map((e) => join(dir, e.file));
}

function readTensors(paths: readonly string[], graphNames: readonly string[]): CaseTensor[] {
  return paths.map((path, i) => {
    const tensor = tensorProtoToArray(decodeTensorProto(readFileSync(path), path), path);
    const name = tensor.name !== '' ? tensor.name : (graphNames[i] ?? `#${i}`);
    return { name, dataType: tensor.dataType, dims: tensor.dims, data: tensor.data, path };
  });
}

/** Loads a case's model and one of its data sets (`test_data_set_0` by default). */
export function loadCase(name: string, dataSet = 0): OnnxTestCase {
  const dir = join(ONNX_TESTDATA_NODE_DIR, name);
  const modelPath = join(dir, 'model.onnx');
  const modelBytes = new Uint8Array(readFileSync(modelPath));
  const model = decodeModel(modelBytes, modelPath);
  const graph = model.graph;
  const initializers = new Set(graph.initializer.map((t) => t.name ?? ''));
  const inputNames = graph.input.map((v) => v.name ?? '').filter((n) => !initializers.has(n));
  const outputNames = graph.output.map((v) => v.name ?? '');
  const dataDir = join(dir, `test_data_set_${dataSet}`);
  if (!existsSync(dataDir)) throw new Error(`${dataDir}: no such data set`);
  const defaultOpset = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return {
    name,
    dir,
    modelPath,
    modelBytes,
    model,
    opset: defaultOpset === undefined ? 0 : int64ToNumber(defaultOpset.version, 'opset version', modelPath),
    inputs: readTensors(numbered(dataDir, 'input'), inputNames),
    outputs: readTensors(numbered(dataDir, 'output'), outputNames),
  };
}
