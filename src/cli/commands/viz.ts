/**
 * `convspec viz filters|maximize|gradcam|invert|rf SPEC [--weights FILE] … -o DIR`: PNG pictures of what a model
 * learned (src/runtime/viz/), with a JSON file of the numbers behind each picture.
 *
 *   filters   DIR/filters.png, filters.json                 kernels of --layer (default the first conv)
 *   maximize  DIR/maximize.png, maximize.json, maximize.npy  inputs that maximise --channel(s) of --layer, or --class
 *   gradcam   DIR/gradcam.png, gradcam-<i>-heatmap.png, gradcam-<i>-overlay.png, gradcam.json
 *             (--method auto|gradcam|gradcam++|hirescam, --baseline zeros|FILE.npy for a reference input)
 *   invert    DIR/invert.png, invert.json, invert.npy        one reconstruction per --layer (repeatable)
 *   rf        DIR/rf.png, rf.json                            theoretical box and gradient heatmap of one unit
 *
 * Inputs: `--input FILE` (.npy, with or without the batch axis, or .png for 2D image models) or `--data PATH`
 * (the test split of a data set, as `train` reads it) with `--index i,j,…` or `--count n`.
 *
 * A technique that does not apply (Grad-CAM of a model without feature maps, the receptive field of a dense unit, a
 * PNG for a 1D model…) is a diagnostic and exit code 1, never a stack trace. This module only parses and prints:
 * heavy modules (tfjs) are imported when a command runs, so `convspec check` stays fast.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import type { Graph } from '../../ir/graph.js';
import type { Weights } from '../../ir/weights.js';
import type { TfjsEngine } from '../../runtime/tfjs/engine.js';
import type { CamMethodChoice } from '../../runtime/viz/gradcam.js';
import type { Sample } from '../../runtime/viz/render.js';
import { EXIT, UsageError, type Output } from '../output.js';

export type BackendFlag = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

/** What main.ts lends the viz and report commands (shared option builders and the exit-status setter). */
export interface CommandContext {
  readonly output: Output;
  readonly setStatus: (code: number) => void;
  readonly specOptions: (command: Command) => Command;
  readonly elaborateOptions: (flags: never) => ElaborateOptions;
  readonly backendOption: () => Option;
}

export interface CommonVizOptions {
  readonly out: string;
  readonly weights?: string;
  readonly backend: BackendFlag;
  readonly seed?: number;
  readonly elaborate: ElaborateOptions;
}

export interface SampleFlags {
  readonly input?: string;
  readonly data?: string;
  readonly index?: readonly number[];
  readonly count?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// argument parsing
// ---------------------------------------------------------------------------------------------------------------

/** `3`, `0,2,5` or `0-7` (ranges inclusive). */
export function parseIndexList(flag: string) {
  return (value: string): number[] => {
    const result: number[] = [];
    for (const part of value.split(',')) {
      const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(part);
      if (range) {
        const from = Number(range[1]);
        const to = Number(range[2]);
        if (to < from || to - from > 4096) throw new UsageError(`${flag}: bad range '${part}'`);
        for (let i = from; i <= to; i++) result.push(i);
      } else if (/^\s*\d+\s*$/.test(part)) result.push(Number(part));
      else throw new UsageError(`${flag} expects indices such as 3, 0,2,5 or 0-7, found '${value}'`);
    }
    return result;
  };
}

function parseNumber(flag: string, options: { integer?: boolean; min?: number; positive?: boolean } = {}) {
  return (value: string): number => {
    const n = Number(value);
    const bad = !Number.isFinite(n) || (options.integer && !Number.isInteger(n)) || (options.min !== undefined && n < options.min) || (options.positive && n <= 0);
    if (bad) throw new UsageError(`${flag} expects ${options.integer ? 'an integer' : 'a number'}${options.positive ? ' > 0' : options.min !== undefined ? ` ≥ ${options.min}` : ''}, found '${value}'`);
    return n;
  };
}

/** `0,1` → [0, 1]; `none` → null. */
function parseRange(value: string): readonly [number, number] | null {
  if (value === 'none') return null;
  const parts = value.split(',').map(Number);
  if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)) || parts[0]! >= parts[1]!) throw new UsageError(`--range expects LO,HI with LO < HI, or 'none', found '${value}'`);
  return [parts[0]!, parts[1]!];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

