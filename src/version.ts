/**
 * convspec's own version, read once from package.json (two folders above this module both in src/ and in dist/),
 * for the producer fields of exported models.
 */
import { readFileSync } from 'node:fs';

export const PRODUCER_NAME = 'convspec';

let cachedVersion: string | undefined;

export function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
      const version = (JSON.parse(text) as { version?: unknown }).version;
      cachedVersion = typeof version === 'string' ? version : 'unknown';
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}
