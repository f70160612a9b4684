/**
 * Chevrotain, loaded from the single-file build the package ships (`lib/chevrotain.mjs`).
 *
 * The package's `exports` point at `lib/src/api.js`, whose import graph pulls in lodash-es as ~650 separate ES
 * modules: resolving and linking them costs about 0.24 s at every start of the command, more than parsing
 * ResNet-50 and checking it together. The bundle the same package publishes (same version, same code, lodash
 * inlined) loads in about 0.02 s. It is not in `exports`, so it is located next to the resolved entry point; where it
 * is missing the regular entry point is used. Every module of the parser imports chevrotain through this one, so a
 * single instance (one `EOF`, one token registry) serves the lexer and the parser.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Chevrotain from 'chevrotain';

function bundleUrl(): string | undefined {
  try {
    // lib/src/api.js → lib/chevrotain.mjs
    const entry = createRequire(import.meta.url).resolve('chevrotain');
    const bundle = path.join(path.dirname(entry), '..', 'chevrotain.mjs');
    return existsSync(bundle) ? pathToFileURL(bundle).href : undefined;
  } catch {
    return undefined;
  }
}

const url = bundleUrl();
const chevrotain = (url ? await import(url) : await import('chevrotain')) as typeof Chevrotain;

export const { createToken, Lexer, CstParser, EOF } = chevrotain;