// ---------------------------------------------------------------------------------------------------------------
// shared steps
// ---------------------------------------------------------------------------------------------------------------

interface Session {
  readonly graph: Graph;
  readonly weights: Weights;
  readonly engine: TfjsEngine;
}

async function openSession(file: string, options: CommonVizOptions, output: Output): Promise<Session> {
  const { loadGraph, loadWeightsFor } = await import('../session.js');
  const graph = loadGraph(file, options.elaborate, output);
  const weights = loadWeightsFor(graph, options.weights, output, { seed: options.seed ?? 0 });
  if (!options.weights) output.err('note: no --weights given: showing the untrained (initialised) model');
  const { modelInput } = await import('../../runtime/viz/network.js');
  modelInput(graph);
  const { createEngine } = await import('../../runtime/tfjs/engine.js');
  const engine = await createEngine(graph, weights, { backend: options.backend, seed: options.seed ?? 0 });
  return { graph, weights, engine };
}

export interface LoadedSamples {
  readonly samples: Sample[];
  /** Data-set index and label of each sample (from --data). */
  readonly indices: (number | undefined)[];
  readonly labels: (number | undefined)[];
  readonly classNames?: readonly string[];
  readonly source: string;
}

/** Samples from --input or --data; `fallback` samples when neither is given and `optional`. */
async function loadSamples(graph: Graph, flags: SampleFlags, output: Output, defaults: { count: number; optional?: boolean }): Promise<LoadedSamples | undefined> {
  if (flags.input && flags.data) throw new UsageError('give --input FILE or --data PATH, not both');
  if (flags.input) {
    const { readInput } = await import('./run.js');
    const expected = graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : undefined));
    const batch = readInput(flags.input, expected);
    const perSample = batch.dims.slice(1).reduce((a, b) => a * b, 1);
    const all = Array.from({ length: batch.dims[0]! }, (_, n) => ({ data: batch.data.slice(n * perSample, (n + 1) * perSample), dims: batch.dims.slice(1) }));
    const chosen = flags.index ? flags.index.map((i) => {
      if (i >= all.length) throw new UsageError(`--index ${i}: ${flags.input} holds ${all.length} samples`);
      return i;
    }) : all.map((_, i) => i).slice(0, Math.max(defaults.count, 1));
    return { samples: chosen.map((i) => all[i]!), indices: chosen.map((i) => (all.length > 1 ? i : undefined)), labels: chosen.map(() => undefined), source: flags.input };
  }
  if (flags.data) {
    const { loadDataFor } = await import('../session.js');
    const dataset = loadDataFor(graph, flags.data, 'test', output);
    const indices = flags.index ?? Array.from({ length: Math.min(dataset.count, flags.count ?? defaults.count) }, (_, i) => i);
    const size = dataset.shape.reduce((a, b) => a * b, 1);
    const samples = indices.map((i) => {
      if (i >= dataset.count) throw new UsageError(`--index ${i}: the test split of ${flags.data} has ${dataset.count} samples`);
      return { data: dataset.images.slice(i * size, (i + 1) * size), dims: [...dataset.shape] };
    });
    return { samples, indices: [...indices], labels: indices.map((i) => dataset.labels[i]), ...(dataset.classNames ? { classNames: dataset.classNames } : {}), source: dataset.source ?? flags.data };
  }
  if (defaults.optional) return undefined;
  throw new UsageError('give an input: --input FILE (.npy or .png) or --data PATH (with --index or --count)');
}

function ensureDirectory(out: string): void {
  fs.mkdirSync(out, { recursive: true });
}

async function writePng(file: string, raster: import('../../runtime/viz/raster.js').Raster): Promise<void> {
  const { encodePng } = await import('../../runtime/viz/raster.js');
  const { writeFileAtomic } = await import('../../runtime/data/atomic-write.js');
  writeFileAtomic(file, encodePng(raster));
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const { writeFileAtomic } = await import('../../runtime/data/atomic-write.js');
  writeFileAtomic(file, Buffer.from(`${JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v), 2)}\n`));
}

