/**
 * The `convspec` command: argument parsing with commander, then one function per subcommand.
 * Subcommands that need heavy modules (tfjs, ONNX Runtime) import them lazily so `check` starts fast.
 *
 * Exit codes (CLI.md): 0 success, 1 input errors, 2 usage, 3 internal failure. No stack trace is printed for
 * bad input; an internal failure prints its message and asks for a report.
 */
import { Command, CommanderError, Option } from 'commander';
import type { ElaborateOptions } from '../elaborate/elaborate.js';
import { EXIT, processOutput, UsageError, type Output } from './output.js';
import { registerPruneCommand } from './commands/prune.js';
import { registerQuantizeCommand } from './commands/quantize.js';
import { registerReportCommand } from './commands/report.js';
import { registerVizCommands } from './commands/viz.js';

const VERSION = '0.1.0';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--param alpha=0.5` → { alpha: "0.5" }. */
export function parseParams(entries: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const entry of entries) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(entry);
    if (!match) throw new UsageError(`--param expects NAME=VALUE, found '${entry}'`);
    params[match[1]!] = match[2]!;
  }
  return params;
}

/** `--input-shape image=1,3,160,160` (entries may be symbols such as N). */
export function parseInputShapes(entries: readonly string[]): Record<string, Array<number | string>> {
  const shapes: Record<string, Array<number | string>> = {};
  for (const entry of entries) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(entry);
    if (!match) throw new UsageError(`--input-shape expects NAME=D,D,…, found '${entry}'`);
    shapes[match[1]!] = match[2]!.split(',').map((d) => {
      const trimmed = d.trim();
      if (/^\d+$/.test(trimmed) && Number(trimmed) >= 1) return Number(trimmed);
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(trimmed)) return trimmed;
      throw new UsageError(`--input-shape: '${trimmed}' is neither a positive integer nor a symbol`);
    });
  }
  return shapes;
}

/**
 * `--map ours=theirs` (repeatable) → a weights name mapping; names, or prefixes ending in '.' (`--map backbone.=`
 * strips a prefix, `--map =model.` adds one).
 */
export function parseWeightMap(entries: readonly string[]): Record<string, string> {
  const mapping: Record<string, string> = {};
  for (const entry of entries) {
    const index = entry.indexOf('=');
    if (index < 0) throw new UsageError(`--map expects OURS=THEIRS (names, or prefixes ending in '.'), found '${entry}'`);
    mapping[entry.slice(0, index)] = entry.slice(index + 1);
  }
  return mapping;
}

/** `--lr-scale stem..stage3=0.1` → { target, scale }. */
function parseLearningRateScale(entry: string): { target: string; scale: number } {
  const index = entry.lastIndexOf('=');
  const scale = Number(entry.slice(index + 1));
  if (index <= 0 || !Number.isFinite(scale) || scale <= 0) throw new UsageError(`--lr-scale expects TARGET=X with X > 0, found '${entry}'`);
  return { target: entry.slice(0, index), scale };
}

interface WeightMapFlags {
  map: string[];
  mapFile?: string;
}

function weightMapOptions(command: Command): Command {
  return command
    .option('--map <ours=theirs>', "rename weights: our name (or prefix ending in '.') = the file's (repeatable)", collect, [])
    .option('--map-file <file.json>', 'rename weights: a JSON object { "our name": "file name" }');
}

function weightNames(flags: WeightMapFlags): { weightNames?: { mapping?: Record<string, string>; mappingFile?: string } } {
  const mapping = parseWeightMap(flags.map);
  if (Object.keys(mapping).length === 0 && flags.mapFile === undefined) return {};
  return { weightNames: { ...(Object.keys(mapping).length > 0 ? { mapping } : {}), ...(flags.mapFile !== undefined ? { mappingFile: flags.mapFile } : {}) } };
}

interface SpecFlags {
  param: string[];
  inputShape: string[];
  root?: string;
  allowOutsideRoot?: boolean;
}

function elaborateOptions(flags: SpecFlags): ElaborateOptions {
  return {
    params: parseParams(flags.param),
    inputShapes: parseInputShapes(flags.inputShape),
    ...(flags.root ? { root: flags.root } : {}),
    ...(flags.allowOutsideRoot ? { allowOutsideRoot: true } : {}),
  };
}

function specOptions(command: Command): Command {
  return command
    .option('--param <name=value>', 'override a model parameter (repeatable)', collect, [])
    .option('--input-shape <name=d,d,…>', 'override an input shape (repeatable)', collect, [])
    .option('--root <dir>', 'project root that imports may not leave (default: the spec’s directory)')
    .option('--allow-outside-root', 'allow imports outside the project root');
}

export function buildProgram(output: Output, setStatus: (code: number) => void): Command {
  const program = new Command('convspec')
    .description('A compiler and runtime for convolutional networks written as text.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) })
    .exitOverride();

  specOptions(
    program
      .command('check')
      .description('parse, elaborate, infer shapes and receptive fields, evaluate asserts')
      .argument('<spec...>', 'spec files (.cnn or .json)')
      .addOption(new Option('--format <format>', 'diagnostic format').choices(['text', 'json', 'github']).default('text')),
  ).action(async (files: string[], flags: SpecFlags & { format: 'text' | 'json' | 'github' }) => {
    const { runCheck } = await import('./commands/check.js');
    setStatus(runCheck(files, { format: flags.format, elaborate: elaborateOptions(flags) }, output));
  });

  specOptions(
    program
      .command('summary')
      .description('per-layer table: name, op, output shape, params, MACs, FLOPs, receptive field')
      .argument('<spec>', 'spec file')
      .option('--json', 'print JSON (the format of CLI.md)'),
  ).action(async (file: string, flags: SpecFlags & { json?: boolean }) => {
    const { runSummary } = await import('./commands/summary.js');
    setStatus(runSummary(file, { json: Boolean(flags.json), elaborate: elaborateOptions(flags) }, output));
  });

  program
    .command('fmt')
    .description('canonical formatting, in place (or check only)')
    .argument('<spec...>', 'spec files')
    .option('--check', 'report files that would change, without writing (exit 1 if any)')
    .action(async (files: string[], flags: { check?: boolean }) => {
      const { runFmt } = await import('./commands/fmt.js');
      setStatus(runFmt(files, { check: Boolean(flags.check) }, output));
    });

  specOptions(
    program
      .command('compile')
      .description('compile to an ONNX file or a TensorFlow.js graph model')
      .argument('<spec>', 'spec file')
      .addOption(new Option('--target <target>', 'output format').choices(['onnx', 'tfjs']).default('onnx'))
      .requiredOption('-o, --out <dir>', 'output directory')
      .option('--weights <file>', 'weights: a convspec checkpoint, safetensors file, or ONNX file')
      .option('--passes <list>', 'comma-separated passes to run (default: inference clean-ups and BN folding)')
      .option('--disable-pass <name>', 'skip a pass of the list (repeatable)', collect, [])
      .option('--print-after <pass>', "print the IR after a pass, or 'all' (repeatable)", collect, [])
      .option('--time-passes', 'print how long each pass took')
      .option('--verbose', 'list every rewrite the passes applied')
      .option('--value-info', "onnx target: declare every intermediate tensor's shape (value_info)")
      .option('--opset <n>', 'ONNX opset (13–21)', (v) => {
        if (!/^\d+$/.test(v)) throw new UsageError(`--opset expects a number, found '${v}'`);
        return Number(v);
      })
      .addOption(new Option('--quantize-bytes <n>', 'tfjs target: compress weights to 1 or 2 bytes (dequantised at load)').choices(['1', '2'])),
  ).action(
    async (
      file: string,
      flags: SpecFlags & WeightMapFlags & { target: 'onnx' | 'tfjs'; out: string; weights?: string; passes?: string; disablePass: string[]; printAfter: string[]; timePasses?: boolean; verbose?: boolean; valueInfo?: boolean; opset?: number; quantizeBytes?: '1' | '2' },
    ) => {
      const { runCompile, DEFAULT_INFERENCE_PASSES } = await import('./commands/compile.js');
      setStatus(
        await runCompile(
          file,
          {
            target: flags.target,
            out: flags.out,
            passes: flags.passes ?? DEFAULT_INFERENCE_PASSES,
            disablePass: flags.disablePass,
            printAfter: flags.printAfter,
            timePasses: Boolean(flags.timePasses),
            verbose: Boolean(flags.verbose),
            valueInfo: Boolean(flags.valueInfo),
            ...(flags.weights ? { weights: flags.weights } : {}),
            ...weightNames(flags),
            ...(flags.opset !== undefined ? { opset: flags.opset } : {}),
            ...(flags.quantizeBytes ? { quantizeBytes: Number(flags.quantizeBytes) as 1 | 2 } : {}),
            elaborate: elaborateOptions(flags),
          },
          output,
        ),
      );
    },
  );

  const backendOption = () => new Option('--backend <backend>', 'tfjs backend').choices(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']).default('auto');
  const positiveInteger = (flag: string) => (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} expects a positive integer, found '${v}'`);
    return Number(v);
  };
  const positiveNumber = (flag: string) => (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} expects a positive number, found '${v}'`);
    return n;
  };

  specOptions(
    program
      .command('train')
      .description('train (weights and optimizer on the tfjs engine; forward and backward on ONNX Runtime or the tfjs tape), with atomic checkpoints every epoch')
      .argument('<spec>', 'spec file')
      .requiredOption('-o, --out <dir>', 'output directory (checkpoint, weights, history)')
      .option('--data <path>', "data: a folder of IDX files, x.npy + y.npy, PNG class folders, or 'fashion-mnist'")
      .option('--epochs <n>', 'epochs (overrides the spec)', positiveInteger('--epochs'))
      .option('--batch <n>', 'batch size (overrides the spec)', positiveInteger('--batch'))
      .option('--lr <x>', 'learning rate (overrides the spec)', positiveNumber('--lr'))
      .option('--seed <n>', 'random seed', (v) => Number(v))
      .option('--weights <file>', 'initial weights (partial loading: missing tensors keep their initial values)')
      .option('--resume', 'continue from <out>/checkpoint.safetensors')
      .option('--lr-scale <target=x>', 'learning-rate multiplier of a layer group: name, scope, range a..b or glob (repeatable)', collect, [])
      .addOption(backendOption())
      .addOption(new Option('--engine <engine>', 'where forward and backward passes run: ONNX Runtime (ort), the tfjs tape, or auto (ort on a CPU backend when it can express the model)').choices(['auto', 'tfjs', 'ort']).default('auto'))
      .option('--threads <n>', 'CPU threads of the wasm backend and of ONNX Runtime (default: CONVSPEC_WASM_THREADS, else 1 for wasm and every CPU for ONNX Runtime)', positiveInteger('--threads')),
  ).action(async (file: string, flags: SpecFlags & WeightMapFlags & { lrScale: string[]; out: string; data?: string; epochs?: number; batch?: number; lr?: number; seed?: number; weights?: string; resume?: boolean; backend: 'auto'; engine: 'auto' | 'tfjs' | 'ort'; threads?: number }) => {
    const { runTrain } = await import('./commands/train.js');
    setStatus(
      await runTrain(
        file,
        {
          out: flags.out,
          backend: flags.backend,
          engine: flags.engine,
          ...(flags.threads ? { threads: flags.threads } : {}),
          resume: Boolean(flags.resume),
          ...(flags.data ? { data: flags.data } : {}),
          ...(flags.epochs ? { epochs: flags.epochs } : {}),
          ...(flags.batch ? { batch: flags.batch } : {}),
          ...(flags.lr ? { lr: flags.lr } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          ...(flags.weights ? { weights: flags.weights } : {}),
          ...weightNames(flags),
          ...(flags.lrScale.length > 0 ? { learningRateScales: flags.lrScale.map(parseLearningRateScale) } : {}),
          elaborate: elaborateOptions(flags),
        },
        output,
      ),
    );
  });

  specOptions(
    program
      .command('eval')
      .description('loss and accuracy on the test split')
      .argument('<spec>', 'spec file')
      .requiredOption('--weights <file>', 'weights (checkpoint, safetensors or ONNX)')
      .option('--data <path>', 'data (default: the spec’s)')
      .option('--json', 'print JSON')
      .addOption(backendOption())
      .addOption(new Option('--engine <engine>', 'where the forward passes run: the tfjs engine, or ONNX Runtime on the model exported with these weights').choices(['tfjs', 'ort']).default('tfjs'))
      .option('--threads <n>', "ONNX Runtime's threads with --engine ort (default: CONVSPEC_WASM_THREADS, else every CPU)", positiveInteger('--threads')),
  ).action(async (file: string, flags: SpecFlags & WeightMapFlags & { weights: string; data?: string; json?: boolean; backend: 'auto'; engine: 'tfjs' | 'ort'; threads?: number }) => {
    const { runEval } = await import('./commands/eval.js');
    setStatus(await runEval(file, { weights: flags.weights, ...weightNames(flags), backend: flags.backend, engine: flags.engine, ...(flags.threads ? { threads: flags.threads } : {}), json: Boolean(flags.json), ...(flags.data ? { data: flags.data } : {}), elaborate: elaborateOptions(flags) }, output));
  });

  specOptions(
    program
      .command('run')
      .description('inference on a .npy array or a PNG image')
      .argument('<model>', 'spec file or .onnx model')
      .requiredOption('--input <file>', 'input: .npy or .png')
      .option('--output <file>', 'write the first output as float32 .npy')
      .option('--weights <file>', 'weights for a spec')
      .addOption(new Option('--engine <engine>', 'engine for a spec').choices(['tfjs', 'ort']).default('tfjs'))
      .option('--top <k>', 'classes to print', positiveInteger('--top'), 5)
      .addOption(backendOption()),
  ).action(async (model: string, flags: SpecFlags & WeightMapFlags & { input: string; output?: string; weights?: string; engine: 'tfjs' | 'ort'; top: number; backend: 'auto' }) => {
    const { runRun } = await import('./commands/run.js');
    setStatus(
      await runRun(
        model,
        { input: flags.input, engine: flags.engine, backend: flags.backend, top: flags.top, ...(flags.output ? { output: flags.output } : {}), ...(flags.weights ? { weights: flags.weights } : {}), ...weightNames(flags), elaborate: elaborateOptions(flags) },
        output,
      ),
    );
  });

  program
    .command('import')
    .description('ONNX model → a spec (DIR/<Model>.cnn) and its weights (DIR/<Model>.safetensors)')
    .argument('<model>', 'ONNX file')
    .requiredOption('-o, --out <dir>', 'output directory')
    .option('--name <name>', 'model name (default: the ONNX graph’s name, else the file name)')
    .option('--flat', 'one statement per layer: do not fold repeated structure into blocks')
    .action(async (file: string, flags: { out: string; name?: string; flat?: boolean }) => {
      const { runImport } = await import('./commands/import.js');
      setStatus(await runImport(file, { out: flags.out, flat: Boolean(flags.flat), ...(flags.name !== undefined ? { name: flags.name } : {}) }, output));
    });

  const lent = { output, setStatus, specOptions, elaborateOptions, backendOption };
  registerVizCommands(program, lent);
  registerReportCommand(program, lent);

  // Weights files name tensors their own way: every command that reads one takes the same name mapping.
  for (const command of program.commands) if (['compile', 'train', 'eval', 'run'].includes(command.name())) weightMapOptions(command);

  registerQuantizeCommand(program, { output, setStatus, specOptions, elaborateOptions, backendOption });
  registerPruneCommand(program, { output, setStatus, specOptions, elaborateOptions, backendOption });

  return program;
}

/** Errors the operating system raised for a path (Node's errors carry `syscall` and `path`). */
const FILE_SYSTEM_CODES = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EROFS', 'ENOSPC', 'EDQUOT', 'EEXIST', 'ENAMETOOLONG', 'ELOOP', 'EMFILE', 'ENFILE']);

/** The message of an error about a file the user named: a DataError, or a file-system error from Node. */
function fileSystemProblem(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error.name === 'DataError') return error.message;
  const { code, path: filePath } = error as NodeJS.ErrnoException;
  return code && FILE_SYSTEM_CODES.has(code) && filePath !== undefined ? error.message : undefined;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[], output: Output = processOutput): Promise<number> {
  let status: number = EXIT.ok;
  const program = buildProgram(output, (code) => {
    status = code;
  });
  try {
    await program.parseAsync([...argv]);
    return status;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    if (error instanceof UsageError) {
      output.err(`error: ${error.message}`);
      return EXIT.usage;
    }
    // A file or folder the user named that cannot be read or written (an output folder under a file, no
    // permission, a full disk): the input's problem, not a bug.
    const fileProblem = fileSystemProblem(error);
    if (fileProblem) {
      output.err(`error CNN8008: ${fileProblem}`);
      return EXIT.inputErrors;
    }
    const message = error instanceof Error ? error.message : String(error);
    output.err(`internal error: ${message}\nThis is a bug in convspec. Please report it with the command and spec that triggered it.`);
    if (process.env['CONVSPEC_DEBUG'] && error instanceof Error) output.err(error.stack ?? '');
    return EXIT.internal;
  }
}
