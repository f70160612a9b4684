/**
 * `convspec report SPEC [--weights FILE] [--history FILE] [--data PATH] [--input FILE] [--count N]
 *                 [--method auto|gradcam|gradcam++|hirescam] [--baseline-zeros] -o DIR`
 *
 * Writes DIR/report.html, one self-contained page (src/runtime/viz/report.ts): the summary table, receptive-field
 * and channel growth per layer, the first layer's filters, Grad-CAMs of a few test samples (one per class, for the
 * true class) and the training curves of `history.json` — given with --history, or found next to the weights, where
 * `convspec train` writes it. Sections that do not apply (no convolution, no image data for a 1D model, no history)
 * are left out with a note saying why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import type { ReportHistory, ReportImage, ReportInput } from '../../runtime/viz/report.js';
import type { CamMethodChoice } from '../../runtime/viz/gradcam.js';
import type { Sample } from '../../runtime/viz/render.js';
import { EXIT, UsageError, type Output } from '../output.js';
import { guarded, parseIndexList, type BackendFlag, type CommandContext } from './viz.js';

export interface ReportCommandOptions {
  readonly out: string;
  readonly weights?: string;
  readonly history?: string;
  readonly data?: string;
  readonly input?: string;
  readonly count: number;
  readonly index?: readonly number[];
  readonly backend: BackendFlag;
  readonly seed?: number;
  /** Grad-CAM weighting and reference, as `viz gradcam` takes them. */
  readonly method?: CamMethodChoice;
  readonly baselineZeros?: boolean;
  readonly elaborate: ElaborateOptions;
}

function readHistory(file: string): ReportHistory {
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { epochs?: unknown };
  if (!parsed || !Array.isArray(parsed.epochs)) throw new Error('expected an object with "epochs": [ … ] (the history.json of convspec train)');
  for (const epoch of parsed.epochs as Array<Record<string, unknown>>) {
    if (typeof epoch['epoch'] !== 'number' || typeof epoch['loss'] !== 'number' || typeof epoch['accuracy'] !== 'number') throw new Error('every epoch needs numeric "epoch", "loss" and "accuracy"');
  }
  return parsed as ReportHistory;
}

/** Up to `count` sample indices, the first of each class in turn (so the page shows different classes). */
function onePerClass(labels: Int32Array, count: number): number[] {
  const chosen: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < labels.length && chosen.length < count; i++) {
    if (seen.has(labels[i]!)) continue;
    seen.add(labels[i]!);
    chosen.push(i);
  }
  for (let i = 0; i < labels.length && chosen.length < count; i++) if (!chosen.includes(i)) chosen.push(i);
  return chosen;
}