/** Runs a command body, turning user errors into diagnostics and exit codes. */
export async function guarded(output: Output, body: () => Promise<number>): Promise<number> {
  const { CommandFailure } = await import('../session.js');
  try {
    return await body();
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    if (error instanceof UsageError) throw error;
    const name = (error as Error).name;
    const message = (error as Error).message;
    if (name === 'DataError') {
      output.err(`error CNN8005: ${message}`);
      return EXIT.inputErrors;
    }
    if (name === 'VizError' || name === 'EngineError' || name === 'LoweringError') {
      output.err(`error CNN8007: ${message}`);
      const hint = (error as { hint?: string }).hint;
      if (hint) output.err(`  hint: ${hint}`);
      return EXIT.inputErrors;
    }
    throw error;
  }
}

function sampleName(loaded: LoadedSamples, i: number): string {
  const index = loaded.indices[i];
  const label = loaded.labels[i];
  const parts = [index !== undefined ? `#${index}` : `sample ${i}`];
  if (label !== undefined) parts.push(`label ${loaded.classNames?.[label] ?? label}`);
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------------------------------------------

export interface FiltersCommandOptions extends CommonVizOptions {
  readonly layer?: string;
  readonly maxFilters?: number;
  readonly maxChannels?: number;
}

export async function runVizFilters(file: string, options: FiltersCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    const { loadGraph, loadWeightsFor } = await import('../session.js');
    const graph = loadGraph(file, options.elaborate, output);
    const weights = loadWeightsFor(graph, options.weights, output, { seed: options.seed ?? 0 });
    if (!options.weights) output.err('note: no --weights given: showing the untrained (initialised) model');
    const { renderFilters } = await import('../../runtime/viz/filters.js');
    const picture = renderFilters(graph, weights, {
      ...(options.layer !== undefined ? { layer: options.layer } : {}),
      ...(options.maxFilters !== undefined ? { maxFilters: options.maxFilters } : {}),
      ...(options.maxChannels !== undefined ? { maxChannels: options.maxChannels } : {}),
    });
    ensureDirectory(options.out);
    const png = path.join(options.out, 'filters.png');
    await writePng(png, picture.raster);
    await writeJson(path.join(options.out, 'filters.json'), { model: graph.name, layer: picture.layer, shape: picture.shape, firstLayer: picture.firstLayer, filtersShown: picture.filtersShown, channelsShown: picture.channelsShown, notes: picture.notes, width: picture.raster.width, height: picture.raster.height });
    for (const note of picture.notes) output.err(`note: ${note}`);
    output.out(`${picture.layer}: kernels [${picture.shape.join(', ')}]${picture.firstLayer ? ' (first layer)' : ''}`);
    output.out(`wrote ${png} (${picture.raster.width}×${picture.raster.height}) and ${path.join(options.out, 'filters.json')}`);
    return EXIT.ok;
  });
}

export interface MaximizeCommandOptions extends CommonVizOptions {
  readonly layer?: string;
  readonly channel?: readonly number[];
  readonly classIndex?: readonly number[];
  readonly steps?: number;
  readonly lr?: number;
  readonly tv?: number;
  readonly l2?: number;
  readonly jitter?: number;
  readonly scale?: number;
  readonly rotate?: number;
  readonly blur?: number;
  readonly range?: readonly [number, number] | null;
}

