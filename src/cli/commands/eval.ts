/**
 * `convspec eval SPEC --weights FILE [--data PATH] [--engine tfjs|ort] [--json]`: loss and accuracy (and top-5 when
 * there are more than five classes) on the test split, on the tfjs engine or on ONNX Runtime (the model exported
 * with the weights: several times faster on a CPU).
 */
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import type { WeightNameMapping } from '../../runtime/weights-file.js';
import { EXIT, type Output } from '../output.js';
import { CommandFailure, loadDataFor, loadGraph, loadWeightsFor } from '../session.js';

export interface EvalCommandOptions {
  readonly weights: string;
  /** `--map` / `--map-file`: how the weights file names our parameters. */
  readonly weightNames?: WeightNameMapping;
  readonly data?: string;
  readonly backend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  /** Where the forward passes run; default the tfjs engine. */
  readonly engine?: 'tfjs' | 'ort';
  /** ONNX Runtime's intra-op threads. */
  readonly threads?: number;
  readonly json: boolean;
  readonly elaborate: ElaborateOptions;
}

export async function runEval(file: string, options: EvalCommandOptions, output: Output): Promise<number> {
  try {
    const graph = loadGraph(file, options.elaborate, output);
    const weights = loadWeightsFor(graph, options.weights, output, { required: true, ...options.weightNames });
    const test = loadDataFor(graph, options.data, 'test', output);
    const { createEngine, defaultOrtThreads, evaluate } = await import('../../runtime/tfjs/index.js');
    const engine = await createEngine(graph, weights, { backend: options.backend });
    const classes = typeof graph.outputs[0] !== 'undefined' ? Number(graph.nodes.find((n) => n.name === graph.outputs[0]!.value)?.shape[1] ?? 0) : 0;
    const onOrt = options.engine === 'ort';
    const result = await evaluate(engine, test, { batchSize: 256, ...(classes > 5 ? { topK: [5] } : {}), ...(onOrt ? { runtime: 'ort' as const, ortThreads: options.threads ?? defaultOrtThreads() } : {}) });
    engine.dispose();
    if (options.json) output.out(JSON.stringify({ model: graph.name, samples: result.count, loss: result.loss, accuracy: result.accuracy, topK: result.topK, engine: onOrt ? 'ort' : 'tfjs', ...(onOrt ? {} : { backend: engine.backend.name }) }, null, 2));
    else {
      const top = Object.entries(result.topK).map(([k, v]) => `, ${k} ${(v * 100).toFixed(2)}%`).join('');
      output.out(`${graph.name}: accuracy ${(result.accuracy * 100).toFixed(2)}%${top}, loss ${result.loss.toFixed(4)} on ${result.count} test samples`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    throw error;
  }
}
