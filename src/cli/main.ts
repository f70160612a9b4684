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

  return program;
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
    const message = error instanceof Error ? error.message : String(error);
    output.err(`internal error: ${message}\nThis is a bug in convspec. Please report it with the command and spec that triggered it.`);
    if (process.env['CONVSPEC_DEBUG'] && error instanceof Error) output.err(error.stack ?? '');
    return EXIT.internal;
  }
}