export async function runVizMaximize(file: string, options: MaximizeCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    if (options.channel && options.classIndex) throw new UsageError('give --channel or --class, not both');
    if (!options.layer && !options.classIndex) throw new UsageError('say what to maximise: --layer NAME [--channel C] or --class K');
    const session = await openSession(file, options, output);
    const { maximizeActivation } = await import('../../runtime/viz/maximize.js');
    const { maximizePicture } = await import('../../runtime/viz/pictures.js');
    const targets = options.classIndex ? options.classIndex.map((k) => ({ classIndex: k })) : (options.channel ?? [0]).map((c) => ({ channel: c }));
    const range = options.range === undefined ? ([0, 1] as const) : options.range;
    const results = [];
    for (const target of targets) {
      const result = await maximizeActivation(session.engine, {
        ...target,
        ...(options.layer !== undefined ? { layer: options.layer } : {}),
        ...(options.steps !== undefined ? { steps: options.steps } : {}),
        ...(options.lr !== undefined ? { learningRate: options.lr } : {}),
        ...(options.tv !== undefined ? { tv: options.tv } : {}),
        ...(options.l2 !== undefined ? { l2: options.l2 } : {}),
        ...(options.blur !== undefined ? { blurSigma: options.blur } : {}),
        warp: {
          ...(options.jitter !== undefined ? { jitter: options.jitter } : {}),
          ...(options.scale !== undefined ? { scale: options.scale } : {}),
          ...(options.rotate !== undefined ? { rotation: options.rotate } : {}),
        },
        seed: options.seed ?? 0,
        range,
      });
      const ratio = result.start > 0 ? ` (×${(result.end / result.start).toPrecision(3)})` : '';
      output.out(`${result.target}: ${result.start.toPrecision(4)} at the starting noise → ${result.end.toPrecision(4)}${ratio}`);
      for (const note of result.notes.slice(0, -1)) output.err(`note: ${note}`);
      results.push(result);
    }
    session.engine.dispose();
    ensureDirectory(options.out);
    const png = path.join(options.out, 'maximize.png');
    await writePng(png, maximizePicture(results, range ?? undefined));
    const { writeFloat32Npy } = await import('../../runtime/data/npy.js');
    const dims = results[0]!.sample.dims;
    const stackedData = new Float32Array(results.length * results[0]!.sample.data.length);
    results.forEach((r, i) => stackedData.set(r.sample.data, i * r.sample.data.length));
    const npy = path.join(options.out, 'maximize.npy');
    writeFloat32Npy(npy, [results.length, ...dims], stackedData);
    await writeJson(path.join(options.out, 'maximize.json'), {
      model: session.graph.name,
      seed: options.seed ?? 0,
      range,
      results: results.map((r) => ({ layer: r.layer, target: r.target, start: r.start, end: r.end, ratio: r.start > 0 ? r.end / r.start : null, history: r.history })),
    });
    output.out(`wrote ${png}, ${npy} and ${path.join(options.out, 'maximize.json')}`);
    return EXIT.ok;
  });
}

export interface GradCamCommandOptions extends CommonVizOptions, SampleFlags {
  readonly layer?: readonly string[];
  readonly classIndex?: number;
  readonly method: CamMethodChoice;
  /** 'zeros' or a .npy file: weigh activations relative to this reference input. */
  readonly baseline?: string;
}

