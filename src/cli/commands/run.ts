/**
 * `convspec run SPEC|MODEL.onnx [--weights FILE] --input FILE [--output FILE.npy] [--engine tfjs|ort]`
 *
 * Inference on one input: a `.npy` array (with or without the batch axis) or a PNG image (converted to the input's
 * channels and resized to its size, values in [0, 1]). Prints the top classes when the output is [N, K];
 * `--output` writes the first output as float32 `.npy` in the logical layout (NCHW). A spec runs on the tfjs
 * engine, or — with `--engine ort` — is exported to ONNX in memory and run by ONNX Runtime; an `.onnx` file always
 * runs on ONNX Runtime.
 */
import * as fs from 'node:fs';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import type { Graph } from '../../ir/graph.js';
import type { WeightNameMapping } from '../../runtime/weights-file.js';
import { DataError } from '../../runtime/data/data-error.js';
import { readNpyFile, writeFloat32Npy } from '../../runtime/data/npy.js';
import { decodePng, resizePlanar, rgbaToPlanar } from '../../runtime/data/png-folder.js';
import { EXIT, type Output } from '../output.js';
import { CommandFailure, loadGraph, loadWeightsFor } from '../session.js';

export interface RunCommandOptions {
  readonly input: string;
  readonly output?: string;
  readonly weights?: string;
  /** `--map` / `--map-file`: how the weights file names our parameters. */
  readonly weightNames?: WeightNameMapping;
  readonly engine: 'tfjs' | 'ort';
  readonly backend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  readonly top: number;
  readonly elaborate: ElaborateOptions;
}

interface Tensor {
  data: Float32Array;
  dims: number[];
}

/** Reads the input file as a batch for an input of shape `expected` ([N, C, …], entries may be unknown). */
export function readInput(file: string, expected: ReadonlyArray<number | undefined>): Tensor {
  if (file.toLowerCase().endsWith('.png')) {
    const image = decodePng(fs.readFileSync(file), file);
    const channels = expected[1] === 3 ? 3 : 1;
    let data = rgbaToPlanar(image, channels);
    const height = expected[2] ?? image.height;
    const width = expected[3] ?? image.width;
    if (expected.length !== 4) throw new DataError(`a PNG feeds a 2D image input [N, C, H, W], but the input has rank ${expected.length}`, file);
    if (height !== image.height || width !== image.width) data = resizePlanar(data, channels, image.height, image.width, height, width, 'bilinear');
    return { data, dims: [1, channels, height, width] };
  }
  if (!file.toLowerCase().endsWith('.npy')) throw new DataError('expected a .npy array or a .png image', file);
  const array = readNpyFile(file);
  const data = Float32Array.from(array.data as ArrayLike<number>, Number);
  let dims = [...array.shape];
  if (dims.length === expected.length - 1) dims = [1, ...dims];
  const fits = dims.length === expected.length && dims.every((d, i) => expected[i] === undefined || expected[i] === d);
  if (!fits) throw new DataError(`array of shape [${array.shape.join(', ')}] does not fit the input [${expected.map((d) => d ?? '?').join(', ')}]`, file);
  return { data, dims };
}

function printTop(output: Output, name: string, tensor: Tensor, top: number, classNames?: readonly string[]): void {
  if (tensor.dims.length !== 2) {
    output.out(`${name}: shape [${tensor.dims.join(', ')}]`);
    return;
  }
  const [batch, classes] = tensor.dims as [number, number];
  for (let b = 0; b < batch; b++) {
    const row = Array.from(tensor.data.subarray(b * classes, (b + 1) * classes));
    const order = row.map((v, i) => [v, i] as const).sort((x, y) => y[0] - x[0]).slice(0, top);
    output.out(`${name}[${b}]: ${order.map(([v, i]) => `${classNames?.[i] ?? i} ${v.toFixed(4)}`).join(', ')}`);
  }
}

export async function runRun(target: string, options: RunCommandOptions, output: Output): Promise<number> {
  try {
    const isOnnx = target.toLowerCase().endsWith('.onnx');
    let outputs: Record<string, Tensor>;
    if (isOnnx || options.engine === 'ort') {
      const { OrtEngine } = await import('../../runtime/ort/engine.js');
      let source: string | Uint8Array = target;
      let graph: Graph | undefined;
      if (!isOnnx) {
        graph = loadGraph(target, options.elaborate, output);
        const weights = loadWeightsFor(graph, options.weights, output, { ...options.weightNames });
        const { emitOnnx } = await import('../../codegen/onnx.js');
        const emitted = emitOnnx(graph, weights);
        if (emitted.bytes.length === 0) {
          for (const d of emitted.diagnostics) output.err(`${d.severity} ${d.code}: ${d.message}`);
          return EXIT.inputErrors;
        }
        source = emitted.bytes;
      }
      const engine = await OrtEngine.create(source, { intraOpThreads: 2 });
      const inputName = engine.inputNames[0]!;
      const expected = graph ? graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : undefined)) : [];
      const input = readInput(options.input, expected.length > 0 ? expected : [undefined, undefined, undefined, undefined].slice(0, 4));
      outputs = await engine.run({ [inputName]: input });
      await engine.dispose();
    } else {
      const graph = loadGraph(target, options.elaborate, output);
      const weights = loadWeightsFor(graph, options.weights, output, { ...options.weightNames });
      if (!options.weights) output.err('note: no --weights given: running with initialised weights');
      const { createEngine } = await import('../../runtime/tfjs/index.js');
      const engine = await createEngine(graph, weights, { backend: options.backend });
      const input = readInput(options.input, graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : undefined)));
      outputs = (await engine.predict({ [graph.inputs[0]!.name]: input })) as Record<string, Tensor>;
      engine.dispose();
    }
    const [firstName, first] = Object.entries(outputs)[0]!;
    for (const [name, tensor] of Object.entries(outputs)) printTop(output, name, tensor, options.top);
    if (options.output) {
      writeFloat32Npy(options.output, first.dims, first.data);
      output.out(`wrote ${options.output} (${firstName}, [${first.dims.join(', ')}])`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    if (error instanceof DataError || (error as Error).name === 'OrtEngineError' || (error as Error).name === 'EngineError') {
      output.err(`error CNN8005: ${(error as Error).message}`);
      return EXIT.inputErrors;
    }
    throw error;
  }
}
