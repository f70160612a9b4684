/**
 * Loading spec files: size limits, parsing, and imports resolved relative to the importing file.
 *
 * An import may not leave the project root (the directory of the entry file, or `root`) unless
 * `allowOutsideRoot` is set; cycles are reported at the import that closes them. Each file is parsed once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { parse, type ImportDecl, type ParseResult } from '../parser/index.js';
import { SourceFile, syntheticSpan, type Span } from '../source.js';

/** Specs beyond this size are refused before reading: nothing legitimate comes close. */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface LoadOptions {
  /** Directory that imports may not leave; defaults to the entry file's directory. */
  readonly root?: string;
  readonly allowOutsideRoot?: boolean;
  /** Reads a file (for tests and editors); defaults to the file system. */
  readonly readFile?: (file: string) => string;
  /** Size of a file in bytes, checked before reading it. */
  readonly fileSize?: (file: string) => number;
}

export interface LoadedFile {
  readonly path: string;
  readonly parsed: ParseResult;
  /** Imports resolved to loaded files, in order, with what each import makes visible. */
  readonly imports: ReadonlyArray<{ readonly decl: ImportDecl; readonly file: LoadedFile | undefined }>;
}

export class SpecLoader {
  readonly files = new Map<string, LoadedFile>();
  readonly sources = new Map<string, SourceFile>();
  readonly diagnostics = new DiagnosticBag();
  private readonly loading = new Set<string>();
  readonly root: string;

  constructor(
    entryPath: string,
    private readonly options: LoadOptions = {},
  ) {
    this.root = path.resolve(options.root ?? path.dirname(entryPath));
  }

  private read(file: string): string {
    if (this.options.readFile) return this.options.readFile(file);
    return fs.readFileSync(file, 'utf8');
  }

  private size(file: string): number {
    if (this.options.fileSize) return this.options.fileSize(file);
    if (this.options.readFile) return Buffer.byteLength(this.options.readFile(file));
    return fs.statSync(file).size;
  }

  /** Loads the entry file from text already in hand (an editor buffer, a test string). */
  loadText(displayPath: string, text: string): LoadedFile {
    return this.finish(displayPath, path.resolve(displayPath), text);
  }

  /** Loads a file from disk; undefined (with a diagnostic at `from`) when it cannot be read. */
  loadFile(displayPath: string, from?: Span): LoadedFile | undefined {
    const absolute = path.resolve(displayPath);
    const existing = this.files.get(absolute);
    if (existing) return existing;
    let text: string;
    try {
      const bytes = this.size(absolute);
      if (bytes > MAX_FILE_BYTES) {
        // A file that cannot be shown is still named, at its start, so every diagnostic has a location.
        this.diagnostics.add('fileTooLarge', from ?? syntheticSpan(displayPath), [bytes, MAX_FILE_BYTES]);
        return undefined;
      }
      text = this.read(absolute);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      if (from) this.diagnostics.add('importNotFound', from, [displayPath]);
      else this.diagnostics.add('cannotReadFile', syntheticSpan(displayPath), [displayPath, reason]);
      return undefined;
    }
    return this.finish(displayPath, absolute, text);
  }

  private finish(displayPath: string, absolute: string, text: string): LoadedFile {
    const parsed = parse(text, displayPath);
    this.sources.set(displayPath, parsed.source);
    this.diagnostics.push(...parsed.diagnostics);
    this.loading.add(absolute);
    const imports: Array<{ decl: ImportDecl; file: LoadedFile | undefined }> = [];
    const loaded: LoadedFile = { path: displayPath, parsed, imports };
    this.files.set(absolute, loaded);
    for (const decl of parsed.program.imports) imports.push({ decl, file: this.resolveImport(absolute, displayPath, decl.path.value, decl.path.span) });
    this.loading.delete(absolute);
    return loaded;
  }

  /** Resolves `target` relative to the file at `fromAbsolute`, enforcing the root and detecting cycles. */
  resolveImport(fromAbsolute: string, fromDisplay: string, target: string, span: Span): LoadedFile | undefined {
    const absolute = path.resolve(path.dirname(fromAbsolute), target);
    const relativeToRoot = path.relative(this.root, absolute);
    if (!this.options.allowOutsideRoot && (relativeToRoot.startsWith('..') || path.isAbsolute(relativeToRoot))) {
      this.diagnostics.add('importEscapesRoot', span, [target, displayDirectory(this.root)], 'pass --allow-outside-root to permit it, or --root to widen the project root');
      return undefined;
    }
    if (this.loading.has(absolute)) {
      // `loading` holds the files being loaded, outermost first: the cycle is the part from `absolute` on.
      const chain = [...this.loading];
      const cycle = [...chain.slice(chain.indexOf(absolute)), absolute].map((file) => path.relative(this.root, file) || path.basename(file));
      this.diagnostics.add('importCycle', span, [target, cycle.join(' → ')]);
      return undefined;
    }
    const display = path.join(path.dirname(fromDisplay), target);
    return this.files.get(absolute) ?? this.loadFile(display, span);
  }

  /** A diagnostic list with no duplicates, for reporting. */
  allDiagnostics(extra: readonly Diagnostic[] = []): Diagnostic[] {
    return [...this.diagnostics.items, ...extra];
  }
}

/** A directory as users see it: relative to the working directory when inside it. */
function displayDirectory(directory: string): string {
  const relative = path.relative(process.cwd(), directory);
  if (relative === '') return '.';
  return relative.startsWith('..') || path.isAbsolute(relative) ? directory : relative;
}

export { SourceFile };