export async function runVizGradCam(file: string, options: GradCamCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    const session = await openSession(file, options, output);
    const loaded = (await loadSamples(session.graph, options, output, { count: 4 }))!;
    let baseline: Sample | undefined;
    if (options.baseline === 'zeros') baseline = { data: new Float32Array(loaded.samples[0]!.data.length), dims: loaded.samples[0]!.dims };
    else if (options.baseline) {
      const { readInput } = await import('./run.js');
      const reference = readInput(options.baseline, session.graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : undefined)));
      baseline = { data: reference.data.slice(0, loaded.samples[0]!.data.length), dims: reference.dims.slice(1) };
    }
    const { gradCam, foregroundBox, heatFractionInside } = await import('../../runtime/viz/gradcam.js');
    const { gradCamPictures } = await import('../../runtime/viz/pictures.js');
    const { stacked } = await import('../../runtime/viz/raster.js');
    const { rangeOf } = await import('../../runtime/viz/render.js');
    ensureDirectory(options.out);
    const panels = [];
    const records = [];
    let methodUsed: string | undefined;
    for (const [i, sample] of loaded.samples.entries()) {
      const result = await gradCam(session.engine, sample, {
        method: options.method,
        ...(options.layer && options.layer.length > 0 ? { layers: options.layer } : {}),
        ...(options.classIndex !== undefined ? { classIndex: options.classIndex } : {}),
        ...(baseline ? { baseline } : {}),
      });
      if (i === 0) for (const note of result.notes) output.err(`note: ${note}`);
      methodUsed = result.method;
      const name = (k: number) => loaded.classNames?.[k] ?? String(k);
      const title = `${sampleName(loaded, i)} cam ${name(result.classIndex)} p ${result.probabilities[result.classIndex]!.toFixed(2)}`;
      const range = rangeOf(sample.data);
      const pictures = gradCamPictures(sample, result, title, [Math.min(0, range[0]), Math.max(1, range[1])]);
      const heatmapFile = path.join(options.out, `gradcam-${i}-heatmap.png`);
      const overlayFile = path.join(options.out, `gradcam-${i}-overlay.png`);
      await writePng(heatmapFile, pictures.heatmap);
      await writePng(overlayFile, pictures.overlay);
      panels.push(pictures.panel);
      // the share of the map on the object, for images whose background is dark (data sets, PNGs)
      const imageLike = sample.dims.length === 3 && (options.data !== undefined || options.input?.toLowerCase().endsWith('.png') === true);
      const box = imageLike ? foregroundBox(sample, range[0] + 0.1 * (range[1] - range[0])) : undefined;
      const inBox = box ? heatFractionInside(result.heat, result.spatial, box) : undefined;
      records.push({
        sample: i,
        index: loaded.indices[i] ?? null,
        label: loaded.labels[i] ?? null,
        predicted: result.predicted,
        classIndex: result.classIndex,
        probability: result.probabilities[result.classIndex],
        layers: result.layers.map((l) => ({ layer: l.layer, dims: l.dims, alignedByReceptiveField: l.aligned })),
        heatmap: path.basename(heatmapFile),
        overlay: path.basename(overlayFile),
        ...(inBox !== undefined ? { foregroundBox: box, heatInForegroundBox: inBox } : {}),
      });
      output.out(`${sampleName(loaded, i)}: predicted ${name(result.predicted)} (p ${result.probabilities[result.predicted]!.toFixed(3)}), map for ${name(result.classIndex)}${inBox !== undefined ? `, ${(inBox * 100).toFixed(0)}% of the heat inside the foreground box` : ''}`);
    }
    session.engine.dispose();
    const png = path.join(options.out, 'gradcam.png');
    await writePng(png, stacked(panels, 6));
    await writeJson(path.join(options.out, 'gradcam.json'), { model: session.graph.name, method: methodUsed ?? options.method, baseline: options.baseline ?? null, source: loaded.source, samples: records });
    output.out(`wrote ${png}, ${loaded.samples.length * 2} heatmap/overlay PNGs and ${path.join(options.out, 'gradcam.json')}`);
    return EXIT.ok;
  });
}

export interface InvertCommandOptions extends CommonVizOptions, SampleFlags {
  readonly layer: readonly string[];
  readonly steps?: number;
  readonly lr?: number;
  readonly tv?: number;
  readonly l2?: number;
  readonly range?: readonly [number, number] | null;
}

export async function runVizInvert(file: string, options: InvertCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    if (options.layer.length === 0) throw new UsageError('say which layers to invert: --layer NAME (repeatable)');
    const session = await openSession(file, options, output);
    const loaded = (await loadSamples(session.graph, options, output, { count: 1 }))!;
    const sample = loaded.samples[0]!;
    const { invertFeatures } = await import('../../runtime/viz/invert.js');
    const { inversionPicture } = await import('../../runtime/viz/pictures.js');
    const { rangeOf } = await import('../../runtime/viz/render.js');
    const range = options.range === undefined ? rangeOf(sample.data) : options.range;
    const inversions = await invertFeatures(session.engine, sample, options.layer, {
      seed: options.seed ?? 0,
      range,
      ...(options.steps !== undefined ? { steps: options.steps } : {}),
      ...(options.lr !== undefined ? { learningRate: options.lr } : {}),
      ...(options.tv !== undefined ? { tv: options.tv } : {}),
      ...(options.l2 !== undefined ? { l2: options.l2 } : {}),
    });
    session.engine.dispose();
    for (const inv of inversions) output.out(`${inv.layer}: relative error ‖x − x₀‖/‖x₀‖ = ${inv.relativeError.toFixed(4)}, feature loss ${inv.featureLoss.toExponential(2)}`);
    ensureDirectory(options.out);
    const png = path.join(options.out, 'invert.png');
    await writePng(png, inversionPicture(sample, inversions, range ?? undefined));
    const { writeFloat32Npy } = await import('../../runtime/data/npy.js');
    const data = new Float32Array(inversions.length * sample.data.length);
    inversions.forEach((inv, i) => data.set(inv.reconstruction.data, i * sample.data.length));
    const npy = path.join(options.out, 'invert.npy');
    writeFloat32Npy(npy, [inversions.length, ...sample.dims], data);
    await writeJson(path.join(options.out, 'invert.json'), { model: session.graph.name, sample: sampleName(loaded, 0), range, layers: inversions.map((inv) => ({ layer: inv.layer, relativeError: inv.relativeError, featureLoss: inv.featureLoss })) });
    output.out(`wrote ${png}, ${npy} and ${path.join(options.out, 'invert.json')}`);
    return EXIT.ok;
  });
}