export async function runReport(file: string, options: ReportCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    const { loadGraph, loadWeightsFor, loadDataFor } = await import('../session.js');
    const { computeCost } = await import('../../passes/cost.js');
    const { inferReceptiveFields } = await import('../../passes/receptive-field.js');
    const { summaryJson } = await import('./summary.js');
    const viz = await import('../../runtime/viz/index.js');
    const graph = loadGraph(file, options.elaborate, output);
    const weights = loadWeightsFor(graph, options.weights, output, { seed: options.seed ?? 0 });
    const notes: string[] = [];
    if (!options.weights) notes.push('No weights were given: filters and Grad-CAMs show the untrained (initialised) model.');
    const summary = summaryJson(graph, computeCost(graph), inferReceptiveFields(graph));

    let filters: ReportInput['filters'];
    try {
      const picture = viz.renderFilters(graph, weights);
      filters = { image: { png: viz.encodePng(picture.raster), caption: `${picture.layer}: kernels [${picture.shape.join(', ')}]`, alt: `filters of ${picture.layer}` }, notes: picture.notes };
    } catch (error) {
      if ((error as Error).name !== 'VizError') throw error;
      notes.push(`Filters: ${(error as Error).message}.`);
    }

    let gradcams: ReportInput['gradcams'];
    let samples: { sample: Sample; label?: number; name: string }[] = [];
    let classNames: readonly string[] | undefined;
    const input = graph.inputs[0];
    const isImage = graph.inputs.length === 1 && input !== undefined && input.shape.length === 4 && (input.shape[1] === 1 || input.shape[1] === 3);
    if (options.input) {
      const { readInput } = await import('./run.js');
      const batch = readInput(options.input, input!.shape.map((d) => (typeof d === 'number' ? d : undefined)));
      const size = batch.dims.slice(1).reduce((a, b) => a * b, 1);
      const indices = options.index ?? Array.from({ length: Math.min(batch.dims[0]!, options.count) }, (_, i) => i);
      samples = indices.filter((i) => i < batch.dims[0]!).map((i) => ({ sample: { data: batch.data.slice(i * size, (i + 1) * size), dims: batch.dims.slice(1) }, name: `${path.basename(options.input!)} #${i}` }));
    } else if (isImage) {
      const dataset = loadDataFor(graph, options.data, 'test', output);
      classNames = dataset.classNames;
      const size = dataset.shape.reduce((a, b) => a * b, 1);
      const indices = options.index ?? onePerClass(dataset.labels, options.count);
      samples = indices.filter((i) => i < dataset.count).map((i) => ({ sample: { data: dataset.images.slice(i * size, (i + 1) * size), dims: [...dataset.shape] }, label: dataset.labels[i]!, name: `test #${i}` }));
    } else {
      notes.push(`Grad-CAM: ${graph.name}'s input is not an image [N, 1|3, H, W]; give samples with --input FILE.npy to include Grad-CAMs.`);
    }
    if (samples.length > 0) {
      const { createEngine } = await import('../../runtime/tfjs/engine.js');
      const engine = await createEngine(graph, weights, { backend: options.backend, seed: options.seed ?? 0 });
      try {
        const images: ReportImage[] = [];
        let camNotes: string[] = [];
        let method: string = viz.CAM_METHOD_NAMES.gradcam;
        for (const { sample, label, name } of samples) {
          const result = await viz.gradCam(engine, sample, {
            method: options.method ?? 'auto',
            ...(label !== undefined ? { classIndex: label } : {}),
            ...(options.baselineZeros ? { baseline: { data: new Float32Array(sample.data.length), dims: sample.dims } } : {}),
          });
          camNotes = result.notes;
          method = viz.CAM_METHOD_NAMES[result.method];
          const className = (k: number) => classNames?.[k] ?? String(k);
          const pictures = viz.gradCamPictures(sample, result, name);
          const caption = `${name}: ${label !== undefined ? `true ${className(label)}, ` : ''}predicted ${className(result.predicted)} (p ${result.probabilities[result.predicted]!.toFixed(2)}); map for ${className(result.classIndex)}`;
          images.push({ png: viz.encodePng(pictures.panel), caption, alt: `${viz.CAM_METHOD_NAMES[result.method]} of ${name}` });
        }
        const layers = viz.classifierFeatureLayers(graph).map((l) => l.name);
        const how = `${method}${options.baselineZeros ? ' against an all-zero reference input' : ''}`;
        gradcams = { images, notes: [`${how} at ${layers.join(', ')}, for the true class where the label is known; input, heatmap (inferno: bright is important) and overlay.`, ...camNotes] };
      } catch (error) {
        if ((error as Error).name !== 'VizError') throw error;
        notes.push(`Grad-CAM: ${(error as Error).message}.`);
      } finally {
        engine.dispose();
      }
    }

    let history: ReportHistory | undefined;
    const historyFile = options.history ?? (options.weights ? path.join(path.dirname(options.weights), 'history.json') : undefined);
    if (historyFile && fs.existsSync(historyFile)) {
      try {
        history = readHistory(historyFile);
        if (!options.history) output.err(`note: training curves from ${historyFile}`);
      } catch (error) {
        output.err(`error CNN8005: cannot read history '${historyFile}': ${(error as Error).message}`);
        return EXIT.inputErrors;
      }
    } else if (options.history) {
      output.err(`error CNN8005: cannot read history '${options.history}': no such file`);
      return EXIT.inputErrors;
    } else notes.push('No training history: pass --history DIR/history.json (written by convspec train) to include training curves.');

    const html = viz.renderReport({
      summary,
      spec: path.basename(file),
      ...(options.weights ? { weights: path.basename(options.weights) } : {}),
      ...(filters ? { filters } : {}),
      ...(gradcams ? { gradcams } : {}),
      ...(history ? { history } : {}),
      notes,
    });
    fs.mkdirSync(options.out, { recursive: true });
    const target = path.join(options.out, 'report.html');
    const { writeFileAtomic } = await import('../../runtime/data/atomic-write.js');
    writeFileAtomic(target, Buffer.from(html, 'utf8'));
    output.out(`wrote ${target} (${(html.length / 1024).toFixed(0)} KiB: summary, charts${filters ? ', filters' : ''}${gradcams ? `, ${gradcams.images.length} Grad-CAMs` : ''}${history ? ', training curves' : ''})`);
    return EXIT.ok;
  });
}

type Flags = { method: CamMethodChoice; baselineZeros?: boolean; out: string; weights?: string; history?: string; data?: string; input?: string; count: number; index?: number[]; backend: BackendFlag; seed?: number; param: string[]; inputShape: string[]; root?: string; allowOutsideRoot?: boolean };

export function registerReportCommand(program: Command, context: CommandContext): void {
  context
    .specOptions(
      program
        .command('report')
        .description('one self-contained HTML page: summary, receptive fields, filters, Grad-CAMs, training curves')
        .argument('<spec>', 'spec file')
        .requiredOption('-o, --out <dir>', 'output directory (writes report.html)')
        .option('--weights <file>', 'weights: a convspec checkpoint, safetensors file, or ONNX file')
        .option('--history <file>', 'history.json of convspec train (default: next to --weights, if there)')
        .option('--data <path>', 'test data for the Grad-CAMs (default: the spec’s)')
        .option('--input <file>', 'samples for the Grad-CAMs instead (.npy; for 1D and 3D models)')
        .option('--count <n>', 'Grad-CAM samples (default 6)', (v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0) throw new UsageError(`--count expects an integer ≥ 0, found '${v}'`);
          return n;
        }, 6)
        .option('--index <list>', 'sample indices: 3, 0,2,5 or 0-7', parseIndexList('--index'))
        .option('--seed <n>', 'seed for initial weights when no --weights', (v) => Number(v))
        .addOption(new Option('--method <method>', 'Grad-CAM weighting').choices(['auto', 'gradcam', 'gradcam++', 'hirescam']).default('auto'))
        .option('--baseline-zeros', 'Grad-CAM relative to an all-zero input (see viz gradcam --baseline)'),
    )
    .addOption(context.backendOption())
    .action(async (file: string, flags: Flags) => {
      context.setStatus(
        await runReport(
          file,
          {
            out: flags.out,
            backend: flags.backend,
            count: flags.count,
            method: flags.method,
            ...(flags.baselineZeros ? { baselineZeros: true } : {}),
            elaborate: (context.elaborateOptions as (f: Flags) => ElaborateOptions)(flags),
            ...(flags.weights ? { weights: flags.weights } : {}),
            ...(flags.history ? { history: flags.history } : {}),
            ...(flags.data ? { data: flags.data } : {}),
            ...(flags.input ? { input: flags.input } : {}),
            ...(flags.index ? { index: flags.index } : {}),
            ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          },
          context.output,
        ),
      );
    });
}