export interface RfCommandOptions extends CommonVizOptions, SampleFlags {
  readonly layer: string;
  readonly unit?: readonly number[];
}

export async function runVizRf(file: string, options: RfCommandOptions, output: Output): Promise<number> {
  return guarded(output, async () => {
    const session = await openSession(file, options, output);
    const loaded = await loadSamples(session.graph, options, output, { count: 1, optional: true });
    const { receptiveFieldMap } = await import('../../runtime/viz/receptive.js');
    const { receptivePicture } = await import('../../runtime/viz/pictures.js');
    const map = await receptiveFieldMap(session.engine, loaded?.samples ?? [], { layer: options.layer, seed: options.seed ?? 0, ...(options.unit ? { unit: options.unit } : {}) });
    session.engine.dispose();
    for (const note of map.notes) output.err(`note: ${note}`);
    const clip = (a: number, v: number) => Math.max(0, Math.min(map.spatial[a]! - 1, v));
    const axes = map.size.map((_, a) => a);
    output.out(`${map.layer} unit [${map.unit.join(', ')}] of [${map.layerDims.join(', ')}]: theoretical field ${map.size.join('×')} at [${axes.map((a) => `${map.theoretical.start[a]}..${map.theoretical.end[a]}`).join(', ')}] (stride ${map.stride.join('×')})`);
    if (map.effective) output.out(`effective field (95% of |∂y/∂x|): [${axes.map((a) => `${map.effective!.start[a]}..${map.effective!.end[a]}`).join(', ')}], ${axes.map((a) => map.effective!.end[a]! - map.effective!.start[a]! + 1).join('×')} of ${axes.map((a) => clip(a, map.theoretical.end[a]!) - clip(a, map.theoretical.start[a]!) + 1).join('×')} in-image theoretical; ${(map.massInside * 100).toFixed(2)}% of the gradient inside the theoretical box`);
    ensureDirectory(options.out);
    const png = path.join(options.out, 'rf.png');
    await writePng(png, receptivePicture(loaded?.samples[0], map));
    await writeJson(path.join(options.out, 'rf.json'), {
      model: session.graph.name,
      layer: map.layer,
      unit: map.unit,
      layerDims: map.layerDims,
      inputDims: map.spatial,
      theoretical: { size: map.size, stride: map.stride, start: map.theoretical.start, end: map.theoretical.end },
      effective: map.effective ?? null,
      gradientMassInsideTheoretical: map.massInside,
      inputs: map.inputs,
    });
    output.out(`wrote ${png} and ${path.join(options.out, 'rf.json')}`);
    return EXIT.ok;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// registration (called from main.ts)
// ---------------------------------------------------------------------------------------------------------------

interface SpecFlagsLike {
  param: string[];
  inputShape: string[];
  root?: string;
  allowOutsideRoot?: boolean;
}

type Flags = SpecFlagsLike & {
  out: string;
  weights?: string;
  backend: BackendFlag;
  seed?: number;
} & Record<string, unknown>;

export function registerVizCommands(program: Command, context: CommandContext): void {
  const { output, setStatus } = context;
  const elaborate = (flags: Flags) => (context.elaborateOptions as (f: SpecFlagsLike) => ElaborateOptions)(flags);
  const common = (flags: Flags): CommonVizOptions => ({ out: flags.out, backend: flags.backend, elaborate: elaborate(flags), ...(flags.weights ? { weights: flags.weights } : {}), ...(flags.seed !== undefined ? { seed: flags.seed } : {}) });
  /** `{ key: value }` when the flag was given, else nothing (the runner's default applies). */
  const given = <T>(flags: Flags, key: string) => (flags[key] !== undefined ? { [key]: flags[key] as T } : {});
  const samples = (flags: Flags): SampleFlags => ({
    ...(flags['input'] ? { input: flags['input'] as string } : {}),
    ...(flags['data'] ? { data: flags['data'] as string } : {}),
    ...(flags['index'] ? { index: flags['index'] as number[] } : {}),
    ...(flags['count'] ? { count: flags['count'] as number } : {}),
  });
  const base = (command: Command) =>
    context
      .specOptions(command)
      .requiredOption('-o, --out <dir>', 'output directory')
      .option('--weights <file>', 'weights: a convspec checkpoint, safetensors file, or ONNX file (default: untrained)')
      .option('--seed <n>', 'random seed (noise, warps)', parseNumber('--seed', { integer: true, min: 0 }))
      .addOption(context.backendOption());
  const withSamples = (command: Command) =>
    command
      .option('--input <file>', 'input: .npy (with or without the batch axis) or .png (2D image models)')
      .option('--data <path>', "test split of a data set ('fashion-mnist', an IDX / npy / PNG folder)")
      .option('--index <list>', 'samples of --input or --data: 3, 0,2,5 or 0-7', parseIndexList('--index'))
      .option('--count <n>', 'the first n samples of --data', parseNumber('--count', { integer: true, min: 1 }));
  const viz = program.command('viz').description('pictures of what a model learned: filters, maximize, gradcam, invert, rf');

  base(
    viz
      .command('filters')
      .description('kernels as pictures: first layer in input space, deeper layers per channel, 1D as plots, 3D as slices')
      .argument('<spec>', 'spec file')
      .option('--layer <name>', 'convolution layer (default: the first)')
      .option('--max-filters <n>', 'show at most n filters', parseNumber('--max-filters', { integer: true, min: 1 }))
      .option('--max-channels <n>', 'show at most n input channels per filter', parseNumber('--max-channels', { integer: true, min: 1 })),
  ).action(async (file: string, flags: Flags) => {
    setStatus(
      await runVizFilters(
        file,
        {
          ...common(flags),
          ...(flags['layer'] ? { layer: flags['layer'] as string } : {}),
          ...(flags['maxFilters'] ? { maxFilters: flags['maxFilters'] as number } : {}),
          ...(flags['maxChannels'] ? { maxChannels: flags['maxChannels'] as number } : {}),
        },
        output,
      ),
    );
  });

  base(
    viz
      .command('maximize')
      .description('activation maximisation: an input that excites a channel or class (L2, total variation, jitter, scale, rotation)')
      .argument('<spec>', 'spec file')
      .option('--layer <name>', 'layer whose channel to maximise')
      .option('--channel <list>', 'channels (units): 3, 0,2,5 or 0-7 (default 0)', parseIndexList('--channel'))
      .option('--class <list>', 'class scores to maximise: 3, 0,2,5 or 0-9', parseIndexList('--class'))
      .option('--steps <n>', 'gradient steps (default 256)', parseNumber('--steps', { integer: true, min: 0 }))
      .option('--lr <x>', 'Adam step size in input units (default 0.05)', parseNumber('--lr', { positive: true }))
      .option('--tv <x>', 'total-variation weight (default 0.25)', parseNumber('--tv', { min: 0 }))
      .option('--l2 <x>', 'L2-decay weight (default 0.05)', parseNumber('--l2', { min: 0 }))
      .option('--jitter <n>', 'largest random shift in samples (default 4% of the smallest side)', parseNumber('--jitter', { integer: true, min: 0 }))
      .option('--scale <x>', 'random scale range ±x (default 0.05)', parseNumber('--scale', { min: 0 }))
      .option('--rotate <deg>', 'random rotation range ±deg (default 5; 2D and 3D)', parseNumber('--rotate', { min: 0 }))
      .option('--blur <sigma>', 'Gaussian blur every 4 steps (default off)', parseNumber('--blur', { min: 0 }))
      .option('--range <lo,hi>', "data range to clip to (default 0,1; 'none')", parseRange),
  ).action(async (file: string, flags: Flags) => {
    setStatus(
      await runVizMaximize(
        file,
        {
          ...common(flags),
          ...given<string>(flags, 'layer'),
          ...given<number[]>(flags, 'channel'),
          ...(flags['class'] !== undefined ? { classIndex: flags['class'] as number[] } : {}),
          ...given<number>(flags, 'steps'),
          ...given<number>(flags, 'lr'),
          ...given<number>(flags, 'tv'),
          ...given<number>(flags, 'l2'),
          ...given<number>(flags, 'jitter'),
          ...given<number>(flags, 'scale'),
          ...given<number>(flags, 'rotate'),
          ...given<number>(flags, 'blur'),
          ...given<readonly [number, number] | null>(flags, 'range'),
        },
        output,
      ),
    );
  });

  withSamples(
    base(
      viz
        .command('gradcam')
        .description('Grad-CAM heatmaps and overlays for 1D, 2D and 3D models')
        .argument('<spec>', 'spec file')
        .option('--class <k>', 'class to explain (default: the predicted one)', parseNumber('--class', { integer: true, min: 0 }))
        .option('--layer <name>', 'feature-map layer (repeatable; default: the maps that feed the classifier)', collect, [])
        .addOption(new Option('--method <method>', 'weighting of the channels').choices(['auto', 'gradcam', 'gradcam++', 'hirescam']).default('auto'))
        .option('--baseline <zeros|file.npy>', 'weigh activations relative to a reference input (an empty image: zeros)'),
    ),
  ).action(async (file: string, flags: Flags) => {
    setStatus(
      await runVizGradCam(
        file,
        {
          ...common(flags),
          ...samples(flags),
          layer: flags['layer'] as string[],
          method: flags['method'] as CamMethodChoice,
          ...(flags['class'] !== undefined ? { classIndex: flags['class'] as number } : {}),
          ...(flags['baseline'] !== undefined ? { baseline: flags['baseline'] as string } : {}),
        },
        output,
      ),
    );
  });

  withSamples(
    base(
      viz
        .command('invert')
        .description('feature inversion with a total-variation prior: what each layer keeps of an input')
        .argument('<spec>', 'spec file')
        .option('--layer <name>', 'layer to invert (repeatable: one reconstruction per layer)', collect, [])
        .option('--steps <n>', 'gradient steps (default 300)', parseNumber('--steps', { integer: true, min: 0 }))
        .option('--lr <x>', 'Adam step size (default 0.05)', parseNumber('--lr', { positive: true }))
        .option('--tv <x>', 'total-variation weight (default 0.05)', parseNumber('--tv', { min: 0 }))
        .option('--l2 <x>', 'L2-decay weight (default 0.001)', parseNumber('--l2', { min: 0 }))
        .option('--range <lo,hi>', "range to project onto (default: the input's min and max; 'none')", parseRange),
    ),
  ).action(async (file: string, flags: Flags) => {
    setStatus(
      await runVizInvert(
        file,
        {
          ...common(flags),
          ...samples(flags),
          layer: flags['layer'] as string[],
          ...given<number>(flags, 'steps'),
          ...given<number>(flags, 'lr'),
          ...given<number>(flags, 'tv'),
          ...given<number>(flags, 'l2'),
          ...given<readonly [number, number] | null>(flags, 'range'),
        },
        output,
      ),
    );
  });

  withSamples(
    base(
      viz
        .command('rf')
        .description('theoretical receptive field of a unit drawn on the input, and its effective field from gradients')
        .argument('<spec>', 'spec file')
        .requiredOption('--layer <name>', 'layer of the unit')
        .option('--unit <i,j,…>', 'unit position on the layer grid (default: the centre)', parseIndexList('--unit')),
    ),
  ).action(async (file: string, flags: Flags) => {
    setStatus(await runVizRf(file, { ...common(flags), ...samples(flags), layer: flags['layer'] as string, ...(flags['unit'] ? { unit: flags['unit'] as number[] } : {}) }, output));
  });
}
